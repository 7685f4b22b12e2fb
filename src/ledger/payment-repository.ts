/**
 * Payments: authorisations and charges, moved between states only by compare-and-set so
 * two workers (a capture and a void sweeper, say) can never both act on one authorisation.
 */
import type { NewPayment, Payment, PaymentStatus } from './ledger.js';
import { PAYMENT_STATUSES, countsByStatus, isUuid, toPayment, type PaymentRow } from './ledger-rows.js';
import { Batcher } from './batcher.js';
import type { SqlClient } from './sql-client.js';
import { PAYMENT_OUTBOX_FROM_P } from './outbox.js';
import { isUnavailable } from '../errors.js';

interface Transition {
  id: string;
  from: PaymentStatus[];
  to: PaymentStatus;
  gatewayRef?: string;
  capturedCents?: number;
  orderId?: string;
  endedReason?: string;
}

/** The payments half of the ledger; `SqlLedger` hands its payment methods here. */
export class PaymentRepository {
  // Concurrent calls go together, one statement each (see batcher.ts): every shopper
  // pre-authorises while waiting and every loser's authorisation is voided at the sell-out, so
  // these come in crowds. Off inside a transaction.
  private readonly lookups: Batcher<string, Payment | null> | null;
  private readonly inserts: Batcher<NewPayment, Payment> | null;
  private readonly transitions: Batcher<Transition, Payment | null> | null;

  constructor(
    private readonly db: SqlClient,
    opts: { batching?: boolean } = {},
  ) {
    const batching = opts.batching ?? true;
    // PGlite runs each statement on this thread: batch what one turn of the event loop gathers.
    const gather = { gatherTurn: db.kind === 'pglite' };
    this.lookups = batching ? new Batcher((saleId, users) => this.liveAuthorizations(saleId, users), gather) : null;
    this.inserts = batching ? new Batcher((_, batch) => this.insertBatch(batch), gather) : null;
    this.transitions = batching ? new Batcher((_, batch) => this.transitionBatch(batch), gather) : null;
  }

  /** Inserts the payment as `pending`. */
  insertPayment(p: NewPayment): Promise<Payment> {
    return this.inserts ? this.inserts.submit('', p) : this.insertOne(p);
  }

  /** Also writes `payment.<to>` to the outbox when the transition happens (compare-and-set on `from`). */
  transitionPayment(
    id: string,
    from: PaymentStatus[],
    to: PaymentStatus,
    fields: { gatewayRef?: string; capturedCents?: number; orderId?: string; endedReason?: string } = {},
  ): Promise<Payment | null> {
    const t: Transition = { id, from, to, ...fields };
    return this.transitions ? this.transitions.submit('', t) : this.transitionOne(t);
  }

  private async insertOne(p: NewPayment): Promise<Payment> {
    const [result] = await this.insertBatch([p]);
    if (result instanceof Error) throw result;
    return result;
  }

  /** One INSERT for the batch; should one row conflict (a second live authorisation), each goes again alone. */
  private async insertBatch(batch: NewPayment[]): Promise<Array<Payment | Error>> {
    let rows: PaymentRow[];
    try {
      ({ rows } = await this.db.query<PaymentRow>(
        `INSERT INTO payments (id, sale_id, user_id, ticket_place, order_id, kind, gateway, amount_cents, currency, status, expires_at)
         SELECT id, sale_id, user_id, ticket_place, order_id, kind, gateway, amount_cents, currency, 'pending', expires_at
         FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::timestamptz[])
           AS r(id, sale_id, user_id, ticket_place, order_id, kind, gateway, amount_cents, currency, expires_at)
         RETURNING *`,
        [
          batch.map((p) => p.id),
          batch.map((p) => p.saleId),
          batch.map((p) => p.userId),
          batch.map((p) => p.ticketPlace),
          batch.map((p) => p.orderId),
          batch.map((p) => p.kind),
          batch.map((p) => p.gateway),
          batch.map((p) => p.amountCents),
          batch.map((p) => p.currency),
          batch.map((p) => p.expiresAt),
        ],
      ));
    } catch (err) {
      // A database that is not answering is not asked again one payment at a time: all fail now.
      if (isUnavailable(err)) throw err;
      if (batch.length === 1) return [err as Error];
      const out: Array<Payment | Error> = [];
      for (const p of batch) out.push((await this.insertBatch([p]))[0]);
      return out;
    }
    const byId = new Map(rows.map((r) => [r.id, toPayment(r)]));
    return batch.map((p) => byId.get(p.id) ?? new Error(`payment ${p.id} missing from its batch`));
  }

