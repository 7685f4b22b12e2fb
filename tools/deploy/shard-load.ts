/**
 * What each Redis master did over a stretch of time, from `INFO cpu commandstats` read before
 * and after: commands by name (a script's inner commands counted too, as Redis counts them) and
 * the CPU its main thread used. `tools/engine-cost.ts` splits a request's cost with it; `npm run
 * cluster -- --rehearse` prints how evenly a drop loaded the shards.
 */
import type { Redis } from 'ioredis';

export interface MasterStats {
  addr: string;
  calls: Map<string, number>;
  usec: Map<string, number>;
  failed: number;
  /** used_cpu_sys_main_thread + used_cpu_user_main_thread, µs. */
  cpuUs: number;
}

export function parseInfo(addr: string, text: string): MasterStats {
  const stats: MasterStats = { addr, calls: new Map(), usec: new Map(), failed: 0, cpuUs: 0 };
  for (const line of text.split(/\r?\n/)) {
    const cmd = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+).*?(?:failed_calls=(\d+))?$/.exec(line);
    if (cmd) {
      stats.calls.set(cmd[1], Number(cmd[2]));
      stats.usec.set(cmd[1], Number(cmd[3]));
      stats.failed += Number(cmd[4] ?? 0);
      continue;
    }
    const cpu = /^used_cpu_(?:sys|user)_main_thread:([\d.]+)$/.exec(line);
    if (cpu) stats.cpuUs += Math.round(Number(cpu[1]) * 1e6);
  }
  return stats;
}

/** Every master's stats now, in address order. */
export async function readMasters(masters: Redis[]): Promise<MasterStats[]> {
  const read = await Promise.all(
    masters.map(async (m) => parseInfo(`${m.options.host}:${m.options.port}`, String(await m.call('info', 'cpu', 'commandstats')))),
  );
  return read.sort((a, b) => a.addr.localeCompare(b.addr));
}

/** Our own reads of the stats: never part of what is measured. */
const OURS = new Set(['info']);
const total = (m: MasterStats) => [...m.calls].reduce((n, [name, calls]) => n + (OURS.has(name) ? 0 : calls), 0);

export interface ShardLoad {
  addr: string;
  calls: number;
  cpuMs: number;
}

/** Each master's commands and main-thread CPU between two reads. */
export function shardLoad(before: MasterStats[], after: MasterStats[]): ShardLoad[] {
  return after.map((a) => {
    const b = before.find((m) => m.addr === a.addr);
    return { addr: a.addr, calls: total(a) - (b ? total(b) : 0), cpuMs: (a.cpuUs - (b?.cpuUs ?? 0)) / 1000 };
  });
}

/** The per-shard table of a report: commands, CPU, and each one's distance from the shards' mean. */
export function shardTable(load: ShardLoad[]): string {
  const mean = (f: (s: ShardLoad) => number) => load.reduce((n, s) => n + f(s), 0) / Math.max(1, load.length);
  const calls = mean((s) => s.calls);
  const cpu = mean((s) => s.cpuMs);
  const off = (v: number, m: number) => (m ? `${v >= m ? '+' : '−'}${Math.abs((100 * (v - m)) / m).toFixed(1)} %` : '—');
  const spread = (f: (s: ShardLoad) => number, m: number) => Math.max(...load.map((s) => Math.abs((100 * (f(s) - m)) / (m || 1))));
  const lines = [
    'Redis masters during the rehearsal (INFO commandstats and main-thread CPU, before and after)',
    `  ${'master'.padEnd(22)}${'commands'.padStart(12)}${'vs mean'.padStart(10)}${'CPU ms'.padStart(10)}${'vs mean'.padStart(10)}`,
    ...load.map(
      (s) =>
        `  ${s.addr.padEnd(22)}${s.calls.toLocaleString('en-US').padStart(12)}${off(s.calls, calls).padStart(10)}${Math.round(s.cpuMs).toLocaleString('en-US').padStart(10)}${off(s.cpuMs, cpu).padStart(10)}`,
    ),
    `  largest distance from the mean: commands ${spread((s) => s.calls, calls).toFixed(1)} %, CPU ${spread((s) => s.cpuMs, cpu).toFixed(1)} %`,
  ];
  return lines.join('\n');
}
