/**
 * Payments: authorisations and charges, moved between states only by compare-and-set so
 * two workers (a capture and a void sweeper, say) can never both act on one authorisation.
 */
import type { NewPayment, Payment, PaymentStatus } from './ledger.js';
import { PAYMENT_STATUSES, countsByStatus, isUuid, toPayment, type PaymentRow } from './ledger-rows.js';
import { Batcher } from './batcher.js';
import type { SqlClient } from './sql-client.js';
import { PAYMENT_OUTBOX_FROM_P } from './outbox.js';

/** The payments half of the ledger; `SqlLedger` hands its payment methods here. */
export class PaymentRepository {
  /** Concurrent look-ups of live authorisations, one statement per sale (every purchase asks). */
  private readonly lookups: Batcher<string, Payment | null> | null;

  constructor(private readonly db: SqlClient, opts: { batching?: boolean } = {}) {
    this.lookups = opts.batching ?? true ? new Batcher((saleId, users) => this.liveAuthorizations(saleId, users)) : null;
  }

  /** Inserts the payment as `pending`. */
  async insertPayment(p: NewPayment): Promise<Payment> {
    const { rows } = await this.db.query<PaymentRow>(
      `INSERT INTO payments (id, sale_id, user_id, ticket_place, order_id, kind, gateway, amount_cents, currency, status, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10)
       RETURNING *`,
      [p.id, p.saleId, p.userId, p.ticketPlace, p.orderId, p.kind, p.gateway, p.amountCents, p.currency, p.expiresAt],
    );
    return toPayment(rows[0]);
  }

  /** Also writes `payment.<to>` to the outbox when the transition happens. */
  async transitionPayment(
    id: string,
    from: PaymentStatus[],
    to: PaymentStatus,
    fields: { gatewayRef?: string; capturedCents?: number; orderId?: string; endedReason?: string } = {},
  ): Promise<Payment | null> {
    // One statement, its event included: no conversation while the row is locked.
    const { rows } = await this.db.query<PaymentRow>(
      `WITH p AS (
         UPDATE payments SET status = $3,
           gateway_ref = COALESCE($4, gateway_ref),
           captured_cents = COALESCE($5, captured_cents),
           order_id = COALESCE($6, order_id),
           ended_reason = COALESCE($7, ended_reason),
           updated_at = now()
         WHERE id = $1 AND status = ANY($2::text[])
         RETURNING *
       ), e AS (${PAYMENT_OUTBOX_FROM_P})
       SELECT * FROM p`,
      [id, from, to, fields.gatewayRef ?? null, fields.capturedCents ?? null, fields.orderId ?? null, fields.endedReason ?? null],
    );
    return rows.length > 0 ? toPayment(rows[0]) : null;
  }

  async getPayment(id: string): Promise<Payment | null> {
    const { rows } = await this.db.query<PaymentRow>('SELECT * FROM payments WHERE id = $1', [id]);
    return rows.length > 0 ? toPayment(rows[0]) : null;
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
      ? await this.db.query<{ status: PaymentStatus; n: number }>(
          'SELECT status, count(*)::int AS n FROM payments WHERE sale_id = $1 GROUP BY status',
          [saleId],
        )
      : { rows: [] };
    return countsByStatus(PAYMENT_STATUSES, rows);
  }
}