  private async transitionOne(t: Transition): Promise<Payment | null> {
    const [result] = await this.transitionBatch([t]);
    if (result instanceof Error) throw result;
    return result;
  }

  /**
   * Transitions in one statement, each a compare-and-set, each with its event. Two for the
   * same payment (a capture racing a void) never share a statement: the later goes in the
   * next one, so it sees the first's outcome exactly as if they had come one after the other.
   */
  private async transitionBatch(batch: Transition[]): Promise<Array<Payment | null | Error>> {
    const seen = new Set<string>();
    const now: Transition[] = [];
    const later: Transition[] = [];
    for (const t of batch) (seen.has(t.id) ? later : (seen.add(t.id), now)).push(t);
    let rows: PaymentRow[];
    try {
      ({ rows } = await this.db.query<PaymentRow>(
        `WITH r AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])
             AS r(id, from_statuses, status, gateway_ref, captured_cents, order_id, ended_reason)
         ), p AS (
           UPDATE payments SET status = r.status,
             gateway_ref = COALESCE(r.gateway_ref, payments.gateway_ref),
             captured_cents = COALESCE(r.captured_cents, payments.captured_cents),
             order_id = COALESCE(r.order_id, payments.order_id),
             ended_reason = COALESCE(r.ended_reason, payments.ended_reason),
             updated_at = now()
           FROM r WHERE payments.id = r.id AND payments.status = ANY(string_to_array(r.from_statuses, ','))
           RETURNING payments.*
         ), e AS (${PAYMENT_OUTBOX_FROM_P})
         SELECT * FROM p`,
        [
          now.map((t) => t.id),
          now.map((t) => t.from.join(',')),
          now.map((t) => t.to),
          now.map((t) => t.gatewayRef ?? null),
          now.map((t) => t.capturedCents ?? null),
          now.map((t) => t.orderId ?? null),
          now.map((t) => t.endedReason ?? null),
        ],
      ));
    } catch (err) {
      if (batch.length === 1 || isUnavailable(err)) throw err;
      const out: Array<Payment | null | Error> = [];
      for (const t of batch) out.push(await this.transitionOne(t).catch((e: Error) => e));
      return out;
    }
    const byId = new Map(rows.map((r) => [r.id, toPayment(r)]));
    const answers = new Map<Transition, Payment | null | Error>(now.map((t) => [t, byId.get(t.id) ?? null]));
    if (later.length > 0) (await this.transitionBatch(later)).forEach((a, i) => answers.set(later[i], a));
    return batch.map((t) => answers.get(t)!);
  }

  async getPayment(id: string): Promise<Payment | null> {
    const { rows } = await this.db.query<PaymentRow>('SELECT * FROM payments WHERE id = $1', [id]);
    return rows.length > 0 ? toPayment(rows[0]) : null;
  }

  async paymentsOfOrder(orderId: string): Promise<Payment[]> {
    const { rows } = await this.db.query<PaymentRow>('SELECT * FROM payments WHERE order_id = $1 ORDER BY created_at, id', [orderId]);
    return rows.map(toPayment);
  }

