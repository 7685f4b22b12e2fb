/**
 * The checks read from inside: the ledger's orders and payments, the engine's keys and the
 * stream, held against what the buyers were told. Each names the orders and payments that broke it.
 */
import type { Answer } from './answers.js';
import { result, sum, type CheckInput, type CheckResult } from './check-kit.js';
import type { LedgerPayment, LedgerPicture } from './inside.js';

/** Units confirmed past the quantity, in the ledger or in the answers, whichever is worse. */
export function oversellUnits(input: CheckInput): number {
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

export function noOversell(input: CheckInput): CheckResult {
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
export function engineBalance(input: CheckInput): { check: CheckResult; drift: number } {
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

export function soldOut(input: CheckInput): CheckResult {
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
export function confirmedInLedger(input: CheckInput): CheckResult {
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

export function captures(input: CheckInput): { check: CheckResult; orphans: number } {
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

export function eventsReachStream(input: CheckInput): { check: CheckResult; missing: number } {
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
