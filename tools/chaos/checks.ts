/**
 * The verdict on one chaos scenario: each invariant of the fault contract, judged from outside
 * (every answer the buyers got) and from inside (the ledger, the engine's keys, the stream). A
 * check that fails says which orders, keys or requests broke it, with the evidence, so whoever
 * reads the report can go straight to the ledger row or the log line.
 */
import { Samples } from '../samples.js';
import type { Answer } from './answers.js';
import type { Buyer } from './buyers.js';
import type { EnginePicture, LedgerPayment, LedgerPicture, StreamPicture } from './inside.js';

export interface FaultWindow {
  /** What was done (`kill -9 node-1`, `PostgreSQL SIGSTOP`), from when to when (epoch ms). */
  what: string;
  from: number;
  to: number;
}

export interface CheckInput {
  sale: { id: string; sku: string; quantity: number };
  answers: Answer[];
  buyers: Buyer[];
  faults: FaultWindow[];
  ledger: LedgerPicture | null;
  engine: EnginePicture | null;
  stream: StreamPicture | null;
  /** Why an inside read failed, when it did. */
  readErrors: string[];
  /** The sale's public status at the end, and when (epoch ms) a reader first saw it sold out. */
  finalStatus: string | null;
  soldOutSeenAt: number | null;
  /** When the run's buyers stopped (epoch ms): holds reserved before it must have ended by the checks. */
  stoppedAt: number;
  /**
   * Event-loop stalls seen meanwhile: the driver's own ([time, ms]; when it stalls, its timings
   * include its own lag) and each node's ([time, node, ms], the worst per metrics scrape).
   */
  stalls: { driver: Array<[number, number]>; nodes: Array<[number, number, number]> };
  opts: CheckOptions;
}

export interface CheckOptions {
  /** A key may answer "in progress" only this long after its first try (ms). */
  keyDeadlineMs: number;
  /** Every request during a fault must be answered within this long (ms). */
  latencyLimitMs: number;
  /** Requests sent this long after a fault ended still count as during it (ms). */
  faultGraceMs: number;
  /** False: the latency figure is reported, not judged (the short run on a busy machine). */
  judgeLatency: boolean;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  /** True when the check was reported only, not judged. */
  reportOnly?: boolean;
  summary: string;
  /** What broke it: one line per order, key or request (the first few). */
  evidence: string[];
}

export interface Figures {
  requests: number;
  faultRequests: number;
  faultMaxMs: number;
  faultP99Ms: number;
  /** p99 of the answers before the fault: the load's own figure, to compare with. */
  beforeP99Ms: number;
  unavailableWithRetryAfter: number;
  /** 5xx answers that were not a 503 with Retry-After (500s, bare 503s). */
  unclean5xx: number;
  noAnswer: number;
  confirmed: number;
  oversell: number;
  drift: number;
  inProgressAfterDeadline: number;
  capturesWithoutOrder: number;
  eventsMissing: number;
  /** Answers that said the live sale does not exist. */
  saleNotFound: number;
  soldOut: boolean;
  outcomes: Record<string, number>;
}

const EVIDENCE_LINES = 12;
const fmtMs = (ms: number) => (Number.isFinite(ms) ? `${Math.round(ms)} ms` : '—');

function result(name: string, lines: string[], summary: string, reportOnly = false): CheckResult {
  return {
    name,
    ok: reportOnly || lines.length === 0,
    reportOnly: reportOnly || undefined,
    summary,
    evidence: lines.slice(0, EVIDENCE_LINES).concat(more(lines)),
  };
}
const more = (lines: string[]) => (lines.length > EVIDENCE_LINES ? [`… and ${lines.length - EVIDENCE_LINES} more`] : []);