  /** captured → refunded on the payment, the amount added to its order, and the event: one statement. */
  async recordRefund(paymentId: string, refundedCents: number, reason: string): Promise<Payment | null> {
    if (!Number.isSafeInteger(refundedCents) || refundedCents <= 0) throw new RangeError(`a refund needs whole cents > 0, got ${refundedCents}`);
    const { rows } = await this.db.query<PaymentRow>(
      `WITH p AS (
         UPDATE payments SET status = 'refunded', refunded_cents = $2, ended_reason = $3, updated_at = now()
         WHERE id = $1 AND status = 'captured' RETURNING *
       ), o AS (
         UPDATE orders SET refunded_cents = orders.refunded_cents + p.refunded_cents, updated_at = now() FROM p WHERE orders.id = p.order_id
       ), e AS (${PAYMENT_OUTBOX_FROM_P})
       SELECT * FROM p`,
      [paymentId, refundedCents, reason],
    );
    return rows.length > 0 ? toPayment(rows[0]) : null;
  }

  /**
   * Captured payments no confirmed order owns. A reserved order's capture is left alone (its
   * confirmation may be on its way); a payment without an order row, or whose order ended or was
   * paid by another payment, is stray.
   */
  async strayCaptures(opts: { since: Date; before: Date; limit: number }): Promise<Payment[]> {
    const { rows } = await this.db.query<PaymentRow>(
      `SELECT p.* FROM payments p LEFT JOIN orders o ON o.id = p.order_id
       WHERE p.status = 'captured' AND p.updated_at >= $1 AND p.updated_at < $2
         AND (o.id IS NULL OR o.status IN ('expired', 'cancelled', 'failed')
              OR (o.status = 'confirmed' AND o.payment_id IS NOT NULL AND o.payment_id <> p.id))
       ORDER BY p.updated_at, p.id LIMIT $3`,
      [opts.since, opts.before, opts.limit],
    );
    return rows.map(toPayment);
  }

  /** The user's authorisation that is pending or authorised (the newest, should there be two). */
  async liveAuthorization(saleId: string, userId: string): Promise<Payment | null> {
    if (!isUuid(saleId)) return null;
    if (this.lookups) return this.lookups.submit(saleId, userId);
    return (await this.liveAuthorizations(saleId, [userId]))[0];
  }

  private async liveAuthorizations(saleId: string, users: string[]): Promise<Array<Payment | null>> {
    const { rows } = await this.db.query<PaymentRow>(
      `SELECT DISTINCT ON (user_id) * FROM payments
       WHERE sale_id = $1 AND user_id = ANY($2::text[]) AND kind = 'authorization' AND status IN ('pending', 'authorized')
       ORDER BY user_id, created_at DESC, id DESC`,
      [saleId, [...new Set(users)]],
    );
    const byUser = new Map(rows.map((r) => [r.user_id, toPayment(r)]));
    return users.map((u) => byUser.get(u) ?? null);
  }

  async openAuthorizations(opts: { saleId?: string; expiredBefore?: Date; limit: number }): Promise<Payment[]> {
    if (opts.saleId !== undefined && !isUuid(opts.saleId)) return [];
    const { rows } = await this.db.query<PaymentRow>(
      `SELECT * FROM payments
       WHERE kind = 'authorization' AND status IN ('pending', 'authorized')
         AND ($1::uuid IS NULL OR sale_id = $1)
         AND ($2::timestamptz IS NULL OR expires_at < $2)
       ORDER BY created_at, id LIMIT $3`,
      [opts.saleId ?? null, opts.expiredBefore ?? null, opts.limit],
    );
    return rows.map(toPayment);
  }

  async paymentCounts(saleId: string): Promise<Record<PaymentStatus, number>> {
    const { rows } = isUuid(saleId)
      ? await this.db.query<{ status: PaymentStatus; n: number }>('SELECT status, count(*)::int AS n FROM payments WHERE sale_id = $1 GROUP BY status', [
          saleId,
        ])
      : { rows: [] };
    return countsByStatus(PAYMENT_STATUSES, rows);
  }
}
