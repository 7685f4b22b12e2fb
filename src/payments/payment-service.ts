/**
 * The payment tier: authorise a card while its holder waits, capture it when they win, void it
 * when they cannot win any more. Every gateway call carries an idempotency key derived from
 * what it is for (`capture:<order>`, `charge:<order>`, `void:<auth>`, `refund:<payment>`), so a
 * retry — by the shopper, or by a sweeper after a crash — reaches the same outcome and never
 * charges twice. The ledger's payment row moves by compare-and-set, so two nodes cannot end it
 * twice either.
 *
 * Money is settled with the card network, not with memory (SPEC §6): after a crash the ledger's
 * own rows are trusted first, then the gateway is asked about the stored reference; a capture no
 * confirmed order owns is given back (see reconciler.ts).
 */
import { randomUUID } from 'node:crypto';
import { countEach } from '../async-limits.js';
import type { EngineClock } from '../engine/engine-clock.js';
import { StampedeError } from '../errors.js';
import type { Order, Payment, PaymentStatus, Sale } from '../ledger/ledger.js';
import type { PaymentsRepository } from '../ledger/repositories.js';
import type { LiveSale } from '../queue/sale-monitor.js';
import type { Ticket } from '../queue/ticket.js';
import { askGateway, type GatewayOutcome, type PaymentGateway } from './gateway.js';
import { Reconciler, type OrderPort } from './reconciler.js';

/** An authorisation is voided after this long whatever happens (SPEC §3.5). */
export const AUTHORIZATION_CAP_MS = 30 * 60 * 1000;
/** Voids in flight at once per sweep. */
const VOID_CONCURRENCY = 50;

export type Settlement =
  /** `capturedCents`: an authorisation captured at the gateway, for the confirmation to record (one statement). */
  { outcome: 'paid'; paymentId: string; capturedCents?: number } | { outcome: 'declined'; message: string } | { outcome: 'none' };

/** What pre-authorising asks of the queue and sales tiers: is this ticket real, and can it still win? */
export interface PreAuthPorts {
  verify(saleId: string, token: string, userId: string): Ticket;
  live(saleId: string): Promise<Pick<LiveSale, 'status'>>;
  sale(saleId: string): Promise<Sale>;
}

export class PaymentService {
  private ports: PreAuthPorts | null = null;
  /** Settles money from the ledger's rows and the gateway's stored references; refunds. */
  readonly reconciler: Reconciler;

  constructor(
    private readonly ledger: PaymentsRepository,
    readonly gateway: PaymentGateway,
    private readonly clock: EngineClock,
    private readonly log: { warn(obj: object, msg: string): void } = console,
  ) {
    this.reconciler = new Reconciler(ledger, gateway, () => clock.now(), log);
  }

  /** Wires the queue and sales tiers' parts of a pre-authorisation. */
  usePorts(ports: PreAuthPorts): void {
    this.ports = ports;
  }

  /** Wires the checkout tier's view of orders (whether a capture has an owner). */
  useOrders(port: OrderPort): void {
    this.reconciler.useOrders(port);
  }

  /**
   * `POST /pre-auth`: a ticket of this user that can still win authorises the sale price times
   * the limit. A shadow ticket (a flagged bot) is told to come back later; a sale sold out,
   * ended or cancelled authorises nothing.
   */
  async preAuthorize(req: { saleId: string; userId: string; ticket: string; paymentToken: string }): Promise<Payment> {
    const ports = this.ports!;
    const ticket = ports.verify(req.saleId, req.ticket, req.userId);
    if (ticket.shadow) throw new StampedeError('NOT_ADMITTED', 'Authorisations are being taken slowly; try again in a moment', { retryAfter: 5 });
    const sale = await ports.sale(req.saleId);
    const { status } = await ports.live(sale.id);
    if (status === 'sold_out') throw new StampedeError('SOLD_OUT', undefined, { extra: { status: 'sold_out' } });
    if (status === 'ended' || status === 'cancelled') throw new StampedeError('SALE_ENDED');
    return this.preAuth(sale, req.userId, ticket.place, req.paymentToken);
  }

