/** Reading orders: one user's, a sale's, the lapsed ones, and counts. Statements shared by PostgreSQL and PGlite. */
import type { Order, OrderStatus } from './ledger.js';
import { ORDER_STATUSES, countsByStatus, isUuid, toOrder, type OrderRow } from './ledger-rows.js';
import type { SqlClient } from './sql-client.js';

export class OrderReads {
  constructor(private readonly db: SqlClient) {}

  async getOrder(id: string): Promise<Order | null> {
    const { rows } = await this.db.query<OrderRow>('SELECT * FROM orders WHERE id = $1', [id]);
    return rows.length > 0 ? toOrder(rows[0]) : null;
  }

  async listOrders(saleId: string, opts: { status?: OrderStatus; limit?: number; userId?: string } = {}): Promise<Order[]> {
    if (!isUuid(saleId)) return [];
    const { rows } = await this.db.query<OrderRow>(
      `SELECT * FROM orders WHERE sale_id = $1 AND ($2::text IS NULL OR status = $2) AND ($4::text IS NULL OR user_id = $4)
       ORDER BY created_at, id LIMIT $3`,
      [saleId, opts.status ?? null, opts.limit ?? null, opts.userId ?? null],
    );
    return rows.map(toOrder);
  }

  async expiredReservations(before: Date, limit: number): Promise<Order[]> {
    const { rows } = await this.db.query<OrderRow>(
      `SELECT * FROM orders WHERE status = 'reserved' AND reservation_expires_at < $1
       ORDER BY reservation_expires_at, id LIMIT $2`,
      [before, limit],
    );
    return rows.map(toOrder);
  }

  async orderCounts(saleId: string): Promise<Record<OrderStatus, number>> {
    const { rows } = isUuid(saleId)
      ? await this.db.query<{ status: OrderStatus; n: number }>('SELECT status, count(*)::int AS n FROM orders WHERE sale_id = $1 GROUP BY status', [saleId])
      : { rows: [] };
    return countsByStatus(ORDER_STATUSES, rows);
  }

  async unitsPerUser(saleId: string): Promise<Array<{ userId: string; sku: string; units: number }>> {
    if (!isUuid(saleId)) return [];
    const { rows } = await this.db.query<{ user_id: string; sku: string; units: number }>(
      `SELECT user_id, sku, sum(quantity)::int AS units FROM orders
       WHERE sale_id = $1 AND status IN ('reserved', 'confirmed')
       GROUP BY user_id, sku ORDER BY user_id, sku`,
      [saleId],
    );
    return rows.map((r) => ({ userId: r.user_id, sku: r.sku, units: r.units }));
  }
}
