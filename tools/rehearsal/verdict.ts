/**
 * Judges a rehearsal: every invariant of SPEC §3 that can be seen from outside, checked twice
 * where it can — once from what the simulated shoppers were told, once from the server's ledger
 * (admin API) — plus the issue's targets and the figures behind them.
 */
import { Samples } from '../samples.js';
import type { DropData } from './drop.js';
import type { ShopperRecord } from './shopper.js';

export interface Check {
  /** SPEC §3 item. */
  spec: string;
  name: string;
  source: 'outside' | 'ledger';
  /** null: could not be checked in this run (the detail says why). */
  held: boolean | null;
  detail: string;
}

export interface Target {
  name: string;
  goal: string;
  value: string;
  met: boolean | null;
}

export interface Verdict {
  ok: boolean;
  checks: Check[];
  targets: Target[];
  figures: Figures;
}

export interface Figures {
  people: Record<string, number>;
  bots: Record<string, number>;
  errors: Array<[string, number]>;
  checkout: Samples;
  purchase: Samples;
  soldOutNotice: { sse: Samples; poll: Samples };
  lastSoldAt: number | null;
  botUnits: number;
  soldUnits: number;
  /** Admissions per second as the people learnt them, and as the server stamped them. */
  admittedPerSec: { told: number[]; server: number[] };
  fifo: FifoFigures;
}

/** FIFO from outside (see `fifoFigures`). */
export interface FifoFigures {
  /** The sale's queue lanes. */
  shards: number;
  /** People who got a place ahead of someone whose entry had already been answered. */
  entryInversions: number;
  /** The same within each lane (with one lane, the same figure). */
  laneInversions: number;
  /** The largest head start lost: how long after someone's entry was answered another sent theirs and still got ahead (ms; 0 when nobody did). */
  lostMs: number;
  /** |rank by place − rank by arrival| over the people, in places: median, p99, largest. */
  displacement: { p50: number; p99: number; max: number };
  admissionInversions: number;
  admittedAbove: number;
  stamped: number;
}

const pct = (n: number, of: number) => `${of ? ((100 * n) / of).toFixed(1) : '0'} %`;
const sumBy = <T>(xs: T[], f: (x: T) => number) => xs.reduce((n, x) => n + f(x), 0);

