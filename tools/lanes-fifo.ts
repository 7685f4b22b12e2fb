/**
 * `npx tsx tools/lanes-fifo.ts [--users 100000] [--shards 1,2,3,8] [--arrivals-per-sec 10000]`:
 * how far queue lanes (a mega-drop, `queue.shards`) put places from arrival order, measured
 * exactly. Users enter one after another (so arrival order is known, with none of a load test's
 * concurrency blurring it) through the engine's own `enterQueue` on the embedded engine, which
 * hands out the same places as Redis (the contract suite holds them together); user ids are
 * random, as a shop's are, so the lanes fill as the hash spreads them. Nobody is admitted while
 * they arrive, so no lane skips ahead to the watermark: the drift is at its largest.
 *
 * Per lane count it prints: people placed ahead of someone who arrived before them; the largest
 * head start lost (arrivals between the earlier one and the later one who got ahead), in arrivals
 * and in time at the given arrival rate; and |place rank − arrival rank| (median, p99, largest).
 * With one lane every figure is 0: that row is the baseline.
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Args, UsageError } from './args.js';
import { MemoryEngine } from '../src/engine/memory/memory-engine.js';

export interface FifoDeviation {
  shards: number;
  users: number;
  /** People placed ahead of someone who arrived before them. */
  overtaking: number;
  /** The largest head start lost, in arrivals. */
  lostArrivals: number;
  /** |place rank − arrival rank|. */
  displacement: { p50: number; p99: number; max: number };
}

/** FIFO deviation of places handed out in arrival order (`places[i]`: the i-th arrival's place). */
export function fifoDeviation(places: number[], shards: number): FifoDeviation {
  const n = places.length;
  const byPlace = places.map((place, arrival) => ({ place, arrival })).sort((a, b) => a.place - b.place);
  // Walk places from the back: the earliest arrival among those placed later is a running minimum.
  let overtaking = 0;
  let lostArrivals = 0;
  let earliestLater = Infinity;
  for (let i = n - 1; i >= 0;) {
    let j = i;
    while (j >= 0 && byPlace[j].place === byPlace[i].place) j--;
    for (let k = i; k > j; k--) {
      const b = byPlace[k];
      if (earliestLater < b.arrival) {
        overtaking++;
        lostArrivals = Math.max(lostArrivals, b.arrival - earliestLater);
      }
    }
    for (let k = i; k > j; k--) earliestLater = Math.min(earliestLater, byPlace[k].arrival);
    i = j;
  }
  const off = byPlace.map((s, rank) => Math.abs(rank - s.arrival)).sort((a, b) => a - b);
  const at = (q: number) => off[Math.min(n - 1, Math.floor(q * n))] ?? 0;
  return { shards, users: n, overtaking, lostArrivals, displacement: { p50: at(0.5), p99: at(0.99), max: off[n - 1] ?? 0 } };
}

async function measure(users: number, shards: number): Promise<FifoDeviation> {
  const engine = new MemoryEngine();
  const now = Date.now();
  const sale = {
    id: randomUUID(),
    startsAt: now + 3_600_000,
    endsAt: now + 7_200_000,
    cancelled: false,
    mode: 'fifo' as const,
    admissionRatePerSec: 100,
    admittedTtlSec: 60,
    maxActive: 100,
    reservationTtlSec: 60,
    items: [{ sku: 'x', quantity: 1, perUserLimit: 1, maxPerOrder: 1 }],
    queueShards: shards,
  };
  await engine.loadSale({ sale, sold: {}, holds: [], perUser: [] });
  const places: number[] = [];
  for (let i = 0; i < users; i++) places.push((await engine.enterQueue(sale.id, randomUUID(), { draw: 0 })).place);
  await engine.close();
  return fifoDeviation(places, shards);
}

export async function main(argv: string[]): Promise<number> {
  let users: number;
  let shardList: number[];
  let perSec: number;
  try {
    const a = new Args(argv);
    users = a.count('users', 100_000, 2);
    shardList = a
      .string('shards', '1,2,3,8')
      .split(',')
      .map((s) => Number(s));
    if (shardList.some((s) => !Number.isInteger(s) || s < 1 || s > 64)) throw new UsageError('--shards takes lane counts 1–64, comma-separated');
    perSec = a.count('arrivals-per-sec', 10_000, 1);
    a.rejectUnknown();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`lanes-fifo: ${err.message}\n`);
    return 64;
  }
  const rows = [];
  for (const shards of shardList) rows.push(await measure(users, shards));
  const fmt = (n: number) => n.toLocaleString('en-US');
  const out = [
    `${fmt(users)} users entering one after another, ids random; time at ${fmt(perSec)} arrivals a second`,
    '',
    '| lanes | placed ahead of an earlier arrival | largest head start lost | place rank − arrival rank: median / p99 / largest |',
    '| ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.shards} | ${fmt(r.overtaking)} (${((100 * r.overtaking) / r.users).toFixed(1)} %) | ${fmt(r.lostArrivals)} arrivals = ${((1000 * r.lostArrivals) / perSec).toFixed(0)} ms | ${fmt(r.displacement.p50)} / ${fmt(r.displacement.p99)} / ${fmt(r.displacement.max)} |`,
    ),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`lanes-fifo: ${err.stack ?? err.message}\n`);
      process.exit(70);
    },
  );
}
