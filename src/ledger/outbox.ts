/**
 * The outbox: events written in the same transaction as the change they describe, read and
 * marked by a relay that publishes them (NATS JetStream in production).
 */
import type { OutboxRow } from './ledger-rows.js';
import type { SqlClient } from './sql-client.js';

/** Appends one event through `db` — inside the caller's transaction when `db` is one. */
export async function writeEvent(db: SqlClient, topic: string, payload: Record<string, unknown>): Promise<void> {
  await db.query('INSERT INTO outbox (topic, payload) VALUES ($1, $2::jsonb)', [topic, JSON.stringify(payload)]);
}

/** Reads and marks the outbox; `SqlLedger` hands its outbox methods here. */
export class Outbox {
  constructor(private readonly db: SqlClient) {}

  appendEvent(topic: string, payload: Record<string, unknown>): Promise<void> {
    return writeEvent(this.db, topic, payload);
  }

  async pendingEvents(limit: number): Promise<Array<{ id: number; topic: string; payload: Record<string, unknown>; createdAt: Date }>> {
    const { rows } = await this.db.query<OutboxRow>('SELECT id, topic, payload, created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1', [
      limit,
    ]);
    return rows.map((r) => ({ id: r.id, topic: r.topic, payload: r.payload, createdAt: r.created_at }));
  }

  async markPublished(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db.query('UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[]) AND published_at IS NULL', [ids]);
  }
}

/** The outbox event of each changed payment `p`, as `payment.<status>`: shared by payment transitions and confirmations that capture. */
export const PAYMENT_OUTBOX_FROM_P = `INSERT INTO outbox (topic, payload)
  SELECT 'payment.' || p.status, jsonb_build_object('payment_id', p.id, 'sale_id', p.sale_id, 'user_id', p.user_id,
                                                    'kind', p.kind, 'order_id', p.order_id, 'ended_reason', p.ended_reason)
  FROM p`;