export function judge(input: CheckInput): { checks: CheckResult[]; figures: Figures } {
  const { ledger } = input;
  const confirmedUnits = ledger ? sum(ledger.orders.filter((o) => o.status === 'confirmed').map((o) => o.quantity)) : NaN;
  const latency = faultLatency(input);
  const keys = keyDeadlines(input);
  const balance = engineBalance(input);
  const money = captures(input);
  const events = eventsReachStream(input);
  const checks = [
    noOversell(input),
    balance.check,
    soldOut(input),
    confirmedInLedger(input),
    money.check,
    keys.check,
    latency.check,
    cleanRefusals(input),
    saleNeverVanishes(input),
    events.check,
  ];
  const outcomes: Record<string, number> = {};
  for (const b of input.buyers) outcomes[`${b.kind}:${b.outcome}`] = (outcomes[`${b.kind}:${b.outcome}`] ?? 0) + 1;
  const figures: Figures = {
    requests: input.answers.length,
    faultRequests: latency.count,
    faultMaxMs: latency.max,
    faultP99Ms: latency.p99,
    beforeP99Ms: latency.baselineP99,
    unavailableWithRetryAfter: input.answers.filter((a) => a.status === 503 && a.retryAfter).length,
    unclean5xx: input.answers.filter((a) => a.status >= 500 && !(a.status === 503 && a.retryAfter)).length,
    noAnswer: input.answers.filter((a) => a.status === 0).length,
    confirmed: confirmedUnits,
    oversell: oversellUnits(input),
    drift: balance.drift,
    inProgressAfterDeadline: keys.late,
    capturesWithoutOrder: money.orphans,
    eventsMissing: events.missing,
    saleNotFound: input.answers.filter((a) => a.code === 'SALE_NOT_FOUND').length,
    soldOut: checks[2].ok && input.finalStatus === 'sold_out',
    outcomes,
  };
  return { checks, figures };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Units confirmed past the quantity, in the ledger or in the answers, whichever is worse. */
function oversellUnits(input: CheckInput): number {
  const q = input.sale.quantity;
  const ledgerUnits = input.ledger ? sum(input.ledger.orders.filter((o) => o.status === 'confirmed').map((o) => o.quantity)) : 0;
  return Math.max(0, ledgerUnits - q, confirmedAnswers(input).size - q);
}

/** Order ids the buyers were told are confirmed (a purchase 201 or a paid order). */
function confirmedAnswers(input: CheckInput): Map<string, Answer> {
  const out = new Map<string, Answer>();
  for (const a of input.answers) if (a.orderId && a.orderStatus === 'confirmed' && !out.has(a.orderId)) out.set(a.orderId, a);
  return out;
}

function noOversell(input: CheckInput): CheckResult {
  const lines: string[] = [];
  const q = input.sale.quantity;
  const told = confirmedAnswers(input).size;
  if (told > q) lines.push(`buyers were told 'confirmed' for ${told} distinct orders of ${q} units`);
  if (input.ledger) {
    for (const item of input.ledger.items) {
      const orders = input.ledger.orders.filter((o) => o.sku === item.sku);
      const confirmed = sum(orders.filter((o) => o.status === 'confirmed').map((o) => o.quantity));
      const reserved = sum(orders.filter((o) => o.status === 'reserved').map((o) => o.quantity));
      if (confirmed + reserved > item.quantity) lines.push(`${item.sku}: ledger has ${confirmed} confirmed + ${reserved} reserved units of ${item.quantity}`);
    }
  } else lines.push(`ledger unreadable: ${input.readErrors.join('; ')}`);
  if (input.engine) {
    for (const [sku, n] of Object.entries(input.engine.stock)) if (n < 0) lines.push(`${sku}: engine stock is ${n}`);
  }
  return result('no oversell', lines, `${told} confirmed answers, quantity ${q}`);
}

/**
 * The engine and the ledger agree once the repair window is over: for each SKU the engine's
 * stock plus its holds plus the ledger's sold units is the quantity; the engine's holds are the
 * ledger's reserved orders; the ledger's own counters match its orders; no hold outlived its window.
 */
function engineBalance(input: CheckInput): { check: CheckResult; drift: number } {
  const { ledger, engine } = input;
  const lines: string[] = [];
  let drift = 0;
  if (!ledger || !engine) {
    lines.push(`cannot compare: ${input.readErrors.join('; ') || 'no picture'}`);
    return { check: result('stock balance (engine + ledger)', lines, 'unread'), drift: NaN };
  }
  if (!engine.present) lines.push(`the sale ${input.sale.id} has no keys in the engine (lost and never rebuilt)`);
  for (const item of ledger.items) {
    const orders = ledger.orders.filter((o) => o.sku === item.sku);
    const sold = sum(orders.filter((o) => o.status === 'confirmed').map((o) => o.quantity));
    const reserved = orders.filter((o) => o.status === 'reserved');
    const reservedUnits = sum(reserved.map((o) => o.quantity));
    const stock = engine.stock[item.sku] ?? 0;
    const holds = engine.holds.filter((h) => h.sku === item.sku);
    const held = sum(holds.map((h) => h.quantity));
    const off = stock + held + sold - item.quantity;
    drift += Math.abs(off);
    if (off !== 0) {
      lines.push(
        `${item.sku}: engine stock ${stock} + engine holds ${held} + ledger sold ${sold} = ${stock + held + sold}, quantity ${item.quantity} (${off > 0 ? 'phantom' : 'lost'} ${Math.abs(off)})`,
      );
    }
    if (engine.present && engine.quantity[item.sku] !== item.quantity)
      lines.push(`${item.sku}: engine quantity ${engine.quantity[item.sku]}, ledger ${item.quantity}`);
    if (item.sold !== sold || item.held !== reservedUnits) {
      lines.push(`${item.sku}: ledger counters sold ${item.sold} / held ${item.held}, its orders say ${sold} confirmed / ${reservedUnits} reserved`);
    }
    const holdIds = new Set(holds.map((h) => h.id));
    const reservedIds = new Set(reserved.map((o) => o.id));
    for (const h of holds)
      if (!reservedIds.has(h.id)) lines.push(`engine hold ${h.id} (user ${h.userId}) has no reserved order (ledger: ${statusOf(ledger, h.id)})`);
    for (const o of reserved) if (!holdIds.has(o.id)) lines.push(`reserved order ${o.id} (user ${o.user_id}) has no engine hold`);
    for (const o of reserved) {
      if (o.reservation_expires_at.getTime() < input.stoppedAt)
        lines.push(`order ${o.id} still reserved; its window ended ${new Date(o.reservation_expires_at).toISOString()}`);
    }
  }
  const units = sum(engine.holds.map((h) => h.quantity));
  if (engine.present && engine.heldCounter !== units) lines.push(`engine 'held' counter ${engine.heldCounter}, its holds add up to ${units}`);
  return { check: result('stock balance (engine + ledger)', lines, `drift ${drift} unit(s)`), drift };
}

const statusOf = (ledger: LedgerPicture, orderId: string) => ledger.orders.find((o) => o.id === orderId)?.status ?? 'no order';

function soldOut(input: CheckInput): CheckResult {
  const payers = input.buyers.filter((b) => b.kind !== 'never').length;
  const demand = payers > input.sale.quantity;
  const lines: string[] = [];
  const seen = input.soldOutSeenAt ? 'seen sold out during the run' : 'never seen sold out during the run';
  if (!demand) return result('reaches sold-out', [], `demand (${payers} paying buyers) does not exceed ${input.sale.quantity} units: not judged`, true);
  const confirmed = input.ledger ? sum(input.ledger.orders.filter((o) => o.status === 'confirmed').map((o) => o.quantity)) : NaN;
  if (input.finalStatus !== 'sold_out') lines.push(`the sale's status at the end is '${input.finalStatus ?? 'unreadable'}' (${seen})`);
  if (confirmed !== input.sale.quantity) {
    const stock = input.engine ? Object.values(input.engine.stock).join('/') : '?';
    lines.push(`the ledger confirms ${confirmed} of ${input.sale.quantity} units with ${payers} paying buyers; engine stock left: ${stock}`);
  }
  return result('reaches sold-out', lines, `${confirmed}/${input.sale.quantity} sold, ${seen}`);
}

/** Every order a buyer was told is confirmed is confirmed in the ledger; every reserved answer has its row; one order per key. */
function confirmedInLedger(input: CheckInput): CheckResult {
  const lines: string[] = [];
  const { ledger } = input;
  if (!ledger) return result('confirmed answers in the ledger', [`ledger unreadable: ${input.readErrors.join('; ')}`], 'unread');
  const byId = new Map(ledger.orders.map((o) => [o.id, o]));
  const told = confirmedAnswers(input);
  for (const [id, a] of told) {
    const o = byId.get(id);
    if (!o) lines.push(`order ${id} (user ${a.userId}, key ${a.key ?? '—'}) was answered confirmed by node ${a.node} but is not in the ledger`);
    else if (o.status !== 'confirmed') lines.push(`order ${id} (user ${a.userId}) was answered confirmed but the ledger says '${o.status}'`);
  }
  for (const a of input.answers) {
    if (a.orderId && !byId.has(a.orderId) && !told.has(a.orderId))
      lines.push(`order ${a.orderId} (user ${a.userId}) was answered ${a.orderStatus} but is not in the ledger`);
  }
  const perKey = new Map<string, Set<string>>();
  for (const a of input.answers) if (a.key && a.orderId) (perKey.get(a.key) ?? perKey.set(a.key, new Set()).get(a.key)!).add(a.orderId);
  for (const [key, ids] of perKey) if (ids.size > 1) lines.push(`key ${key} was answered with ${ids.size} orders: ${[...ids].join(', ')}`);
  return result('confirmed answers in the ledger', lines, `${told.size} confirmed answers checked`);
}

/** A payment row says money was taken: a capture, or a direct charge that went through. */
const captured = (p: LedgerPayment) => p.status === 'captured' || Number(p.captured_cents ?? 0) > 0;
/** Given back in full: the payment says refunded, or its refunded cents cover what it took. */
const refunded = (p: LedgerPayment) =>
  p.status === 'refunded' ||
  /refund/i.test(String(p.ended_reason ?? '')) ||
  (Number(p.refunded_cents ?? 0) > 0 && Number(p.refunded_cents) >= Number(p.captured_cents ?? 0));

function captures(input: CheckInput): { check: CheckResult; orphans: number } {
  const { ledger } = input;
  if (!ledger) return { check: result('captures belong to confirmed orders', [`ledger unreadable: ${input.readErrors.join('; ')}`], 'unread'), orphans: NaN };
  const lines: string[] = [];
  const byId = new Map(ledger.orders.map((o) => [o.id, o]));
  let orphans = 0;
  const takenPerUser = new Map<string, string[]>();
  for (const p of ledger.payments) {
    if (!captured(p) || refunded(p)) continue;
    const order = p.order_id ? byId.get(p.order_id) : undefined;
    (takenPerUser.get(p.user_id) ?? takenPerUser.set(p.user_id, []).get(p.user_id)!).push(p.id);
    if (order?.status === 'confirmed') continue;
    orphans++;
    lines.push(
      `payment ${p.id} (${p.kind}, user ${p.user_id}) took ${p.captured_cents} cents for order ${p.order_id ?? '—'} which is '${order?.status ?? 'missing'}', not refunded`,
    );
  }
  for (const [user, ids] of takenPerUser) if (ids.length > 1) lines.push(`user ${user} was charged ${ids.length} times: ${ids.join(', ')}`);
  const paymentIds = new Set(ledger.payments.filter(captured).map((p) => p.id));
  for (const o of ledger.orders) {
    if (o.status === 'confirmed' && (!o.payment_id || !paymentIds.has(o.payment_id)))
      lines.push(`confirmed order ${o.id} has no captured payment (payment_id ${o.payment_id ?? '—'})`);
  }
  const taken = ledger.payments.filter((p) => captured(p)).length;
  const back = ledger.payments.filter((p) => captured(p) && refunded(p)).length;
  return { check: result('captures belong to confirmed orders', lines, `${taken} captures, ${back} refunded, ${orphans} without a confirmed order`), orphans };
}

/** No idempotency key answers "in progress" once its deadline (counted from its first try) has passed. */
function keyDeadlines(input: CheckInput): { check: CheckResult; late: number } {
  const first = new Map<string, number>();
  const lateByKey = new Map<string, Answer[]>();
  for (const a of [...input.answers].sort((x, y) => x.at - y.at)) {
    if (!a.key) continue;
    if (!first.has(a.key)) first.set(a.key, a.at);
    if (a.status === 409 && a.code === 'REQUEST_IN_PROGRESS' && a.at - first.get(a.key)! > input.opts.keyDeadlineMs) {
      (lateByKey.get(a.key) ?? lateByKey.set(a.key, []).get(a.key)!).push(a);
    }
  }
  const lines = [...lateByKey].map(([key, late]) => {
    const last = late[late.length - 1];
    const final = input.answers.filter((a) => a.key === key).sort((x, y) => y.at - x.at)[0];
    return `key ${key}: ${late.length} 'in progress' answers after the deadline, the last ${((last.at - first.get(key)!) / 1000).toFixed(1)} s after its first try; final answer ${final.status} ${final.code ?? final.orderStatus ?? ''}`;
  });
  const inProgress = input.answers.filter((a) => a.status === 409 && a.code === 'REQUEST_IN_PROGRESS').length;
  return {
    check: result(
      'no key in progress past its deadline',
      lines,
      `${inProgress} 'in progress' answers over ${first.size} keys; ${lateByKey.size} past ${input.opts.keyDeadlineMs / 1000} s`,
    ),
    late: lateByKey.size,
  };
}

/**
 * Requests the fault reached: sent during it (or within the grace after it), or in flight when
 * it began. The time that counts is from when the fault reached the request: its send, or the
 * fault's start for one already in flight (a request slow before the fault is the load's doing).
 */
function faultLatency(input: CheckInput): { check: CheckResult; count: number; max: number; p99: number; baselineP99: number } {
  const reached = (a: Answer): number | null => {
    for (const f of input.faults) {
      if (a.at >= f.from && a.at <= f.to + input.opts.faultGraceMs) return a.ms;
      if (a.at < f.from && a.at + a.ms > f.from) return a.at + a.ms - f.from;
    }
    return null;
  };
  const during: Array<{ a: Answer; ms: number }> = [];
  const before = new Samples();
  const firstFault = Math.min(...input.faults.map((f) => f.from));
  for (const a of input.answers) {
    const ms = reached(a);
    if (ms !== null) during.push({ a, ms });
    else if (a.at + a.ms <= firstFault) before.add(a.ms);
  }
  const samples = new Samples();
  for (const d of during) samples.add(d.ms);
  const slow = during.filter((d) => d.ms > input.opts.latencyLimitMs).sort((x, y) => y.ms - x.ms);
  const lines = slow.map(({ a, ms }) => {
    const into = ((a.at - firstFault) / 1000).toFixed(1);
    const when = a.at >= firstFault ? `sent ${into} s into the fault` : `in flight for ${((firstFault - a.at) / 1000).toFixed(1)} s when it began`;
    return `${a.label} to node ${a.node} ${when}: ${a.status || 'no answer'} ${a.code ?? a.error ?? ''} after ${fmtMs(ms)}${a.key ? ` (key ${a.key})` : ''}`;
  });
  const inFault = (at: number) => input.faults.some((f) => at >= f.from && at <= f.to + input.opts.faultGraceMs);
  const driverStall = Math.max(0, ...input.stalls.driver.filter(([at]) => inFault(at)).map(([, ms]) => ms));
  const nodeStall = Math.max(0, ...input.stalls.nodes.filter(([at]) => inFault(at)).map(([, , ms]) => ms));
  const stalls = `event loop stalls during the fault: nodes up to ${fmtMs(nodeStall)}, this driver up to ${fmtMs(driverStall)}`;
  if (slow.length) lines.unshift(stalls);
  const summary = `${during.length} requests during the fault; max ${fmtMs(samples.max)}, p99 ${fmtMs(samples.quantile(0.99))} (before it: p99 ${fmtMs(before.quantile(0.99))}); ${slow.length} over ${input.opts.latencyLimitMs} ms`;
  return {
    check: result(`answered within ${input.opts.latencyLimitMs / 1000} s during the fault`, lines, summary, !input.opts.judgeLatency),
    count: during.length,
    max: samples.max,
    p99: samples.quantile(0.99),
    baselineP99: before.quantile(0.99),
  };
}

/** A dependency that is down is a 503 with Retry-After, never a 500 or a bare 503. */
function cleanRefusals(input: CheckInput): CheckResult {
  const counts = new Map<string, number>();
  for (const a of input.answers) {
    if (a.status < 500 || (a.status === 503 && a.retryAfter)) continue;
    const k = `${a.label} ${a.status} ${a.code ?? ''}${a.status === 503 ? ' without Retry-After' : ''}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const lines = [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} × ${k}`);
  const ok = input.answers.filter((a) => a.status === 503 && a.retryAfter).length;
  return result('5xx answers are 503 with Retry-After', lines, `${ok} × 503 with Retry-After, ${sum([...counts.values()])} other 5xx`);
}

/** The sale exists the whole time: no answer says it does not (an engine that lost it and has not rebuilt it yet). */
function saleNeverVanishes(input: CheckInput): CheckResult {
  const lost = input.answers.filter((a) => a.code === 'SALE_NOT_FOUND').sort((x, y) => x.at - y.at);
  const lines: string[] = [];
  if (lost.length) {
    const f0 = Math.min(...input.faults.map((f) => f.from));
    const rel = (t: number) => `${((t - f0) / 1000).toFixed(1)} s`;
    const perLabel = new Map<string, number>();
    for (const a of lost) perLabel.set(a.label, (perLabel.get(a.label) ?? 0) + 1);
    lines.push(
      `${lost.length} answers said 404 SALE_NOT_FOUND from ${rel(lost[0].at)} to ${rel(lost[lost.length - 1].at)} after the fault began: ${[...perLabel].map(([l, n]) => `${n} ${l}`).join(', ')}`,
    );
  }
  return result('the sale is never "not found"', lines, `${lost.length} × 404 SALE_NOT_FOUND`);
}

function eventsReachStream(input: CheckInput): { check: CheckResult; missing: number } {
  const { ledger, stream } = input;
  if (!ledger || !stream) return { check: result('every event reaches the stream', [`unread: ${input.readErrors.join('; ')}`], 'unread'), missing: NaN };
  const lines: string[] = [];
  const unpublished = ledger.outbox.filter((e) => !e.published);
  if (unpublished.length) lines.push(`${unpublished.length} outbox events never published: ${topics(unpublished)}`);
  const missing = ledger.outbox.filter((e) => !stream.outboxIds.has(e.id));
  if (missing.length)
    lines.push(
      `${missing.length} outbox events are not in the stream (ids ${missing
        .slice(0, 8)
        .map((e) => e.id)
        .join(', ')}…): ${topics(missing)}`,
    );
  if (stream.messages < ledger.outbox.length) lines.push(`the stream holds ${stream.messages} messages for ${ledger.outbox.length} outbox events`);
  return {
    check: result(
      'every event reaches the stream',
      lines,
      `${ledger.outbox.length} outbox events, ${stream.messages} stream messages, ${missing.length} missing`,
    ),
    missing: missing.length,
  };
}

function topics(events: Array<{ topic: string }>): string {
  const n = new Map<string, number>();
  for (const e of events) n.set(e.topic, (n.get(e.topic) ?? 0) + 1);
  return [...n].map(([t, c]) => `${c} ${t}`).join(', ');
}