  /**
   * Authorises the sale price times the user's limit (the most they could buy). One live
   * authorisation per user and sale: asking again returns it (retrying a pending one with the
   * same gateway key), so a double-click or a retry never holds a card twice.
   */
  async preAuth(sale: Sale, userId: string, place: number, paymentToken: string): Promise<Payment> {
    const live = await this.ledger.liveAuthorization(sale.id, userId);
    if (live?.status === 'authorized') return live;
    const amount = Math.max(...sale.items.map((i) => i.priceCents * i.perUserLimit));
    // A concurrent request may insert first (one live authorisation per user, a unique index): use its row.
    const payment =
      live ??
      (await this.ledger
        .insertPayment({
          id: `auth_${randomUUID()}`,
          saleId: sale.id,
          userId,
          ticketPlace: place,
          orderId: null,
          kind: 'authorization',
          gateway: this.gateway.name,
          amountCents: amount,
          currency: sale.items[0].currency,
          expiresAt: new Date(this.clock.now() + AUTHORIZATION_CAP_MS),
        })
        .catch(async (err): Promise<Payment> => {
          const winner = await this.ledger.liveAuthorization(sale.id, userId);
          if (!winner) throw err;
          return winner;
        }));
    if (payment.status === 'authorized') return payment;
    const result = await this.call(() =>
      this.gateway.authorize({
        idempotencyKey: `authorize:${payment.id}`,
        paymentToken,
        amountCents: payment.amountCents,
        currency: payment.currency,
        // Our payment id travels with it: after a crash the intent can be found by it, and read by a human.
        metadata: { sale: sale.id, user: userId, payment: payment.id },
      }),
    );
    if (!result.ok) {
      await this.ledger.transitionPayment(payment.id, ['pending'], 'failed', { endedReason: result.reason });
      throw new StampedeError('PAYMENT_DECLINED', result.message);
    }
    return (
      (await this.ledger.transitionPayment(payment.id, ['pending'], 'authorized', { gatewayRef: result.ref })) ?? (await this.ledger.getPayment(payment.id))!
    );
  }

  /**
   * Takes payment for a reserved order: captures the user's live authorisation (recorded by
   * the confirmation that follows), or charges the token, or (neither) says so. Gateway
   * trouble throws PAYMENT_UNAVAILABLE and leaves things as they were, for the same call to
   * be retried. `again` (a retry, or paying later) first asks the ledger whether the order was
   * paid already — a capture a sweeper recorded after the first attempt died.
   */
  async settle(order: Order, paymentToken?: string, opts: { again?: boolean } = {}): Promise<Settlement> {
    if (opts.again) {
      const paid = (await this.ledger.paymentsOfOrder(order.id)).find((p) => p.status === 'captured');
      if (paid) return { outcome: 'paid', paymentId: paid.id };
    }
    const auth = await this.ledger.liveAuthorization(order.saleId, order.userId);
    if (auth?.status === 'authorized' && auth.gatewayRef && auth.amountCents >= order.amountCents) {
      const ref = auth.gatewayRef;
      // The capture names its order at the gateway, so whoever reads the intent later knows whose money it is.
      const result = await this.call(() =>
        this.gateway.capture({ idempotencyKey: `capture:${order.id}`, ref, amountCents: order.amountCents, metadata: { order: order.id } }),
      );
      // Captured: the caller records it with the order's confirmation, in one statement. Should
      // it never get there (a crash), the hold sweeper finds the capture by the stored reference.
      if (result.ok) return { outcome: 'paid', paymentId: auth.id, capturedCents: order.amountCents };
      // Already ended: captured for another order of this user, perhaps — never marked failed if the gateway took it.
      const seen = result.reason === 'already_ended' ? await this.reconciler.retrieve(ref) : null;
      if (seen && Reconciler.taken(seen)) await this.reconciler.adopt(auth, seen);
      else await this.ledger.transitionPayment(auth.id, ['authorized'], 'failed', { endedReason: result.reason });
      if (!paymentToken) return { outcome: 'declined', message: result.message };
    }
    if (!paymentToken) return { outcome: 'none' };
    const id = `charge_${order.id}`;
    const charge =
      (await this.ledger.getPayment(id)) ??
      (await this.ledger
        .insertPayment({
          id,
          saleId: order.saleId,
          userId: order.userId,
          ticketPlace: 0,
          orderId: order.id,
          kind: 'charge',
          gateway: this.gateway.name,
          amountCents: order.amountCents,
          currency: order.currency,
          expiresAt: new Date(this.clock.now() + AUTHORIZATION_CAP_MS),
        })
        .catch(async (err) => {
          const again = await this.ledger.getPayment(id);
          if (again) return again;
          throw err;
        }));
    if (charge.status === 'captured') return { outcome: 'paid', paymentId: id };
    const result = await this.call(() =>
      this.gateway.charge({
        idempotencyKey: `charge:${order.id}`,
        paymentToken,
        amountCents: order.amountCents,
        currency: order.currency,
        metadata: { sale: order.saleId, order: order.id, payment: id },
      }),
    );
    if (!result.ok) {
      await this.ledger.transitionPayment(id, ['pending', 'failed'], 'failed', { endedReason: result.reason });
      return { outcome: 'declined', message: result.message };
    }
    await this.ledger.transitionPayment(id, ['pending', 'failed'], 'captured', {
      gatewayRef: result.ref,
      capturedCents: order.amountCents,
      endedReason: 'captured',
    });
    // Paid another way: the user's authorisation will never be captured now.
    if (auth) await this.voidOne(auth, 'superseded');
    return { outcome: 'paid', paymentId: id };
  }

