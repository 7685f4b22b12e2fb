/**
 * Settling money with the card network, not with memory (SPEC §6). After a crash, whether an
 * order was paid is read from what survives it: the ledger's own rows first (the order's charge,
 * the authorisation a confirmation captured for it), then the gateway, asked about the reference
 * the ledger stored (`retrieve`). Lookup by idempotency key — which for Stripe only this process
 * could answer exactly — is kept for the one row that never got a reference: a charge whose
 * reply was lost.
 *
 * A customer is never charged without a confirmed order: a capture that lands on an order that
 * lapsed, or that the gateway reports for an order the ledger ended, is refunded at once and
 * recorded on the payment (`refunded`) and on the order (`refunded_cents`), whose status stays.
 * `refundStrays` is the safety net for a refund that could not be made at once (an outage).
 */
import { StampedeError } from '../errors.js';
import type { Order, Payment } from '../ledger/ledger.js';
import type { PaymentsRepository } from '../ledger/repositories.js';
import { askGateway, type GatewayPayment, type PaymentGateway } from './gateway.js';

/** What settling asks of the checkout tier: an order as the ledger holds it now (does a capture have an owner?). */
export interface OrderPort {
  order(id: string): Promise<Order | null>;
}

/** Captures recorded this long ago at most are checked for an owner (and retried when their refund failed). */
export const STRAY_WINDOW_MS = 24 * 3600_000;
/** A capture younger than this is left to the request that made it, which refunds it itself should its order have ended. */
export const STRAY_GRACE_MS = 10_000;

/** The gateway took the money (and may have given it back since). */
const taken = (seen: GatewayPayment | null): boolean => seen?.state === 'captured' || seen?.state === 'refunded';

export class Reconciler {
  private orders: OrderPort | null = null;

  constructor(
    private readonly ledger: PaymentsRepository,
    private readonly gateway: PaymentGateway,
    private readonly now: () => number,
    private readonly log: { warn(obj: object, msg: string): void },
  ) {}

  /** Wires the checkout tier's view of orders. */
  useOrders(port: OrderPort): void {
    this.orders = port;
  }

  /**
   * Whether an order was paid: its own ledger rows, then the gateway by the stored reference of
   * the user's live authorisation (a capture that names another order is not this one's), then a
   * pending charge by its key. A capture found at the gateway is recorded for the order. Returns
   * the paying payment's id, or null. Throws PAYMENT_UNAVAILABLE when it cannot know yet (the
   * gateway does not answer; a lost charge too young for lookup to be final): the caller leaves
   * the order as it is and asks again later.
   */
  async reconcile(order: Order): Promise<string | null> {
    const rows = await this.ledger.paymentsOfOrder(order.id);
    const recorded = rows.find((p) => p.status === 'captured');
    if (recorded) return recorded.id;
    const auth = await this.ledger.liveAuthorization(order.saleId, order.userId);
    if (auth?.gatewayRef) {
      const seen = await this.retrieve(auth.gatewayRef);
      if (seen?.state === 'captured' && (seen.metadata.order ?? order.id) === order.id) {
        const paid = (await this.recordCapture(auth, seen, order.id)) ?? (await this.ledger.getPayment(auth.id));
        if (paid?.status === 'captured' && paid.orderId === order.id) return paid.id;
      }
    }
    const charge = rows.find((p) => p.kind === 'charge' && p.status === 'pending');
    if (charge) {
      const outcome = await askGateway(() => this.gateway.lookup(`charge:${order.id}`));
      if (outcome?.ok) {
        const paid = await this.ledger.transitionPayment(charge.id, ['pending'], 'captured', {
          gatewayRef: outcome.ref,
          capturedCents: outcome.amountCents,
          endedReason: 'captured',
        });
        if (paid) return paid.id;
      }
      if (!outcome && this.now() - charge.createdAt.getTime() < (this.gateway.lookupLagMs ?? 0)) {
        throw new StampedeError('PAYMENT_UNAVAILABLE', 'A charge for this order may still be on its way', { retryAfter: 5 });
      }
    }
    return null;
  }

  /**
   * The gateway says it took money the ledger has as not taken (a reply lost, a crash): the
   * ledger follows — captured, for the order the capture names — and the money goes back at once
   * unless a confirmed or reserved order owns it. Never voided, never marked failed.
   */
  async adopt(p: Payment, seen: GatewayPayment): Promise<void> {
    const captured = await this.recordCapture(p, seen, seen.metadata.order ?? p.orderId ?? undefined);
    if (captured?.status !== 'captured') return;
    if (seen.state === 'refunded') {
      await this.ledger.recordRefund(captured.id, seen.refundedCents, 'refunded:at_gateway');
      return;
    }
    await this.refundIfStray(captured);
  }

  /**
   * Gives a capture back unless its order may still own it: a reserved order (the hold sweeper
   * confirms it from this row) or a confirmed one it paid for. Returns the refunded payment, or
   * null when it was left.
   */
  async refundIfStray(p: Payment): Promise<Payment | null> {
    if (!this.orders) throw new Error('the reconciler needs the orders of the checkout tier (useOrders) before it refunds');
    const order = p.orderId ? await this.orders.order(p.orderId) : null;
    if (order?.status === 'reserved') return null;
    if (order?.status === 'confirmed' && (order.paymentId === null || order.paymentId === p.id)) return null;
    const why = !order ? 'no_order' : order.status === 'confirmed' ? 'duplicate' : order.status;
    return this.refund(p, `refunded:${why}`);
  }

