/**
 * One chaos scenario from start to verdict: a fresh sale on the stack's nodes, buyers arriving
 * (pay at once, later, never), the fault injected a moment after the sale opens, buying until the
 * sale has stayed sold out for a whole reservation window (or a time limit), then a repair window
 * in which the engine, the ledger and the stream must come to agree — and the checks.
 */
import { now } from '../rehearsal/client.js';
import { Identities } from '../rehearsal/identities.js';
import { loopback } from '../rehearsal/drop.js';
import type { Answer, RecordingClient } from './answers.js';
import { buyer, type Buyer, type BuyerContext, type PayKind } from './buyers.js';
import { judge, type CheckOptions, type CheckResult, type FaultWindow, type Figures } from './checks.js';
import { readEngine, readLedger, readStream, type EnginePicture, type LedgerPicture, type StreamPicture } from './inside.js';
import type { FaultTimes, Scenario } from './scenarios.js';
import { ADMIN_TOKEN, REDIS_PREFIX, USER_SECRET, type ChaosStack } from './stack.js';

/** The size and pace of one scenario's sale. */
export interface RunSize {
  units: number;
  buyers: number;
  reservationSec: number;
  /** Buyers arrive evenly over this window, from the sale's creation (ms). */
  arrivalMs: number;
  admissionRate: number;
  /** Shares of buyers who pay at once and who pay later; the rest never pay. */
  payNow: number;
  payLater: number;
  /** Share of buyers who wait on an event stream (the rest poll status). */
  sse: number;
  /** The fault starts this long after the sale opens (ms). */
  faultDelayMs: number;
  /** Buying goes on at most this long after the fault is over (ms). */
  tailMs: number;
  /** After the buyers stop, how long engine, ledger and stream get to agree (ms). */
  repairMs: number;
  times: FaultTimes;
  checks: CheckOptions;
}

export interface ScenarioRun {
  scenario: string;
  title: string;
  saleId: string;
  startedAt: number;
  faults: FaultWindow[];
  /** How long after the buyers stopped engine, ledger and stream agreed (ms), or null: never within the repair window. */
  settledMs: number | null;
  durationMs: number;
  checks: CheckResult[];
  figures: Figures;
  ok: boolean;
  /** The answers, for the JSON report. */
  answers: Answer[];
  buyers: Buyer[];
}

const SKU = 'chaos-1';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