export function judge(d: DropData): Verdict {
  const units = d.sale.units;
  const limit = d.opts.perUserLimit;
  const people = d.shoppers.filter((s) => s.kind === 'human');
  const bots = d.shoppers.filter((s) => s.kind === 'bot');
  const L = d.ledger;
  const checks: Check[] = [];
  const check = (spec: string, name: string, source: Check['source'], held: boolean | null, detail: string) =>
    checks.push({ spec, name, source, held, detail });

  // What the shoppers were told: every order answered 201, by id.
  const told = new Map<string, { status: string; userId: string; sku: string }>();
  for (const s of d.shoppers) for (const [id, status, sku] of s.orders) told.set(id, { status, userId: s.userId!, sku });
  const live = [...told.values()].filter((o) => o.status === 'confirmed' || o.status === 'reserved');
  const ledgerLive = L.orders.filter((o) => o.status === 'confirmed' || o.status === 'reserved');
  const items: any[] = L.sale?.items ?? [];

  // §3.1 zero oversell.
  check('§3.1', 'zero oversell', 'outside', live.length <= units, `${live.length} orders answered 201 (confirmed or reserved) for ${units} units`);
  const overItems = items.filter((i) => i.sold + i.held > i.quantity);
  check(
    '§3.1',
    'zero oversell',
    'ledger',
    items.length ? overItems.length === 0 : null,
    items.length ? items.map((i) => `${i.sku}: ${i.sold} sold + ${i.held} held of ${i.quantity}`).join('; ') : 'the sale could not be read',
  );
  const perSku = new Map<string, number>();
  for (const o of ledgerLive) perSku.set(o.sku, (perSku.get(o.sku) ?? 0) + o.quantity);
  const overOrders = items.filter((i) => (perSku.get(i.sku) ?? 0) > i.quantity);
  check(
    '§3.1',
    'orders never exceed stock',
    'ledger',
    overOrders.length === 0,
    `${ledgerLive.length} confirmed/reserved order rows; units per SKU ${[...perSku].map(([k, v]) => `${k}=${v}`).join(', ') || 'none'}${L.truncated.length ? ` (listing full for ${L.truncated.join(', ')}: some rows unseen)` : ''}`,
  );

  // §3.2 per-user limit.
  const perUser = (orders: Array<{ userId: string; sku: string; quantity: number }>) => {
    const m = new Map<string, number>();
    for (const o of orders) m.set(`${o.userId}\u0000${o.sku}`, (m.get(`${o.userId}\u0000${o.sku}`) ?? 0) + o.quantity);
    return [...m.values()].filter((n) => n > limit).length;
  };
  const overOutside = perUser(live.map((o) => ({ ...o, quantity: 1 })));
  check('§3.2', 'per-user limit', 'outside', overOutside === 0, `${overOutside} users were answered more than ${limit} order(s) of one SKU`);
  const overLedger = perUser(ledgerLive.map((o) => ({ userId: o.user_id, sku: o.sku, quantity: o.quantity })));
  check('§3.2', 'per-user limit', 'ledger', overLedger === 0, `${overLedger} users hold more than ${limit} unit(s) of one SKU in the ledger`);

  // §3.3 one answer per ticket and key.
  const doubled = people.filter((s) => s.purchaseRequests > 1).length;
  check(
    '§3.3',
    'one answer per idempotency key',
    'outside',
    d.keyConflicts.length === 0,
    d.keyConflicts.length
      ? `${d.keyConflicts.length} keys answered with two orders, e.g. ${JSON.stringify(d.keyConflicts[0])}`
      : `${doubled} people sent a purchase more than once (double clicks, retries); every key named one order`,
  );
  const captured = L.stats?.authorizations?.captured ?? 0;
  const confirmed = L.stats?.orders?.confirmed ?? 0;
  check('§3.3', 'one capture per confirmed order', 'ledger', captured === confirmed, `${captured} captured payments, ${confirmed} confirmed orders`);

  // §3.4 FIFO.
  const fifo = fifoFigures(d, people);
  if (d.opts.mode === 'fifo' && fifo.shards > 1) {
    // Queue lanes: exact order within a lane; across lanes a place is off by the lanes' drift,
    // which is measured here rather than promised.
    check(
      '§3.4',
      'places follow arrival',
      'outside',
      fifo.laneInversions === 0,
      `within each of ${fifo.shards} lanes ${fifo.laneInversions} people got a place ahead of someone whose entry had already been answered; ` +
        `across lanes ${fifo.entryInversions} (${pct(fifo.entryInversions, people.length)} of people), the largest head start lost ${fmt(fifo.lostMs)} ms, ` +
        `places off arrival order by ${fifo.displacement.p50} (median), ${fifo.displacement.p99} (p99), ${fifo.displacement.max} (largest)`,
    );
  } else if (d.opts.mode === 'fifo') {
    check(
      '§3.4',
      'places follow arrival',
      'outside',
      fifo.entryInversions === 0,
      `${fifo.entryInversions} people got a place ahead of someone whose entry had already been answered; ` +
        `places off arrival order by ${fifo.displacement.p50} (median), ${fifo.displacement.p99} (p99), ${fifo.displacement.max} (largest)`,
    );
  } else {
    check('§3.4', 'places follow arrival', 'outside', null, 'randomized_prequeue: pre-queue places are drawn, not checked here');
  }
  check(
    '§3.4',
    'admission in place order',
    'outside',
    fifo.admissionInversions === 0 && fifo.admittedAbove === 0,
    `${fifo.stamped} admissions stamped by the server: ${fifo.admissionInversions} admitted before an earlier place, ${fifo.admittedAbove} told "admitted" above the watermark`,
  );

  // Not a §3 invariant, but a promise of the API: behind a balancer, no node answers with a
  // picture older than one the shopper was shown (they send back what they saw as `seen`).
  const stepped = people.filter((s) => s.steppedBack);
  check(
    'view',
    "a shopper's view never steps back",
    'outside',
    stepped.length === 0,
    stepped.length
      ? `${stepped.length} people were shown a worse view after a better one, e.g. ${stepped[0].steppedBack}`
      : `${people.filter((s) => s.seen !== undefined).length} people sent back the watermark they had seen; none was shown an older picture`,
  );

  // §3.5 every authorisation ends.
  const authHeld = L.soldOut || L.cancelled ? L.authsOpen === 0 : null;
  check(
    '§3.5',
    'every authorisation ends',
    'ledger',
    authHeld,
    authHeld === null
      ? `the sale neither sold out nor was cancelled (${L.authsOpen} authorisations stay open until it ends)`
      : L.authsOpen === 0
        ? `all ended ${(L.authsEndedMs! / 1000).toFixed(1)} s after ${L.soldOut ? 'selling out' : 'the cancel'} (${JSON.stringify(L.stats?.authorizations ?? {})})`
        : `${L.authsOpen} still open ${(d.opts.settleMs / 1000).toFixed(0)} s after ${L.soldOut ? 'selling out' : 'the cancel'}; ${drainRate(L.authsTrace)}`,
  );

  // §3.6 every hold ends.
  const heldNow = sumBy(items, (i) => i.held ?? 0);
  check(
    '§3.6',
    'every hold ends',
    'ledger',
    L.holdsEndedMs !== null && heldNow === 0,
    `${L.stats?.holds ?? '?'} units held in the engine, ${L.stats?.orders?.reserved ?? '?'} reserved orders, ${heldNow} held in the ledger after settling`,
  );

  // §3.7 nothing confirmed is lost.
  const ledgerIds = new Map(L.orders.map((o) => [o.order_id, o.status]));
  const confirmedTold = [...told].filter(([, o]) => o.status === 'confirmed');
  const missing = confirmedTold.filter(([id]) => ledgerIds.get(id) !== 'confirmed');
  check(
    '§3.7',
    'every 201 confirmed is in the ledger',
    'outside',
    L.truncated.includes('confirmed') && missing.length ? null : missing.length === 0,
    `${confirmedTold.length} confirmed orders told to shoppers, ${missing.length} not confirmed in the ledger${missing.length ? ` (e.g. ${missing[0][0]}: ${ledgerIds.get(missing[0][0]) ?? 'absent'})` : ''}`,
  );

  // Figures for the targets.
  const checkout = new Samples();
  for (const s of people) if (s.checkoutMs !== undefined) checkout.add(s.checkoutMs);
  const purchase = d.client.latency.get('purchase') ?? new Samples();
  const confirmedRows = L.orders.filter((o) => o.status === 'confirmed');
  const lastSoldAt = confirmedRows.length ? d.client.localTime(Math.max(...confirmedRows.map((o) => Date.parse(o.created_at)))) : null;
  const soldOutNotice = { sse: new Samples(), poll: new Samples() };
  if (L.soldOut && lastSoldAt !== null) {
    for (const s of people) {
      if (!s.waitingWhenSoldOut || s.soldOutAt === undefined) continue;
      (s.soldOutVia === 'sse' ? soldOutNotice.sse : soldOutNotice.poll).add(Math.max(0, s.soldOutAt - lastSoldAt));
    }
  }
  const soldUnits = sumBy(confirmedRows, (o) => o.quantity);
  const botUnits = sumBy(
    confirmedRows.filter((o) => d.isBot(o.user_id)),
    (o) => o.quantity,
  );
  const stillWaiting = people.filter((s) => s.outcome === 'stopped' && s.enterDoneAt !== undefined).length;

  const targets: Target[] = [
    {
      name: 'checkout p99 (admitted people, first request to final answer)',
      goal: '< 500 ms',
      value: `${fmt(checkout.quantile(0.99))} ms (p50 ${fmt(checkout.quantile(0.5))}, ${checkout.count} checkouts)`,
      met: checkout.count ? checkout.quantile(0.99) < 500 : null,
    },
    {
      name: 'sold-out reaches every waiting stream',
      goal: '≤ 1 s after the last unit sold',
      value: soldOutNotice.sse.count
        ? `max ${fmt(soldOutNotice.sse.max)} ms, p99 ${fmt(soldOutNotice.sse.quantile(0.99))} ms over ${soldOutNotice.sse.count} streams${stillWaiting ? `; ${stillWaiting} people never told` : ''}`
        : 'no stream was waiting at sold-out',
      met: L.soldOut && soldOutNotice.sse.count ? soldOutNotice.sse.max <= 1000 && stillWaiting === 0 : null,
    },
    {
      name: 'sold-out reaches every polling client',
      goal: `≤ poll interval + 1 s (${(d.opts.pollEveryMs * 1.2 + 1000) / 1000} s)`,
      value: soldOutNotice.poll.count
        ? `max ${fmt(soldOutNotice.poll.max)} ms, p50 ${fmt(soldOutNotice.poll.quantile(0.5))} ms over ${soldOutNotice.poll.count} pollers`
        : 'no poller was waiting at sold-out',
      met: soldOutNotice.poll.count ? soldOutNotice.poll.max <= d.opts.pollEveryMs * 1.2 + 1000 : null,
    },
    {
      name: 'bots\u2019 share of units sold',
      goal: '< 5 %',
      value: soldUnits ? `${((100 * botUnits) / soldUnits).toFixed(2)} % (${botUnits} of ${soldUnits})` : 'nothing sold',
      met: soldUnits ? botUnits / soldUnits < 0.05 : null,
    },
    {
      name: 'stock sells through',
      goal: `all ${units} units sold when demand exceeds stock`,
      value: `${soldUnits} sold`,
      met: people.length > units * 2 ? soldUnits === units : null,
    },
    queueOpens(d, people),
  ];

  const errors = new Map<string, number>();
  for (const s of d.shoppers) if (s.outcome === 'error') errors.set(`${s.kind}: ${s.error}`, (errors.get(`${s.kind}: ${s.error}`) ?? 0) + 1);
  const count = (xs: ShopperRecord[], f: (s: ShopperRecord) => boolean) => xs.filter(f).length;
  const figures: Figures = {
    people: {
      total: people.length,
      entered: count(people, (s) => s.place !== undefined),
      streams: count(people, (s) => s.channel === 'sse'),
      pollers: count(people, (s) => s.channel === 'poll'),
      admitted: count(people, (s) => s.admittedAt !== undefined),
      bought: count(people, (s) => s.outcome === 'bought'),
      sold_out: count(people, (s) => s.outcome === 'sold_out'),
      held_back_as_bots: count(people, (s) => s.heldBack === true),
      expired: count(people, (s) => s.outcome === 'expired'),
      errors: count(people, (s) => s.outcome === 'error'),
      unfinished: count(people, (s) => s.outcome === 'stopped' || s.outcome === 'pending'),
    },
    bots: {
      total: bots.length,
      entered: count(bots, (s) => s.place !== undefined),
      bought: count(bots, (s) => s.outcome === 'bought'),
      purchase_requests: sumBy(bots, (s) => s.purchaseRequests),
      errors: count(bots, (s) => s.outcome === 'error'),
    },
    errors: [...errors].sort((a, b) => b[1] - a[1]).slice(0, 8),
    checkout,
    purchase,
    soldOutNotice,
    lastSoldAt,
    botUnits,
    soldUnits,
    admittedPerSec: admissionsPerSecond(d, people),
    fifo,
  };
  if (L.error) {
    // The ledger could not be read: every ledger-side check fails, saying why.
    for (const c of checks)
      if (c.source === 'ledger') {
        c.held = false;
        c.detail = `the ledger could not be read: ${L.error}`;
      }
    check('§3.7', 'the ledger answers after the drop', 'ledger', false, L.error);
  }
  const ok = checks.every((c) => c.held !== false);
  return { ok, checks, targets, figures };
}