  /**
   * Gives a payment's capture back in full: at the gateway under `refund:<payment>` (a retry never
   * refunds twice), then in the ledger (payment `refunded`, its order's `refunded_cents`). A
   * payment the ledger has as not taken is first checked at the gateway (a capture it missed is
   * recorded, then refunded). Answers a payment already refunded as it is; NOTHING_TO_REFUND when
   * the gateway holds nothing of it; PAYMENT_UNAVAILABLE when the gateway does not answer.
   */
  async refund(p: Payment, reason: string): Promise<Payment> {
    if (p.status === 'refunded') return p;
    const ref = p.gatewayRef;
    if (!ref) throw new StampedeError('NOTHING_TO_REFUND', 'The payment never reached the card network');
    if (p.status !== 'captured') {
      const seen = await this.retrieve(ref);
      if (!seen || !taken(seen)) throw new StampedeError('NOTHING_TO_REFUND', `The payment is ${p.status}; nothing was captured`);
      const captured = await this.recordCapture(p, seen, p.orderId ?? seen.metadata.order);
      if (!captured) throw new StampedeError('REQUEST_IN_PROGRESS', 'The payment is changing; retry in a moment', { retryAfter: 1 });
      return this.refund(captured, reason);
    }
    let amountCents = p.capturedCents;
    if (amountCents <= 0) amountCents = (await this.retrieve(ref))?.capturedCents ?? 0;
    if (amountCents <= 0) throw new StampedeError('NOTHING_TO_REFUND', 'Nothing was captured');
    const result = await askGateway(() => this.gateway.refund({ idempotencyKey: `refund:${p.id}`, ref, amountCents }));
    let refundedCents = amountCents;
    if (!result.ok) {
      // Nothing left to give back: refunded before (by hand, say). The ledger follows the gateway.
      const seen = await this.retrieve(ref);
      if (!seen || seen.refundedCents <= 0) throw new StampedeError('NOTHING_TO_REFUND', result.message);
      refundedCents = seen.refundedCents;
    }
    return (await this.ledger.recordRefund(p.id, refundedCents, reason)) ?? (await this.ledger.getPayment(p.id))!;
  }

  /** `refund` by payment id (the checkout tier's late capture). */
  async refundPayment(paymentId: string, reason: string): Promise<Payment> {
    const p = await this.ledger.getPayment(paymentId);
    if (!p) throw new StampedeError('NOTHING_TO_REFUND', `No payment ${paymentId}`);
    return this.refund(p, reason);
  }

  /**
   * The whole capture of an order, given back (the admin's refund): its captured row; a row
   * already refunded is the answer again; for an order that is not confirmed, a capture the
   * ledger never heard of is looked for first. Null when the order holds no money.
   */
  async refundOrder(order: Order, reason: string): Promise<Payment | null> {
    const rows = await this.ledger.paymentsOfOrder(order.id);
    // The payment that confirmed the order first (a stray second capture is the sweep's), then any it holds.
    const own = rows.find((p) => p.id === order.paymentId && (p.status === 'captured' || p.status === 'refunded'));
    const held = own ?? rows.find((p) => p.status === 'captured') ?? rows.find((p) => p.status === 'refunded');
    if (held) return this.refund(held, reason);
    if (order.status === 'confirmed') return null;
    const paidWith = await this.reconcile(order);
    return paidWith ? this.refundPayment(paidWith, reason) : null;
  }

  /**
   * The safety net: captures of the last day that no confirmed order owns (a refund that failed
   * in an outage, a capture recorded for an order that had ended) are given back. Returns how many.
   */
  async refundStrays(limit = 200): Promise<number> {
    const now = this.now();
    const strays = await this.ledger.strayCaptures({ since: new Date(now - STRAY_WINDOW_MS), before: new Date(now - STRAY_GRACE_MS), limit });
    let n = 0;
    for (const p of strays) {
      try {
        if (await this.refundIfStray(p)) n++;
      } catch (err) {
        this.log.warn(
          { err, paymentId: p.id, orderId: p.orderId },
          'a capture without a confirmed order could not be refunded now; the next sweep tries again',
        );
      }
    }
    return n;
  }

  /** What the gateway says about a reference now; PAYMENT_UNAVAILABLE when it does not answer. */
  retrieve(ref: string): Promise<GatewayPayment | null> {
    return askGateway(() => this.gateway.retrieve(ref));
  }

  /** Whether the gateway took this reference's money. */
  static taken(seen: GatewayPayment | null): boolean {
    return taken(seen);
  }

  /** The ledger follows the gateway: whatever it had, the payment is captured (for `orderId`). Null when another writer moved it meanwhile. */
  private async recordCapture(p: Payment, seen: GatewayPayment, orderId: string | undefined): Promise<Payment | null> {
    return this.ledger.transitionPayment(p.id, ['pending', 'authorized', 'voided', 'failed'], 'captured', {
      gatewayRef: seen.ref,
      capturedCents: seen.capturedCents,
      orderId,
      endedReason: 'captured',
    });
  }
}
