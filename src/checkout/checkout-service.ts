/**
 * Checkout: an admitted ticket buys. The engine decides in one atomic step (admission, limits,
 * idempotency, stock) and takes a hold; the ledger records the hold as a reserved order before
 * any money moves; payment turns it into a confirmed order — committed in the ledger before the
 * 201 leaves — or gives the units back. Every path that cannot finish leaves a reserved order
 * with an expiry, which the hold sweeper ends exactly once.
 */
import { randomUUID } from 'node:crypto';
import type { Engine, EngineHold } from '../engine/engine.js';
import type { EngineClock } from '../engine/engine-clock.js';
import { StampedeError, isUnavailable } from '../errors.js';
import { LedgerConflictError, LedgerOversellError, type Order, type OrderStatus } from '../ledger/ledger.js';
import type { OrdersRepository } from '../ledger/repositories.js';
import type { RateLimits } from '../defence/rate-limits.js';
import { RecentKeys } from './recent-keys.js';
import type { PaymentService } from '../payments/payment-service.js';
import type { QueueService } from '../queue/queue-service.js';
import type { SaleMonitor } from '../queue/sale-monitor.js';
import type { Ticket } from '../queue/ticket.js';
import type { SaleService } from '../sales/sale-service.js';

export interface PurchaseRequest {
  saleId: string;
  userId: string;
  ticket: string;
  sku: string;
  quantity: number;
  idempotencyKey: string;
  paymentToken?: string;
}

export interface OrderView {
  order_id: string;
  sale_id: string;
  sku: string;
  quantity: number;
  amount_cents: number;
  currency: string;
  status: Order['status'];
  reservation_expires_at?: string;
  /** Present once money was given back: the order's status stays what it was (an expired order stays expired). */
  payment_status?: 'refunded';
  refunded_cents?: number;
  created_at: string;
}

export function orderView(o: Order): OrderView {
  return {
    order_id: o.id,
    sale_id: o.saleId,
    sku: o.sku,
    quantity: o.quantity,
    amount_cents: o.amountCents,
    currency: o.currency,
    status: o.status,
    ...(o.status === 'reserved' ? { reservation_expires_at: o.reservationExpiresAt.toISOString() } : {}),
    ...(o.refundedCents > 0 ? { payment_status: 'refunded' as const, refunded_cents: o.refundedCents } : {}),
    created_at: o.createdAt.toISOString(),
  };
}

/** The answer every loser gets: 409 `{status: 'sold_out', error: {code: 'SOLD_OUT'}}`. */
/** One refusal for every loser: it carries no stack and its body is serialised once. */
const SOLD_OUT = new StampedeError('SOLD_OUT', undefined, { extra: Object.freeze({ status: 'sold_out' }) });
export const soldOut = () => SOLD_OUT;

export class CheckoutService {
  /** Each user's live order per sale, for a second: buyers poll their status too. */
  private readonly liveOrders = new Map<string, { order: Order | null; at: number }>();
  /** Idempotency keys this node saw lately: a retry is answered without spending the rate limit. */
  private readonly recentKeys = new RecentKeys(100_000);
  /** Orders whose last payment attempt on this node was answered 503: the retry is not counted. */
  private readonly retriesOwed = new RecentKeys(10_000);