function queueOpens(d: DropData, people: ShopperRecord[]): Target {
  const early = people.filter((s) => s.enterDoneAt !== undefined && s.enterDoneAt < d.sale.opensAt && s.serverAdmittedAt !== undefined);
  if (!early.length) return { name: 'queue opens on time', goal: '≤ 1 s after starts_at', value: 'nobody admitted had entered before the opening', met: null };
  const first = Math.min(...early.map((s) => s.serverAdmittedAt!)) - Date.parse(d.sale.startsAtIso);
  return { name: 'queue opens on time', goal: '≤ 1 s after starts_at', value: `first admission ${fmt(first)} ms after starts_at`, met: first <= 1000 };
}

/**
 * FIFO from outside. Entry: once someone's enter-queue was answered, nobody who sends theirs
 * later may get an earlier place (places equal are allowed: a shadow place looks like the next
 * real one). With queue lanes that holds within each lane (lane = (place − 1) mod shards), and
 * across lanes it is measured: how many, the largest head start lost, and how far places sit from
 * arrival order (rank by place against rank by answer time). Admission: the server stamps each
 * admission (`admission_expires_at` less the TTL); walking the admitted in place order, a stamp
 * earlier than one already seen is an inversion.
 */
function fifoFigures(d: DropData, people: ShopperRecord[]): FifoFigures {
  const shards = d.opts.queueShards ?? 1;
  const entered = people.filter((s) => s.place && s.enterSentAt !== undefined && s.enterDoneAt !== undefined);
  const all = entryInversions(entered);
  let laneInversions = 0;
  for (let lane = 0; lane < shards; lane++) laneInversions += entryInversions(entered.filter((s) => (s.place! - 1) % shards === lane)).count;

  const byPlace = [...entered].sort((a, b) => a.place! - b.place!);
  const arrivalRank = new Map([...entered].sort((a, b) => a.enterDoneAt! - b.enterDoneAt! || a.enterSentAt! - b.enterSentAt!).map((s, i) => [s, i]));
  const off = byPlace.map((s, i) => Math.abs(i - arrivalRank.get(s)!)).sort((a, b) => a - b);
  const at = (q: number) => (off.length ? off[Math.min(off.length - 1, Math.floor(q * off.length))] : 0);

  const stamped = people.filter((s) => s.place && s.serverAdmittedAt !== undefined).sort((a, b) => a.place! - b.place!);
  let admissionInversions = 0;
  let latest = -Infinity;
  for (const s of stamped) {
    // The stamps are ISO strings with milliseconds: allow 1 ms of rounding.
    if (s.serverAdmittedAt! < latest - 1) admissionInversions++;
    latest = Math.max(latest, s.serverAdmittedAt!);
  }
  return {
    shards,
    entryInversions: all.count,
    laneInversions,
    lostMs: all.lostMs,
    displacement: { p50: at(0.5), p99: at(0.99), max: off.length ? off[off.length - 1] : 0 },
    admissionInversions,
    admittedAbove: people.filter((s) => s.admittedAbove).length,
    stamped: stamped.length,
  };
}

