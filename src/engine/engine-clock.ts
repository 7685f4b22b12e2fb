import type { Engine } from './engine.js';

/**
 * The engine's clock as seen from this node: the local clock plus a measured offset. Sale
 * status (scheduled → open → ended) is decided on this clock, so every node agrees with the
 * engine — and so with each other — within a round trip, whatever its own clock says.
 */
export class EngineClock {
  private offset = 0;

  /** `local` is this node's clock; tests pass a skewed one to prove it does not matter. */
  constructor(
    private readonly engine: Engine,
    private readonly local: () => number = Date.now,
  ) {}

  /** Engine time now, in epoch milliseconds. */
  now(): number {
    return this.local() + this.offset;
  }

  /** Measures the offset with one round trip, taking the midpoint as the engine's instant. */
  async sync(): Promise<void> {
    const before = this.local();
    const engineNow = await this.engine.now();
    const after = this.local();
    this.observe(engineNow, (before + after) / 2);
  }

  /** Folds in an engine time read at local time `localAt` (snapshots carry one for free). */
  observe(engineNow: number, localAt: number): void {
    this.offset = engineNow - localAt;
  }

  localNow(): number {
    return this.local();
  }
}