export async function runScenario(stack: ChaosStack, scenario: Scenario, size: RunSize, log: (line: string) => void): Promise<ScenarioRun> {
  const startedAt = now();
  await stack.useNodes(scenario.nodes, scenario.nodeEnv);
  const answers: Answer[] = [];
  const clients = stack.clients(answers);
  const startsAt = Date.now() + 2000;
  const saleId = await createSale(clients[0], size, startsAt, scenario.name);
  log(`  sale ${saleId}: ${size.units} units, ${size.buyers} buyers, ${size.reservationSec} s reservations, ${scenario.nodes} node(s)`);

  let stop!: () => void;
  const ctx: BuyerContext = {
    clients,
    ids: new Identities(clients[0], USER_SECRET, `${scenario.name}-${saleId.slice(0, 6)}`),
    saleId,
    sku: SKU,
    reservationMs: size.reservationSec * 1000,
    retryBudgetMs: Math.max(size.times.outageMs, size.times.natsOutageMs) + 15_000,
    stopped: false,
    onStop: new Promise<void>((r) => (stop = r)),
  };
  // Arrivals are spread from now (the sale exists), not from the run's start (nodes took their time to start).
  const buyersFrom = now();
  const buyers = plan(size, scenario.nodes, buyersFrom);
  const runs = buyers.map((b) => buyer(ctx, b));
  const watch = watchSale(stack, clients, saleId, ctx);
  const driverStalls = watchOwnLoop();

  // The fault, a moment after the sale opens.
  await sleep(startsAt + size.faultDelayMs - Date.now());
  let faults: FaultWindow[];
  try {
    faults = await scenario.inject(stack, size.times, log);
  } catch (err) {
    ctx.stopped = true;
    stop();
    throw err;
  }
  // A fault that lasts the whole run is "over" for the buyers' deadline after an outage's length.
  const faultOver = Date.now() + (scenario.wholeRun ? size.times.outageMs : 0);

  // Buying goes on until every unit is paid for (the ledger's count), everyone is done, or the time is up.
  while (Date.now() < faultOver + size.tailMs) {
    if (buyers.every((b) => b.outcome !== 'pending')) break;
    if (watch.soldUnits >= size.units) break;
    await sleep(250);
  }
  ctx.stopped = true;
  stop();
  await Promise.race([Promise.all(runs), sleep(15_000)]);
  const stoppedAt = Date.now();
  // A fault in the nodes' settings is there from the first request to the last.
  if (scenario.wholeRun) faults = [{ what: scenario.title, from: buyersFrom, to: stoppedAt }];
  watch.stop();
  await watch.done;
  driverStalls.stop();
  log(`  buyers stopped ${((stoppedAt - faultOver) / 1000).toFixed(1)} s after the fault; ${answers.length} answers; repair window…`);

  // Whatever the fault left stopped comes back before the repair window.
  for (const node of stack.nodes) if (!node.running) await node.start();
  const inside = await settle(stack, saleId, size, stoppedAt);
  const finalStatus = await saleStatus(clients, saleId);
  for (const c of clients) await c.close();

  const { checks, figures } = judge({
    sale: { id: saleId, sku: SKU, quantity: size.units },
    answers,
    buyers,
    faults,
    ledger: inside.ledger,
    engine: inside.engine,
    stream: inside.stream,
    readErrors: inside.errors,
    finalStatus,
    soldOutSeenAt: watch.soldOutFirst,
    stoppedAt,
    stalls: { driver: driverStalls.samples, nodes: watch.nodeStalls },
    opts: size.checks,
  });
  return {
    scenario: scenario.name,
    title: scenario.title,
    saleId,
    startedAt,
    faults,
    settledMs: inside.settledMs,
    durationMs: now() - startedAt,
    checks,
    figures,
    ok: checks.every((c) => c.ok),
    answers,
    buyers,
  };
}

async function createSale(client: RecordingClient, size: RunSize, startsAt: number, name: string): Promise<string> {
  const body = {
    name: `Chaos: ${name}`,
    starts_at: new Date(startsAt).toISOString(),
    duration_sec: 3600,
    items: [{ sku: SKU, name: 'Chaos item', price_cents: 4900, currency: 'EUR', quantity: size.units, per_user_limit: 1 }],
    queue: { mode: 'fifo', admission_rate_per_sec: size.admissionRate, admitted_ttl_sec: 900 },
    reservation_ttl_sec: size.reservationSec,
    bot_protection: { pow_difficulty: 0 },
  };
  for (let attempt = 0; ; attempt++) {
    const r = await client.ask('admin', 'POST', '/api/admin/flash-sales', { headers: admin, json: body, untimed: true });
    if (r.status === 201) return String(r.body.id);
    if (attempt >= 10) throw new Error(`creating the sale failed: ${r.status} ${r.error ?? JSON.stringify(r.body)}`);
    await sleep(500);
  }
}

/** Who comes when, how they pay, how they wait, and which node they talk to. */
function plan(size: RunSize, nodes: number, startedAt: number): Buyer[] {
  return Array.from({ length: size.buyers }, (_, n) => {
    // Spread evenly (not at random), so a small run has each kind in its share.
    const u = (((n * 0.618033988749895) % 1) + 1) % 1;
    const kind: PayKind = u < size.payNow ? 'now' : u < size.payNow + size.payLater ? 'later' : 'never';
    return {
      n,
      kind,
      node: n % nodes,
      channel: (n * 0.7548776662) % 1 < size.sse ? 'sse' : 'poll',
      address: loopback(40, n),
      arriveAt: startedAt + (n / size.buyers) * size.arrivalMs,
      outcome: 'pending',
      orders: [],
      rounds: 0,
    } satisfies Buyer;
  });
}

/**
 * The sale page as a shopper reads it, twice a second from whichever node answers (when it first
 * said sold out), and the admin's counters beside it (how many units are paid for).
 */