/**
 * People who got a place ahead of someone whose entry had already been answered (`count`), and
 * the largest such head start lost (ms from that answer to the later one's request). Walking
 * people by place from the back, the earliest-answered of those with a later place is a running
 * minimum over the answer order: O(n log n).
 */
function entryInversions(entered: ShopperRecord[]): { count: number; lostMs: number } {
  const byDone = [...entered].sort((a, b) => a.enterDoneAt! - b.enterDoneAt!);
  const doneIndex = new Map(byDone.map((s, i) => [s, i]));
  const answeredBefore = (s: ShopperRecord) => {
    let lo = 0;
    let hi = byDone.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byDone[mid].enterDoneAt! < s.enterSentAt!) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const byPlaceDesc = [...entered].sort((a, b) => b.place! - a.place!);
  let count = 0;
  let lostMs = 0;
  let earliestLater = Infinity;
  for (let i = 0; i < byPlaceDesc.length;) {
    // Everyone with this place (equal places are no inversion), then they join the "later" set.
    let j = i;
    while (j < byPlaceDesc.length && byPlaceDesc[j].place === byPlaceDesc[i].place) j++;
    for (let k = i; k < j; k++) {
      const b = byPlaceDesc[k];
      if (earliestLater < answeredBefore(b)) {
        count++;
        lostMs = Math.max(lostMs, b.enterSentAt! - byDone[earliestLater].enterDoneAt!);
      }
    }
    for (let k = i; k < j; k++) earliestLater = Math.min(earliestLater, doneIndex.get(byPlaceDesc[k])!);
    i = j;
  }
  return { count, lostMs };
}

function admissionsPerSecond(d: DropData, people: ShopperRecord[]): Figures['admittedPerSec'] {
  const told: number[] = [];
  const server: number[] = [];
  const bump = (a: number[], t: number) => {
    const i = Math.max(0, Math.floor((t - d.startedAt) / 1000));
    while (a.length <= i) a.push(0);
    a[i]++;
  };
  for (const s of people) {
    if (s.admittedAt !== undefined) bump(told, s.admittedAt);
    if (s.serverAdmittedAt !== undefined) bump(server, d.client.localTime(s.serverAdmittedAt));
  }
  return { told, server };
}

function drainRate(trace: Array<{ t: number; open: number }>): string {
  if (trace.length < 2) return '';
  const a = trace[0];
  const b = trace[trace.length - 1];
  const rate = ((a.open - b.open) * 1000) / Math.max(1, b.t - a.t);
  return `voiding ${rate.toFixed(0)}/s (${a.open} → ${b.open} in ${((b.t - a.t) / 1000).toFixed(0)} s)`;
}

export const fmt = (v: number) => (Number.isFinite(v) ? (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1)) : '—');
