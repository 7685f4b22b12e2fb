/**
 * One rehearsal: create a sale through the admin API, let the simulated people and bots arrive
 * over the arrival window and do what they do, watch the sale's live counters meanwhile, then
 * let the server settle (holds ended, authorisations voided) and read its ledger back for the
 * verdict. Everything observed is returned as `DropData`; judging it is `verdict.ts`'s job.
 */
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Client, now } from './client.js';
import { Identities } from './identities.js';
import { Solver } from './solver.js';
import { person } from './people.js';
import { bot } from './bots.js';
import { settle, type LedgerView } from './ledger-view.js';
import type { DropContext, DropOptions, SaleFacts, ShopperRecord } from './shopper.js';
import { Progress } from '../progress.js';

export interface RehearsalOptions extends DropOptions {
  url: string;
  adminToken: string;
  userSecret?: string;
  users: number;
  /** Share of the users that are bots. */
  bots: number;
  units: number;
  skus: number;
  perUserLimit: number;
  startInMs: number;
  arrivalMs: number;
  powDifficulty: number;
  admissionRate: number;
  mode: 'fifo' | 'randomized_prequeue';
  /** The sale's queue lanes (`queue.shards`). */
  queueShards: number;
  admittedTtlSec: number;
  /** People per loopback address (a household); the server flags more than 5 accounts per address. */
  peoplePerAddress: number;
  botAddresses: number;
  botFingerprints: number;
  solvers: number;
  /** The whole run gives up after this long (ms), counted from the start. */
  timeoutMs: number;
  /** How long to wait for holds and authorisations to end after the run (ms). */
  settleMs: number;
  /** Cancel the sale at the end when it did not sell out (to check that cancelling voids everything). */
  cancelUnsold: boolean;
  quiet: boolean;
}

/** Sockets a household keeps for requests (its event streams have their own). */
export const PEOPLE_SOCKETS = 2;

export interface TimelinePoint {
  t: number;
  status: string;
  entered: number;
  admitted: number;
  sold: number;
  holds: number;
  sse: number;
  rps: number;
}

export interface DropData {
  opts: RehearsalOptions;
  sale: SaleFacts & { units: number; name: string; startsAtIso: string };
  identityMode: 'jwt' | 'demo-session';
  startedAt: number;
  endedAt: number;
  shoppers: ShopperRecord[];
  client: Client;
  solver: Solver;
  timeline: TimelinePoint[];
  keyConflicts: DropContext['keyConflicts'];
  isBot: (userId: string) => boolean;
  ledger: LedgerView;
  /** The rehearsal's own event-loop delay (ms): when it is high, our timings include our own lag. */
  loopDelay: { p50: number; p99: number; max: number };
  timedOut: boolean;
}

export async function runDrop(opts: RehearsalOptions, log: (line: string) => void): Promise<DropData> {
  const client = new Client(opts.url.replace(/\/$/, ''));
  const admin = { authorization: `Bearer ${opts.adminToken}` };
  const tag = randomBytes(3).toString('hex');

  const health = await client.call('admin', 'GET', '/api/flash-sales', { untimed: true });
  if (health.status !== 200) throw new Error(`the server at ${opts.url} does not answer GET /api/flash-sales (${health.status} ${health.error ?? ''})`);
  const sale = await createSale(client, admin, opts, tag);
  log(
    `sale ${sale.id} created: ${opts.units} units in ${opts.skus} SKU(s), opens in ${Math.round((sale.opensAt - now()) / 1000)} s, admission ${opts.admissionRate}/s, proof-of-work difficulty ${opts.powDifficulty}`,
  );

  const solver = new Solver(opts.powDifficulty > 0 ? opts.solvers : 0);
  const ids = new Identities(client, opts.userSecret, tag);
  let stop!: () => void;
  const onStop = new Promise<void>((r) => {
    stop = r;
  });
  const ctx: DropContext = {
    client,
    ids,
    solver,
    sale,
    opts,
    tag,
    stopped: false,
    onStop,
    streamsOpen: 0,
    keyAnswers: new Map(),
    keyConflicts: [],
    agent: (rec) => client.agent(rec.address, rec.kind === 'bot' ? opts.botConnections : PEOPLE_SOCKETS),
    streamAgent: (rec) => client.agent(rec.address),
  };

  const startedAt = now();
  const shoppers = plan(opts, startedAt);
  const humans = shoppers.filter((s) => s.kind === 'human');
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();

  const timeline: TimelinePoint[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const r = await client.call('admin', 'GET', `/api/admin/flash-sales/${sale.id}/stats`, { headers: admin, untimed: true });
      if (r.status === 200) {
        const s = r.body;
        timeline.push({
          t: now() - startedAt,
          status: s.status,
          entered: s.entered,
          admitted: s.admitted,
          sold: s.sold,
          holds: s.holds,
          sse: s.sse_connections,
          rps: s.requests_per_sec,
        });
      }
      await new Promise((res) => setTimeout(res, 500));
    }
  })();

  const progress = new Progress(() => {
    let arrived = 0;
    let done = 0;
    let admitted = 0;
    let bought = 0;
    const t = now();
    for (const s of humans) {
      if (s.arriveAt <= t) arrived++;
      if (s.outcome !== 'pending') done++;
      if (s.admittedAt !== undefined) admitted++;
      if (s.outcome === 'bought') bought++;
    }
    const last = timeline[timeline.length - 1];
    return {
      done,
      total: humans.length,
      text: `people ${arrived}/${humans.length} arrived, ${admitted} admitted, ${bought} bought | sold ${last?.sold ?? 0}/${opts.units} (${last?.status ?? '…'}) | streams ${client.openStreams} | in flight ${client.inFlight} | ${client.failures} failed`,
    };
  }, opts.quiet);
  progress.start();

  const runs = shoppers.map((s) => (s.kind === 'human' ? person(ctx, s) : bot(ctx, s, opts.botFingerprints)));
  const people = Promise.all(runs.filter((_, i) => shoppers[i].kind === 'human'));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
  }, opts.timeoutMs);
  await Promise.race([
    people,
    new Promise<void>((r) => {
      const poll = setInterval(() => {
        if (timedOut) {
          clearInterval(poll);
          r();
        }
      }, 200);
      void people.then(() => clearInterval(poll));
    }),
  ]);
  clearTimeout(timer);
  // Everyone who is still going (bots, people of a timed-out run) stops now.
  ctx.stopped = true;
  stop();
  await Promise.race([Promise.all(runs), new Promise((r) => setTimeout(r, 10_000))]);
  const endedAt = now();
  progress.stop();
  loop.disable();
  watching = false;
  await watcher;

  log('run over; letting the server settle (holds and authorisations) and reading its ledger');
  const ledger = await settle(client, admin, sale.id, opts);
  await solver.close();
  await client.close();

  const bots = ids;
  return {
    opts,
    sale,
    identityMode: ids.mode,
    startedAt,
    endedAt,
    shoppers,
    client,
    solver,
    timeline,
    keyConflicts: ctx.keyConflicts,
    isBot: (u) => u.startsWith('b-') || bots.botIds.has(u),
    ledger,
    loopDelay: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
    timedOut,
  };
}