  constructor(
    private readonly engine: Engine,
    private readonly ledger: OrdersRepository,
    private readonly clock: EngineClock,
    private readonly sales: SaleService,
    private readonly queue: QueueService,
    private readonly monitor: SaleMonitor,
    private readonly payments: PaymentService,
    private readonly limits: Pick<RateLimits, 'consume'>,
    private readonly log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void } = console,
  ) {}

  /**
   * The whole refusal pipeline of a purchase, cheapest first: sold out (from this node's
   * picture), a bad or shadow ticket, the shared per-user rate limit (not spent again by a retry
   * of a key this node saw), then the engine's atomic step and the ledger.
   */
  purchase(req: PurchaseRequest): Promise<OrderView> {
    return this.attempt(req, false);
  }

  private async attempt(req: PurchaseRequest, retried: boolean): Promise<OrderView> {
    this.refuseIfSoldOut(req.saleId, req.userId, req.sku);
    const ticket = this.screen(req.saleId, req.ticket, req.userId);
    await this.refuseIfFarFromAdmission(req.saleId, ticket);
    // A double click must not turn into a 429: a key seen lately skips the limit.
    const seen = `${req.saleId}|${req.userId}|${req.idempotencyKey}`;
    if (!this.recentKeys.has(seen)) await this.limits.consume('purchase', req.userId);
    this.recentKeys.add(seen);

    const place = await this.queue.placeOf(ticket);
    let result;
    try {
      result = await this.engine.reserve(req.saleId, {
        userId: req.userId,
        place,
        sku: req.sku,
        quantity: req.quantity,
        idempotencyKey: req.idempotencyKey,
        fingerprint: `${req.sku}\u0000${req.quantity}`,
        holdId: randomUUID(),
      });
    } catch (err) {
      if (err instanceof StampedeError && (err.code === 'SOLD_OUT' || err.code === 'INSUFFICIENT_STOCK')) void this.monitor.refresh(req.saleId);
      // At the limit: perhaps because this very key bought, and the engine lost its keys (a
      // rebuild). The ledger's order under the key is then the first answer, not a refusal.
      if (err instanceof StampedeError && err.code === 'LIMIT_REACHED') {
        const first = await this.recordedOrder(req, null);
        if (first) return this.answer(first, req.paymentToken, true);
      }
      throw err;
    }

    if (result.kind === 'replay') return this.replay(req, result.holdId, retried);
    const order = await this.record(req, result.hold);
    if (result.remaining === 0) void this.monitor.refresh(req.saleId);
    return this.answer(order, req.paymentToken);
  }

  /** A reserved order is settled (paid when there is a way to); any other is answered as it stands. `again`: see `settle`. */
  private answer(order: Order, paymentToken: string | undefined, again = false): Promise<OrderView> {
    return order.status === 'reserved' ? this.settle(order, paymentToken, again) : Promise.resolve(orderView(order));
  }

  /**
   * A key used before. Its order answers (a reserved one is settled again: the first attempt may
   * have ended in a payment outage). A first attempt that never wrote its order — it failed, or its
   * node died between the engine and the ledger — is finished here: a hold still inside its window
   * gets its order now; a hold past it, or gone, takes the key with it and the request runs again
   * from the start. So a retry never answers "in progress".
   */
  private async replay(req: PurchaseRequest, holdId: string, retried: boolean): Promise<OrderView> {
    const order = await this.ledger.getOrder(holdId);
    if (order) return this.answer(order, req.paymentToken, true);
    const hold = await this.engine.getHold(req.saleId, holdId);
    // Inside its window: record it. Past it, the hold sweeper may be returning it right now, so
    // it is never recorded (an order for units back in stock): it goes back here, with its key.
    if (hold && hold.expiresAt > this.clock.now(req.saleId)) return this.answer(await this.record(req, hold), req.paymentToken);
    // Gone: a concurrent retry may have recorded and confirmed it since the first read (the engine
    // drops a hold only after the ledger settled its order), so ask again before forgetting the key.
    const settled = hold ? null : await this.ledger.getOrder(holdId);
    if (settled) return this.answer(settled, req.paymentToken, true);
    await this.engine.releaseHold(req.saleId, holdId, { userId: req.userId, idempotencyKey: req.idempotencyKey });
    if (retried) throw new StampedeError('UNAVAILABLE', 'The order could not be recorded; retry shortly', { retryAfter: 1 });
    return this.attempt(req, true);
  }

  /**
   * Writes the hold's order to the ledger. When the ledger refuses for sure (its stock guard, or
   * the key already has an order under another id) the hold goes back with its key forgotten, so
   * "retry shortly" really runs again — and an order already under the key is the answer. When the
   * outcome is unknown (a deadline passed, the connection dropped) the write may still commit, so
   * hold and key stay: the retry finds the order or records the live hold, and a hold nobody comes
   * back for is returned by the hold sweeper after its window, once the ledger says it has no order.
   */
  private async record(req: PurchaseRequest, hold: EngineHold): Promise<Order> {
    try {
      return await this.ledger.reserveOrder({
        id: hold.holdId,
        saleId: req.saleId,
        sku: req.sku,
        userId: req.userId,
        quantity: req.quantity,
        idempotencyKey: req.idempotencyKey,
        reservationExpiresAt: new Date(hold.expiresAt),
      });
    } catch (err) {
      const refused = err instanceof LedgerOversellError || err instanceof LedgerConflictError;
      if (!refused) throw new StampedeError('UNAVAILABLE', 'The order could not be recorded; retry shortly', { retryAfter: 1 });
      const recorded = await this.recordedOrder(req, hold.holdId);
      if (recorded?.id === hold.holdId) return recorded;
      const forget = { userId: req.userId, idempotencyKey: req.idempotencyKey };
      await this.engine.releaseHold(req.saleId, hold.holdId, forget).catch((releaseErr: unknown) => {
        // The hold stays until its window ends; the hold sweeper then finds no order and releases it with its key.
        this.log.error({ err: releaseErr, saleId: req.saleId, holdId: hold.holdId }, 'a hold without an order could not be released now; the sweeper will');
      });
      if (recorded) return recorded;
      if (err instanceof LedgerOversellError) this.log.error({ err, saleId: req.saleId }, 'ledger refused a hold the engine took: engine and ledger disagree');
      throw new StampedeError('UNAVAILABLE', 'The order could not be recorded; retry shortly', { retryAfter: 1 });
    }
  }

  /** The order the ledger holds for this hold or, failing that, for this request's key (null when none, or the ledger cannot say). */
  private async recordedOrder(req: PurchaseRequest, holdId: string | null): Promise<Order | null> {
    try {
      const byId = holdId === null ? null : await this.ledger.getOrder(holdId);
      if (byId) return byId;
      const mine = await this.ledger.listOrders(req.saleId, { userId: req.userId, limit: 1000 });
      return mine.find((o) => o.idempotencyKey === req.idempotencyKey) ?? null;
    } catch {
      return null;
    }
  }

  /** Throws SOLD_OUT for a user who never bought once every item of the sale is gone (the HTTP fast path). */
  refuseLoser(saleId: string, userId: string): void {
    const live = this.monitor.get(saleId);
    if (live?.status === 'sold_out' && !live.buyers.has(userId)) throw soldOut();
  }

  /**
   * Rejecting is most of the traffic: once this node's picture of the sale (read from the
   * engine together with the list of buyers) shows the item gone, a shopper who never bought —
   * and so cannot be replaying a first answer — is told without an engine call.
   */
  refuseIfSoldOut(saleId: string, userId: string, sku: string): void {
    const live = this.monitor.get(saleId);
    if (live?.soldOutSkus.has(sku) && !live.buyers.has(userId) && live.status !== 'ended' && live.status !== 'cancelled') throw soldOut();
  }

  /**
   * What can be refused without the engine, the ledger or a rate limit: a forged, foreign or
   * stale ticket, and a shadow one (a flagged bot, told it is not admitted — as a waiting
   * shopper would be). Bots hammer purchase; this keeps them off Redis.
   */
  screen(saleId: string, token: string, userId: string): Ticket {
    const ticket = this.queue.verify(saleId, token, userId);
    if (ticket.shadow) throw new StampedeError('NOT_ADMITTED');
    const live = this.monitor.get(saleId);
    if (live && ticket.epoch !== live.snapshot.epoch) throw new StampedeError('QUEUE_RESTARTED');
    return ticket;
  }

  /**
   * A ticket so far back in line that the engine cannot have admitted it yet is refused here,
   * without a rate limit or an engine call: bots holding waiting tickets hammer purchase, and each
   * such attempt cost the sale's shard three calls (docs/capacity.md: ~20,000 of them a second
   * fill it). "Cannot": the engine admits at most the sale's rate a second plus one second's
   * carried allowance, so since this node's picture (`age` old, engine time) the watermark moved
   * at most rate × (age + 1 s); the reach is twice that, against a rate changed just before the
   * start while this node held the old record (kept up to 2 s). With queue lanes, places have
   * gaps the watermark steps over (at most S − 1 per person admitted, when only one lane has
   * people left), so the reach is S times as far. Within reach, with no fresh picture, or for a
   * pre-queue ticket whose place is not in it, the engine decides as before.
   */
  private async refuseIfFarFromAdmission(saleId: string, ticket: Ticket): Promise<void> {
    const live = this.monitor.get(saleId);
    if (!live || live.stale || ticket.place <= 0) return;
    const ageSec = (this.clock.now(saleId) - live.snapshot.now) / 1000;
    if (!(ageSec >= 0 && ageSec <= 5)) return;
    const sale = await this.sales.get(saleId);
    const lanes = Math.max(1, live.snapshot.queueShards);
    const reach = live.snapshot.watermark + 2 * lanes * Math.ceil(sale.queue.admissionRatePerSec * (ageSec + 1)) + 10;
    if (ticket.place > reach) throw new StampedeError('NOT_ADMITTED');
  }

  /** Pays a reserved order later (`POST /api/orders/{id}/pay`), within the per-user purchase limit. */
  async pay(orderId: string, userId: string, paymentToken: string): Promise<OrderView> {
    // The shared per-user limit, except for the retry this node asked for: an attempt answered
    // 503 (a dependency away) is owed one more that does not count.
    const owed = `${orderId}|${userId}`;
    if (!this.retriesOwed.delete(owed)) await this.limits.consume('purchase', userId);
    try {
      return await this.payOwned(orderId, userId, paymentToken);
    } catch (err) {
      if ((err instanceof StampedeError && err.status === 503) || isUnavailable(err)) this.retriesOwed.add(owed);
      throw err;
    }
  }

  private async payOwned(orderId: string, userId: string, paymentToken: string): Promise<OrderView> {
    const order = await this.owned(orderId, userId);
    if (order.status === 'confirmed') return orderView(order);
    if (order.status === 'expired') throw new StampedeError('PAYMENT_WINDOW_PASSED');
    if (order.status !== 'reserved') throw new StampedeError('ORDER_NOT_PAYABLE');
    if (this.clock.now(order.saleId) >= order.reservationExpiresAt.getTime()) throw new StampedeError('PAYMENT_WINDOW_PASSED');
    return this.settle(order, paymentToken, true);
  }

  /** Gives a reserved order's hold back (`POST /api/orders/{id}/cancel`). */
  async cancel(orderId: string, userId: string): Promise<OrderView> {
    const order = await this.owned(orderId, userId);
    if (order.status === 'cancelled') return orderView(order);
    if (order.status !== 'reserved') throw new StampedeError('ORDER_NOT_PAYABLE', `A ${order.status} order cannot be cancelled`);
    const released = await this.end(order, 'cancelled');
    return orderView(released ?? (await this.ledger.getOrder(orderId))!);
  }

  async get(orderId: string, userId: string): Promise<OrderView> {
    return orderView(await this.owned(orderId, userId));
  }

  /** An order as the ledger holds it now (the payment tier asks whether a capture has an owner). */
  order(orderId: string): Promise<Order | null> {
    return this.ledger.getOrder(orderId);
  }

  /**
   * `POST /api/admin/orders/{id}/refund`: gives back the whole capture of a confirmed or lapsed
   * order; its status stays (a confirmed order keeps its units sold). Asked again, it answers the
   * same refund. A reserved order is still being paid or ended: NOTHING_TO_REFUND until it is.
   */
  async refund(orderId: string): Promise<OrderView> {
    const order = await this.ledger.getOrder(orderId);
    if (!order) throw new StampedeError('ORDER_NOT_FOUND');
    if (order.status === 'reserved') throw new StampedeError('NOTHING_TO_REFUND', 'The order is still reserved: pay or end it first');
    const refunded = await this.payments.refundOrder(order, 'refunded:admin');
    if (!refunded) throw new StampedeError('NOTHING_TO_REFUND');
    return orderView((await this.ledger.getOrder(orderId))!);
  }

  /**
   * The user's live order in a sale (confirmed, else reserved), from a one-second cache — or,
   * while the ledger does not answer, the last one this node read (a buyer's status keeps
   * answering, SPEC §6).
   */
  async liveOrderOf(saleId: string, userId: string): Promise<Order | null> {
    const key = `${saleId}|${userId}`;
    const hit = this.liveOrders.get(key);
    if (hit && Date.now() - hit.at < 1000) return hit.order;
    let orders: Order[];
    try {
      orders = await this.ledger.listOrders(saleId, { userId, limit: 100 });
    } catch (err) {
      if (hit && isUnavailable(err)) return hit.order;
      throw err;
    }
    const order = orders.find((o) => o.status === 'confirmed') ?? orders.find((o) => o.status === 'reserved') ?? null;
    if (this.liveOrders.size > 50_000) this.liveOrders.clear();
    this.liveOrders.set(key, { order, at: Date.now() });
    return order;
  }

  /** Users with a reserved order in the sale: their capture may still come. */
  async reservedBuyers(saleId: string): Promise<Set<string>> {
    const reserved = await this.ledger.listOrders(saleId, { status: 'reserved', limit: 100_000 });
    return new Set(reserved.map((o) => o.userId));
  }

  /** Ends every reserved order of a sale (a cancelled sale); returns how many. */
  async endReserved(saleId: string, status: 'cancelled' | 'expired'): Promise<number> {
    let ended = 0;
    for (const order of await this.ledger.listOrders(saleId, { status: 'reserved', limit: 1_000_000 })) {
      if (await this.end(order, status)) ended++;
    }
    return ended;
  }

  /** A sale's orders, oldest first (the admin's list). */
  list(saleId: string, opts: { status?: OrderStatus; limit?: number }): Promise<Order[]> {
    return this.ledger.listOrders(saleId, opts);
  }

  orderCounts(saleId: string): Promise<Record<OrderStatus, number>> {
    return this.ledger.orderCounts(saleId);
  }

  /**
   * Ends a reserved order without payment: ledger first (the record), then the engine hold,
   * exactly once each. When the ledger refuses (the order was paid or ended meanwhile) the engine
   * follows the ledger: a confirmed order's hold becomes permanent, never free stock.
   */
  async end(order: Order, status: 'expired' | 'cancelled' | 'failed'): Promise<Order | null> {
    const released = await this.ledger.releaseOrder(order.id, status);
    if (released) {
      await this.engine.releaseHold(order.saleId, order.id);
    } else {
      const current = await this.ledger.getOrder(order.id);
      if (current?.status === 'confirmed') await this.engine.confirmHold(order.saleId, order.id);
      else if (current?.status !== 'reserved') await this.engine.releaseHold(order.saleId, order.id);
    }
    void this.monitor.refresh(order.saleId);
    return released;
  }

  /**
   * Confirms a paid order in the ledger (the 201's promise) — recording the capture of its
   * authorisation in the same statement when `capturedCents` is given — then makes the engine
   * hold permanent.
   */
  async confirm(order: Order, paymentId: string, capturedCents?: number): Promise<Order | null> {
    const confirmed = await this.ledger.confirmOrder(order.id, paymentId, { capturedCents });
    if (confirmed) await this.engine.confirmHold(order.saleId, order.id);
    return confirmed;
  }

  /**
   * Confirms an order that was paid — or, when it had ended first (the capture's answer came
   * after the window; a sweeper expired it), gives the money back at once and records it on the
   * order, whose status stays. `confirmed: false` then; should the refund itself fail (an
   * outage), the void sweeper's stray-capture check makes it later.
   */
  async confirmPaid(order: Order, paymentId: string, capturedCents?: number): Promise<{ order: Order; confirmed: boolean }> {
    const confirmed = await this.confirm(order, paymentId, capturedCents);
    if (confirmed) return { order: confirmed, confirmed: true };
    const current = (await this.ledger.getOrder(order.id))!;
    if (current.status === 'confirmed' && (current.paymentId === null || current.paymentId === paymentId)) return { order: current, confirmed: true };
    const why = current.status === 'confirmed' ? 'duplicate' : current.status;
    try {
      await this.payments.refundPayment(paymentId, `refunded:${why}`);
      this.log.warn({ orderId: order.id, paymentId, orderStatus: current.status }, 'payment taken for an order that had already ended: refunded');
    } catch (err) {
      this.log.error(
        { err, orderId: order.id, paymentId },
        'payment taken for an order that had already ended: the refund failed; the void sweeper retries it',
      );
    }
    return { order: (await this.ledger.getOrder(order.id))!, confirmed: false };
  }

  /**
   * Takes payment if there is a way to (a live authorisation or a token); a gateway outage throws
   * and leaves the order reserved. `again`: the order existed before this request (a retry, a
   * later payment), so a capture already recorded for it (by a sweeper) is looked for first.
   */
  private async settle(order: Order, paymentToken: string | undefined, again = false): Promise<OrderView> {
    const settlement = await this.payments.settle(order, paymentToken, { again });
    if (settlement.outcome === 'none') return orderView(order);
    if (settlement.outcome === 'declined') {
      await this.end(order, 'failed');
      throw new StampedeError('PAYMENT_DECLINED', settlement.message, { extra: { order_id: order.id } });
    }
    const paid = await this.confirmPaid(order, settlement.paymentId, settlement.capturedCents);
    if (paid.confirmed) return orderView(paid.order);
    // Too late: the money went back (the order says so), or goes back with the next sweep.
    const view = orderView(paid.order);
    throw new StampedeError('PAYMENT_WINDOW_PASSED', 'The payment went through after the window had passed; it is refunded', {
      extra: { order_id: view.order_id, order_status: view.status, ...(view.refunded_cents ? { refunded_cents: view.refunded_cents } : {}) },
    });
  }

  private async owned(orderId: string, userId: string): Promise<Order> {
    const order = await this.ledger.getOrder(orderId);
    // Another user's order is as good as absent: no hint that the id exists.
    if (!order || order.userId !== userId) throw new StampedeError('ORDER_NOT_FOUND');
    return order;
  }
}