function watchSale(stack: ChaosStack, clients: RecordingClient[], saleId: string, ctx: BuyerContext) {
  const state = {
    soldOutFirst: null as number | null,
    soldUnits: 0,
    /** [time, node, ms]: each node's longest event-loop delay since the previous scrape of its metrics. */
    nodeStalls: [] as Array<[number, number, number]>,
    stopped: false,
    stop() {},
    done: Promise.resolve(),
  };
  state.stop = () => (state.stopped = true);
  state.done = (async () => {
    let i = 0;
    while (!state.stopped && !ctx.stopped) {
      const node = i++ % clients.length;
      if (stack.nodes[node].running) {
        const r = await clients[node].ask('sale', 'GET', `/api/flash-sales/${saleId}`);
        if (r.status === 200 && r.body?.status === 'sold_out') state.soldOutFirst ??= Date.now();
        const stats = await clients[node].ask('admin', 'GET', `/api/admin/flash-sales/${saleId}/stats`, { headers: admin, untimed: true });
        if (stats.status === 200 && typeof stats.body?.sold === 'number') state.soldUnits = stats.body.sold;
      }
      await Promise.all(
        clients.map(async (c) => {
          if (!stack.nodes[c.node].running) return;
          const m = await c.ask('admin', 'GET', '/metrics', { headers: admin, untimed: true });
          const lag = typeof m.body === 'string' ? /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(m.body) : null;
          if (lag) state.nodeStalls.push([Date.now(), c.node, Number(lag[1]) * 1000]);
        }),
      );
      await sleep(500);
    }
  })();
  return state;
}

/** This process's own event-loop delays over 100 ms, as [time, ms]: when it stalls, its timings include its own lag. */
function watchOwnLoop() {
  const samples: Array<[number, number]> = [];
  let expected = Date.now() + 100;
  const timer = setInterval(() => {
    const t = Date.now();
    if (t - expected > 100) samples.push([t, t - expected]);
    expected = t + 100;
  }, 100);
  return { samples, stop: () => clearInterval(timer) };
}

/** The sale's public status, from the first node that answers. */
async function saleStatus(clients: RecordingClient[], saleId: string): Promise<string | null> {
  for (const c of clients) {
    const r = await c.ask('admin', 'GET', `/api/flash-sales/${saleId}`, { untimed: true });
    if (r.status === 200 && typeof r.body?.status === 'string') return r.body.status;
  }
  return null;
}

interface Inside {
  ledger: LedgerPicture | null;
  engine: EnginePicture | null;
  stream: StreamPicture | null;
  errors: string[];
  settledMs: number | null;
}

/**
 * The repair window: reads the inside every second until engine, ledger and stream agree (no
 * hold left, stock balanced, every event published and in the stream) or the window ends; the
 * last reading is what the checks judge.
 */
async function settle(stack: ChaosStack, saleId: string, size: RunSize, stoppedAt: number): Promise<Inside> {
  let last: Inside = { ledger: null, engine: null, stream: null, errors: ['never read'], settledMs: null };
  const until = Date.now() + size.repairMs;
  for (;;) {
    const errors: string[] = [];
    const [ledger, engine, stream] = await Promise.all([
      readLedger(stack.pg.url, saleId).catch((err: Error) => (errors.push(`ledger: ${err.message}`), null)),
      readEngine(stack.redis.url, REDIS_PREFIX, saleId).catch((err: Error) => (errors.push(`engine: ${err.message}`), null)),
      readStream(stack.nats.url).catch((err: Error) => (errors.push(`stream: ${err.message}`), null)),
    ]);
    last = { ledger, engine, stream, errors, settledMs: null };
    if (ledger && engine && stream && agrees(ledger, engine, stream)) {
      last.settledMs = Date.now() - stoppedAt;
      return last;
    }
    if (Date.now() >= until) return last;
    await sleep(1000);
  }
}

function agrees(ledger: LedgerPicture, engine: EnginePicture, stream: StreamPicture): boolean {
  if (!engine.present || engine.holds.length > 0) return false;
  if (ledger.orders.some((o) => o.status === 'reserved')) return false;
  for (const item of ledger.items) {
    const sold = ledger.orders.filter((o) => o.sku === item.sku && o.status === 'confirmed').reduce((a, o) => a + o.quantity, 0);
    if ((engine.stock[item.sku] ?? 0) + sold !== item.quantity) return false;
  }
  return ledger.outbox.every((e) => e.published && stream.outboxIds.has(e.id));
}