  /**
   * Whether a reserved order was paid, from what survives a crash: the ledger's own rows, then the
   * gateway by the stored reference (see reconciler.ts). The hold sweeper's step before it ends an
   * order. Returns the paying payment's id, or null; PAYMENT_UNAVAILABLE when it cannot know yet.
   */
  reconcile(order: Order): Promise<string | null> {
    return this.reconciler.reconcile(order);
  }

  /**
   * Voids open authorisations: of one sale (sold out, ended, cancelled), or any past the
   * 30-minute cap. `keep` spares users still holding stock (their capture may be in flight).
   * Returns how many were voided.
   */
  async voidOpen(opts: { saleId?: string; reason: string; limit?: number; keep?: (p: Payment) => boolean }): Promise<number> {
    const open = await this.ledger.openAuthorizations({
      saleId: opts.saleId,
      expiredBefore: opts.saleId ? undefined : new Date(this.clock.now()),
      limit: opts.limit ?? 2000,
    });
    // Many at once: one at a time, a gateway's round trip caps voids at ~30/s. The gateway's
    // pacing bucket still decides how fast they really go out.
    const due = open.filter((auth) => !opts.keep?.(auth));
    return countEach(due, VOID_CONCURRENCY, (auth) =>
      this.voidOne(auth, opts.reason).catch((err: unknown) => {
        this.log.warn({ err, paymentId: auth.id, saleId: auth.saleId }, 'void failed; the authorisation stays open for the next sweep');
        return false;
      }),
    );
  }

  /**
   * Voids one authorisation at the gateway, then in the ledger. A pending one (its authorise
   * reply was lost) is looked up by its key first: it may be live at the gateway. What the
   * gateway says about the reference is read first: a captured authorisation is never voided
   * (its capture's record was lost: it is adopted, and refunded unless an order owns it), and
   * one the gateway already ended needs no void call. Returns whether it was voided.
   */
  async voidOne(auth: Payment, reason: string): Promise<boolean> {
    let ref = auth.gatewayRef;
    if (!ref && auth.status === 'pending') {
      const seen = await this.call(() => this.gateway.lookup(`authorize:${auth.id}`));
      if (seen?.ok) ref = seen.ref;
      // Not seen (yet): the authorise may still be in flight, or the lookup behind. Next sweep.
      else if (!seen && this.clock.now() - auth.createdAt.getTime() < (this.gateway.lookupLagMs ?? 0)) return false;
    }
    let ended = reason;
    if (ref) {
      const before = await this.reconciler.retrieve(ref);
      if (before && Reconciler.taken(before)) return this.adopted(auth, before);
      if (!before || before.state === 'authorized') {
        const result = await this.call(() => this.gateway.void({ idempotencyKey: `void:${auth.id}`, ref: ref! }));
        if (!result.ok && result.reason !== 'already_ended' && result.reason !== 'expired' && result.reason !== 'not_found') return false;
        if (!result.ok) {
          // Ended meanwhile: perhaps a capture that landed between the read and the void.
          const after = await this.reconciler.retrieve(ref);
          if (after && Reconciler.taken(after)) return this.adopted(auth, after);
          // Recorded as such for review (lapsed, or voided through a lost reply).
          ended = `${reason}:${result.reason}`;
        }
      } else {
        ended = `${reason}:already_ended`;
      }
    }
    return (await this.ledger.transitionPayment(auth.id, ['pending', 'authorized'], 'voided', { gatewayRef: ref ?? undefined, endedReason: ended })) !== null;
  }

  /**
   * Gives back in full a captured payment (by id) whose order had ended when the capture landed.
   * A payment already refunded is answered as it is.
   */
  refundPayment(paymentId: string, reason: string): Promise<Payment> {
    return this.reconciler.refundPayment(paymentId, reason);
  }

  /** Gives back the whole capture of an order (the admin's refund); null when the order holds no money. */
  refundOrder(order: Order, reason: string): Promise<Payment | null> {
    return this.reconciler.refundOrder(order, reason);
  }

  /** The safety net: captures no confirmed order owns are refunded (see Reconciler.refundStrays). */
  refundStrays(limit?: number): Promise<number> {
    return this.reconciler.refundStrays(limit);
  }

  private async adopted(auth: Payment, seen: Parameters<Reconciler['adopt']>[1]): Promise<false> {
    await this.reconciler.adopt(auth, seen);
    return false;
  }

  private call<T extends GatewayOutcome | null>(fn: () => Promise<T>): Promise<T> {
    return askGateway(fn);
  }

  /** Authorisations of a sale by status (the admin's stats). */
  counts(saleId: string): Promise<Record<PaymentStatus, number>> {
    return this.ledger.paymentCounts(saleId);
  }
}
