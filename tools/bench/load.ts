/**
 * One measurement with autocannon: requests taken in turn from a prepared list (distinct users,
 * tickets and idempotency keys), either for a duration or for exactly as many requests as the
 * list holds (when each item may be used once: solved proofs-of-work, purchases).
 */
import { readdirSync, readFileSync } from 'node:fs';
import autocannon from 'autocannon';

export interface Item {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface Measured {
  requestsPerSec: number;
  p50: number;
  p99: number;
  requests: number;
  durationSec: number;
  /** Answers by status code. */
  statuses: Record<string, number>;
  errors: number;
  /** CPU the server process spent per answered request (user + system, all its threads), µs. */
  serverCpuUsPerRequest: number;
  /** Share of one core the server used over the run (1 = a whole core). */
  serverCores: number;
  /** Share of one core the load generator (this process) used. */
  loadCores: number;
}

/**
 * CPU time so far (user + system, every thread) of a process and its children (a node with
 * STAMPEDE_WORKERS runs its work in child processes), in ms, from /proc; NaN where there is no /proc.
 */
function cpuMsOf(pid: number): number {
  const stats = new Map<number, { ppid: number; ms: number }>();
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ');
        // Fields 4 (ppid), 14 and 15 (utime, stime) of stat(5), counted here from the state field (3).
        stats.set(Number(entry), { ppid: Number(fields[1]), ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 });
      } catch {
        /* the process ended meanwhile */
      }
    }
  } catch {
    return NaN;
  }
  if (!stats.has(pid)) return NaN;
  let total = 0;
  const tree = new Set([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, st] of stats) {
      if (tree.has(p) || !tree.has(st.ppid)) continue;
      tree.add(p);
      grew = true;
    }
  }
  for (const p of tree) total += stats.get(p)!.ms;
  return total;
}

export async function measure(
  url: string,
  items: Item[],
  opts: { connections: number; durationSec?: number; amount?: number; serverPid?: number },
): Promise<Measured> {
  let i = 0;
  const serverCpu0 = opts.serverPid ? cpuMsOf(opts.serverPid) : NaN;
  const loadCpu0 = process.cpuUsage();
  const started = performance.now();
  let lastAnswer = started;
  const result = await new Promise<any>((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections: opts.connections,
        pipelining: 1,
        ...(opts.amount ? { amount: opts.amount } : { duration: opts.durationSec ?? 5 }),
        requests: [
          {
            setupRequest: (req: any) => {
              const it = items[i++ % items.length];
              req.method = it.method;
              req.path = it.path;
              req.headers = it.headers;
              req.body = it.body;
              return req;
            },
          },
        ],
      },
      (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res)),
    );
    instance.on('response', () => {
      lastAnswer = performance.now();
    });
  });
  const statuses: Record<string, number> = {};
  for (const [code, v] of Object.entries((result as any).statusCodeStats ?? {})) statuses[code] = (v as { count: number }).count;
  // autocannon's own `duration` counts whole seconds, and a fixed-amount run only ends on its
  // next one-second tick (5,000 requests in 0.4 s read as 5,000/s): time to the last answer.
  const wallMs = performance.now() - started;
  const serverCpuMs = opts.serverPid ? cpuMsOf(opts.serverPid) - serverCpu0 : NaN;
  const loadCpu = process.cpuUsage(loadCpu0);
  const durationSec = ((opts.amount ? lastAnswer : performance.now()) - started) / 1000;
  return {
    serverCpuUsPerRequest: (serverCpuMs * 1000) / Math.max(1, result.requests.total),
    serverCores: serverCpuMs / wallMs,
    loadCores: (loadCpu.user + loadCpu.system) / 1000 / wallMs,
    requestsPerSec: result.requests.total / durationSec,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    durationSec,
    statuses,
    errors: result.errors + result.timeouts,
  };
}
