/**
 * The ledger in SQL: the same statements on PostgreSQL and PGlite. Every change that moves
 * stock or ends a record is one transaction that also writes its outbox event, so the durable
 * record and the events it publishes never disagree.
 *
 * The order rules (stock moves) live here; sales, payments and the outbox sit in their own
 * repositories, to which this class hands the rest of the port.
 */
import {
  LedgerConflictError,
  LedgerOversellError,
  type Ledger,
  type NewOrder,
  type NewPayment,
  type Order,
  type OrderStatus,
  type Payment,
  type PaymentStatus,
  type Sale,
  type SaleInput,
} from './ledger.js';
import { ORDER_STATUSES, countsByStatus, isUuid, toOrder, type OrderRow } from './ledger-rows.js';
import { migrate } from './migrate.js';
import { Outbox, writeEvent as event } from './outbox.js';
import { PaymentRepository } from './payment-repository.js';
import { SaleRepository } from './sale-repository.js';
import { sqlState, type SqlClient } from './sql-client.js';

/** The CHECK on `items` that keeps `sold + held` within `quantity` (see 001.do.schema.sql). */
const STOCK_CHECK = 'items_stock_within_quantity';
const RELEASE_STATUSES = new Set(['expired', 'cancelled', 'failed']);

/** {@link Ledger} over a {@link SqlClient}; pick the client with `openLedger`. */
export class SqlLedger implements Ledger {
  readonly kind: 'pg' | 'pglite';
  private readonly sales: SaleRepository;
  private readonly payments: PaymentRepository;
  private readonly outbox: Outbox;

  constructor(readonly db: SqlClient) {
    this.kind = db.kind;
    this.sales = new SaleRepository(db);
    this.payments = new PaymentRepository(db);
    this.outbox = new Outbox(db);
  }

