/** autocannon ships no types; the benchmark uses its programmatic API loosely. */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';
  function autocannon(opts: Record<string, unknown>): Promise<any>;
  /** With a callback it answers the running instance, which emits `response` per answer. */
  function autocannon(opts: Record<string, unknown>, done: (err: Error | null, result: any) => void): EventEmitter;
  export default autocannon;
}