async function createSale(client: Client, admin: Record<string, string>, opts: RehearsalOptions, tag: string): Promise<DropData['sale']> {
  const startsAt = client.serverTime() + opts.startInMs;
  const per = Math.floor(opts.units / opts.skus);
  const items = Array.from({ length: opts.skus }, (_, i) => ({
    sku: `rehearsal-${i + 1}`,
    name: `Rehearsal item ${i + 1}`,
    price_cents: 19_900,
    currency: 'EUR',
    quantity: per + (i < opts.units - per * opts.skus ? 1 : 0),
    per_user_limit: opts.perUserLimit,
  }));
  const body = {
    name: `Rehearsal ${tag}: ${opts.users} users, ${opts.units} units`,
    starts_at: new Date(startsAt).toISOString(),
    duration_sec: Math.max(3600, Math.ceil((opts.startInMs + opts.timeoutMs) / 1000) + 600),
    items,
    queue: { mode: opts.mode, admission_rate_per_sec: opts.admissionRate, admitted_ttl_sec: opts.admittedTtlSec, shards: opts.queueShards },
    reservation_ttl_sec: 300,
    bot_protection: { pow_difficulty: opts.powDifficulty },
  };
  const r = await client.call('admin', 'POST', '/api/admin/flash-sales', { headers: admin, json: body, untimed: true });
  if (r.status === 401) throw new Error("the admin token was refused (pass --admin-token, the server's STAMPEDE_ADMIN_TOKEN)");
  if (r.status !== 201) throw new Error(`creating the sale failed: ${r.status} ${JSON.stringify(r.body)}`);
  return {
    id: r.body.id,
    name: r.body.name,
    skus: items.map((i) => i.sku),
    units: opts.units,
    admittedTtlSec: opts.admittedTtlSec,
    opensAt: client.localTime(Date.parse(r.body.starts_at)),
    pow: opts.powDifficulty > 0,
    startsAtIso: r.body.starts_at,
  };
}

/**
 * Who arrives when, from where. People arrive evenly over the window; bots in its first 30 %
 * (scripts are early). People share an address four at a time at most (a household, an office
 * behind one router); a bot farm's thousands of accounts share `botAddresses` addresses.
 */
function plan(opts: RehearsalOptions, startedAt: number): ShopperRecord[] {
  const botCount = Math.round(opts.users * opts.bots);
  const humanCount = opts.users - botCount;
  const out: ShopperRecord[] = [];
  for (let i = 0; i < humanCount; i++) {
    out.push({
      n: i,
      kind: 'human',
      channel: Math.random() < opts.pollShare ? 'poll' : 'sse',
      address: loopback(16, Math.floor(i / opts.peoplePerAddress)),
      arriveAt: startedAt + Math.random() * opts.arrivalMs,
      purchaseRequests: 0,
      orders: [],
      outcome: 'pending',
    });
  }
  for (let i = 0; i < botCount; i++) {
    out.push({
      n: i,
      kind: 'bot',
      channel: 'bot',
      address: loopback(200, i % opts.botAddresses),
      arriveAt: startedAt + Math.random() * opts.arrivalMs * 0.3,
      purchaseRequests: 0,
      orders: [],
      outcome: 'pending',
    });
  }
  return out;
}

/** The `index`-th address of 127.<first>.0.1 onwards (skipping .0 and .255). */
export function loopback(first: number, index: number): string {
  const c = (index % 254) + 1;
  const rest = Math.floor(index / 254);
  return `127.${first + Math.floor(rest / 256)}.${rest % 256}.${c}`;
}