  /**
   * Runs `fn` with a ledger bound to one transaction, so a caller can make several ledger
   * changes (and `appendEvent`s) commit or fail together.
   */
  transaction<T>(fn: (ledger: SqlLedger) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => fn(new SqlLedger(tx)));
  }

  async migrate(): Promise<void> {
    await migrate(this.db);
  }

  async ping(): Promise<void> {
    await this.db.query('SELECT 1');
  }

  close(): Promise<void> {
    return this.db.close();
  }

  // ---- sales, payments, outbox: see their repositories -------------------------------------

  createSale(input: SaleInput): Promise<Sale> {
    return this.sales.createSale(input);
  }
  getSale(id: string): Promise<Sale | null> {
    return this.sales.getSale(id);
  }
  listSales(): Promise<Sale[]> {
    return this.sales.listSales();
  }
  updateSale(id: string, patch: Partial<SaleInput>): Promise<Sale> {
    return this.sales.updateSale(id, patch);
  }
  cancelSale(id: string): Promise<Sale> {
    return this.sales.cancelSale(id);
  }

  insertPayment(p: NewPayment): Promise<Payment> {
    return this.payments.insertPayment(p);
  }
  transitionPayment(...args: Parameters<Ledger['transitionPayment']>): Promise<Payment | null> {
    return this.payments.transitionPayment(...args);
  }
  getPayment(id: string): Promise<Payment | null> {
    return this.payments.getPayment(id);
  }
  liveAuthorization(saleId: string, userId: string): Promise<Payment | null> {
    return this.payments.liveAuthorization(saleId, userId);
  }
  openAuthorizations(opts: Parameters<Ledger['openAuthorizations']>[0]): Promise<Payment[]> {
    return this.payments.openAuthorizations(opts);
  }
  paymentCounts(saleId: string): Promise<Record<PaymentStatus, number>> {
    return this.payments.paymentCounts(saleId);
  }

  appendEvent(topic: string, payload: Record<string, unknown>): Promise<void> {
    return this.outbox.appendEvent(topic, payload);
  }
  pendingEvents(limit: number): ReturnType<Ledger['pendingEvents']> {
    return this.outbox.pendingEvents(limit);
  }
  markPublished(ids: number[]): Promise<void> {
    return this.outbox.markPublished(ids);
  }

  // ---- orders -----------------------------------------------------------------------------

  async reserveOrder(o: NewOrder): Promise<Order> {
    if (!Number.isInteger(o.quantity) || o.quantity <= 0) throw new RangeError(`order quantity must be a positive integer, got ${o.quantity}`);
    if (!isUuid(o.saleId)) throw new LedgerOversellError(o.saleId, o.sku);
    try {
      return await this.db.transaction(async (tx) => {
        // The guard is in the WHERE: on PostgreSQL the row lock makes concurrent reservations
        // re-check it one at a time, so the last unit goes to exactly one of them.
        const item = await tx.query<{ price_cents: number; currency: string }>(
          `UPDATE items SET held = held + $3
           WHERE sale_id = $1 AND sku = $2 AND sold + held + $3 <= quantity
           RETURNING price_cents, currency`,
          [o.saleId, o.sku, o.quantity],
        );
        if (item.rows.length === 0) throw new LedgerOversellError(o.saleId, o.sku);
        const { price_cents: price, currency } = item.rows[0];
        const { rows } = await tx.query<OrderRow>(
          `INSERT INTO orders (id, sale_id, sku, user_id, quantity, unit_price_cents, amount_cents, currency,
                               status, idempotency_key, reservation_expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'reserved', $9, $10)
           RETURNING *`,
          [o.id, o.saleId, o.sku, o.userId, o.quantity, price, price * o.quantity, currency, o.idempotencyKey, o.reservationExpiresAt],
        );
        await event(tx, 'order.reserved', orderEvent(rows[0]));
        return toOrder(rows[0]);
      });
    } catch (err) {
      const state = sqlState(err);
      // The CHECK constraint is the second wall; should the guard ever miss, it still refuses.
      if (state === '23514' && (err as { constraint?: string }).constraint === STOCK_CHECK) {
        throw new LedgerOversellError(o.saleId, o.sku);
      }
      if (state === '23505') throw new LedgerConflictError(`order ${o.id} or idempotency key ${o.idempotencyKey} already exists`);
      throw err;
    }
  }

  confirmOrder(id: string, paymentId: string | null): Promise<Order | null> {
    return this.endReservation(
      id,
      `UPDATE orders SET status = 'confirmed', payment_id = COALESCE($2, payment_id), updated_at = now()
       WHERE id = $1 AND status = 'reserved' RETURNING *`,
      [id, paymentId],
      'UPDATE items SET held = held - $3, sold = sold + $3 WHERE sale_id = $1 AND sku = $2',
    );
  }

  releaseOrder(id: string, status: 'expired' | 'cancelled' | 'failed'): Promise<Order | null> {
    if (!RELEASE_STATUSES.has(status)) return Promise.reject(new RangeError(`cannot release an order as ${status}`));
    return this.endReservation(
      id,
      `UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 AND status = 'reserved' RETURNING *`,
      [id, status],
      'UPDATE items SET held = held - $3 WHERE sale_id = $1 AND sku = $2',
    );
  }

  /**
   * A hold ends exactly once: the order leaves `reserved` by compare-and-set, and only the
   * caller that won moves the item's units, in the same transaction.
   */
  private endReservation(id: string, orderSql: string, params: unknown[], itemSql: string): Promise<Order | null> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<OrderRow>(orderSql, params);
      if (rows.length === 0) return null;
      const order = rows[0];
      await tx.query(itemSql, [order.sale_id, order.sku, order.quantity]);
      await event(tx, `order.${order.status}`, orderEvent(order));
      return toOrder(order);
    });
  }

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
      ? await this.db.query<{ status: OrderStatus; n: number }>(
          'SELECT status, count(*)::int AS n FROM orders WHERE sale_id = $1 GROUP BY status',
          [saleId],
        )
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

function orderEvent(o: OrderRow): Record<string, unknown> {
  return { order_id: o.id, sale_id: o.sale_id, sku: o.sku, user_id: o.user_id, quantity: o.quantity, status: o.status, payment_id: o.payment_id };
}

