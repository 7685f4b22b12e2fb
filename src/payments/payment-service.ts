/**
 * The payment tier: authorise a card while its holder waits, capture it when they win, void it
 * when they cannot win any more. Every gateway call carries an idempotency key derived from
 * what it is for (`capture:<order>`, `charge:<order>`, `void:<auth>`), so a retry — by the
 * shopper, or by a sweeper after a crash — reaches the same outcome and never charges twice.
 * The ledger's payment row moves by compare-and-set, so two nodes cannot end it twice either.
 */
import { randomUUID } from 'node:crypto';
import type { EngineClock } from '../engine/engine-clock.js';
import { StampedeError } from '../errors.js';
import type { Order, Payment, PaymentStatus, Sale } from '../ledger/ledger.js';
import type { PaymentsRepository } from '../ledger/repositories.js';
import type { LiveSale } from '../queue/sale-monitor.js';
import type { Ticket } from '../queue/ticket.js';
import { GatewayUnavailableError, IdempotencyKeyReusedError, paymentUnavailable, type GatewayOutcome, type PaymentGateway } from './gateway.js';

const NOT_SEEN: GatewayOutcome = { ok: false, reason: 'not_found', message: 'the gateway never saw this key' };

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

  constructor(
    private readonly ledger: PaymentsRepository,
    readonly gateway: PaymentGateway,
    private readonly clock: EngineClock,
    private readonly log: { warn(obj: object, msg: string): void } = console,
  ) {}

  /** Wires the queue and sales tiers' parts of a pre-authorisation. */
  usePorts(ports: PreAuthPorts): void {
    this.ports = ports;
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
        metadata: { sale: sale.id, user: userId },
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
   * be retried.
   */
  async settle(order: Order, paymentToken?: string): Promise<Settlement> {
    const auth = await this.ledger.liveAuthorization(order.saleId, order.userId);
    if (auth?.status === 'authorized' && auth.gatewayRef && auth.amountCents >= order.amountCents) {
      const result = await this.call(() =>
        this.gateway.capture({ idempotencyKey: `capture:${order.id}`, ref: auth.gatewayRef!, amountCents: order.amountCents }),
      );
      // Captured: the caller records it with the order's confirmation, in one statement. Should
      // it never get there (a crash), the hold sweeper finds the capture under its key.
      if (result.ok) return { outcome: 'paid', paymentId: auth.id, capturedCents: order.amountCents };
      await this.ledger.transitionPayment(auth.id, ['authorized'], 'failed', { endedReason: result.reason });
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
        metadata: { sale: order.saleId, order: order.id },
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
   * Asks the gateway what happened under an order's keys (after a timeout or a crash): the
   * reconciliation step of the hold sweeper. Returns the captured payment's id, or null.
   */
  async reconcile(order: Order): Promise<string | null> {
    const captured = await this.call(async () => (await this.gateway.lookup(`capture:${order.id}`)) ?? NOT_SEEN);
    if (captured.ok) {
      const auth = await this.ledger.liveAuthorization(order.saleId, order.userId);
      if (auth)
        await this.ledger.transitionPayment(auth.id, ['authorized'], 'captured', {
          capturedCents: order.amountCents,
          orderId: order.id,
          endedReason: 'captured',
        });
      return auth?.id ?? null;
    }
    const charged = await this.call(async () => (await this.gateway.lookup(`charge:${order.id}`)) ?? NOT_SEEN);
    if (charged.ok) {
      const id = `charge_${order.id}`;
      await this.ledger.transitionPayment(id, ['pending', 'failed'], 'captured', {
        gatewayRef: charged.ref,
        capturedCents: order.amountCents,
        endedReason: 'captured',
      });
      return id;
    }
    return null;
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
    let n = 0;
    for (let i = 0; i < due.length; i += VOID_CONCURRENCY) {
      const done = await Promise.all(
        due.slice(i, i + VOID_CONCURRENCY).map((auth) =>
          this.voidOne(auth, opts.reason).catch((err: unknown) => {
            this.log.warn({ err, paymentId: auth.id, saleId: auth.saleId }, 'void failed; the authorisation stays open for the next sweep');
            return false;
          }),
        ),
      );
      n += done.filter(Boolean).length;
    }
    return n;
  }

  /**
   * Voids one authorisation at the gateway, then in the ledger. A pending one (its authorise
   * reply was lost) is looked up by its key first: it may be live at the gateway.
   */
  async voidOne(auth: Payment, reason: string): Promise<boolean> {
    let ref = auth.gatewayRef;
    if (!ref && auth.status === 'pending') {
      const seen = await this.call(
        async () => (await this.gateway.lookup(`authorize:${auth.id}`)) ?? { ok: false, reason: 'not_found', message: 'never reached the gateway' },
      );
      if (seen.ok) ref = seen.ref;
    }
    let ended = reason;
    if (ref) {
      const result = await this.call(() => this.gateway.void({ idempotencyKey: `void:${auth.id}`, ref: ref! }));
      if (!result.ok && result.reason !== 'already_ended' && result.reason !== 'expired') return false;
      // Already ended at the gateway (captured through a lost reply, or voided before): recorded as such for review.
      if (!result.ok) ended = `${reason}:${result.reason}`;
    }
    return (await this.ledger.transitionPayment(auth.id, ['pending', 'authorized'], 'voided', { endedReason: ended })) !== null;
  }

  private async call(fn: () => Promise<GatewayOutcome>): Promise<GatewayOutcome> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof GatewayUnavailableError) throw paymentUnavailable();
      // A pending authorisation retried with another card: the first attempt's key is taken.
      if (err instanceof IdempotencyKeyReusedError)
        throw new StampedeError('REQUEST_IN_PROGRESS', 'An earlier authorisation is still being settled; retry in a moment', { retryAfter: 2 });
      throw err;
    }
  }

  /** Authorisations of a sale by status (the admin's stats). */
  counts(saleId: string): Promise<Record<PaymentStatus, number>> {
    return this.ledger.paymentCounts(saleId);
  }
}
