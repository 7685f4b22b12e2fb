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
  type SaleRecordSnapshot,
} from './ledger.js';
import { isUuid, toOrder, type OrderRow } from './ledger-rows.js';
import { OrderReads } from './order-reads.js';
import { migrate } from './migrate.js';
import { Batcher } from './batcher.js';
import { Outbox, PAYMENT_OUTBOX_FROM_P } from './outbox.js';
import { PaymentRepository } from './payment-repository.js';
import { SaleRepository } from './sale-repository.js';
import { sqlState, type SqlClient } from './sql-client.js';
import { isUnavailable } from '../errors.js';

/** The CHECK on `items` that keeps `sold + held` within `quantity` (see 001.do.schema.sql). */
const STOCK_CHECK = 'items_stock_within_quantity';
const RELEASE_STATUSES = new Set(['expired', 'cancelled', 'failed']);

interface Confirmation {
  id: string;
  paymentId: string | null;
  capturedCents: number | null;
}

/** {@link Ledger} over a {@link SqlClient}; pick the client with `openLedger`. */
export class SqlLedger implements Ledger {
  readonly kind: 'pg' | 'pglite';
  private readonly sales: SaleRepository;
  private readonly payments: PaymentRepository;
  private readonly outbox: Outbox;
  private readonly reads: OrderReads;
  /** Batching of concurrent calls; off inside a transaction (its statements must run in it, in order). */
  private readonly reservations: Batcher<NewOrder, Order> | null;
  private readonly confirmations: Batcher<Confirmation, Order | null> | null;

  constructor(
    readonly db: SqlClient,
    opts: { batching?: boolean } = {},
  ) {
    this.kind = db.kind;
    const batching = opts.batching ?? true;
    // PGlite runs each statement on this thread: batch what one turn of the event loop gathers.
    const gather = { gatherTurn: db.kind === 'pglite' };
    this.reservations = batching ? new Batcher((_, batch) => this.reserveBatch(batch[0].saleId, batch[0].sku, batch), gather) : null;
    this.confirmations = batching ? new Batcher((_, batch) => this.confirmBatch(batch), gather) : null;
    this.sales = new SaleRepository(db);
    this.payments = new PaymentRepository(db, { batching: opts.batching });
    this.outbox = new Outbox(db);
    this.reads = new OrderReads(db);
  }

  /**
   * Runs `fn` with a ledger bound to one transaction, so a caller can make several ledger
   * changes (and `appendEvent`s) commit or fail together.
   */
  transaction<T>(fn: (ledger: SqlLedger) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => fn(new SqlLedger(tx, { batching: false })));
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
  paymentsOfOrder(orderId: string): Promise<Payment[]> {
    return this.payments.paymentsOfOrder(orderId);
  }
  recordRefund(paymentId: string, refundedCents: number, reason: string): Promise<Payment | null> {
    return this.payments.recordRefund(paymentId, refundedCents, reason);
  }
  strayCaptures(opts: Parameters<Ledger['strayCaptures']>[0]): Promise<Payment[]> {
    return this.payments.strayCaptures(opts);
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
  //
  // Each change below is one statement (its CTEs commit together, outbox event included), so
  // an item's row is locked for one statement and its commit, not for a conversation. Outside
  // a transaction, concurrent calls are batched (see batcher.ts): one statement for many.

  reserveOrder(o: NewOrder): Promise<Order> {
    if (!Number.isInteger(o.quantity) || o.quantity <= 0) return Promise.reject(new RangeError(`order quantity must be a positive integer, got ${o.quantity}`));
    if (!isUuid(o.saleId)) return Promise.reject(new LedgerOversellError(o.saleId, o.sku));
    return this.reservations ? this.reservations.submit(`${o.saleId}\u0000${o.sku}`, o) : this.reserveOne(o);
  }

  confirmOrder(id: string, paymentId: string | null, opts: { capturedCents?: number } = {}): Promise<Order | null> {
    const c: Confirmation = { id, paymentId, capturedCents: opts.capturedCents ?? null };
    if (c.capturedCents !== null && (!paymentId || !Number.isInteger(c.capturedCents) || c.capturedCents < 0)) {
      return Promise.reject(new RangeError('a capture needs the authorisation id and whole cents ≥ 0'));
    }
    return this.confirmations ? this.confirmations.submit('', c) : this.confirmOne(c);
  }

  async releaseOrder(id: string, status: 'expired' | 'cancelled' | 'failed'): Promise<Order | null> {
    if (!RELEASE_STATUSES.has(status)) throw new RangeError(`cannot release an order as ${status}`);
    const { rows } = await this.db.query<OrderRow>(
      `WITH o AS (UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 AND status = 'reserved' RETURNING *),
            i AS (UPDATE items SET held = items.held - o.quantity FROM o WHERE items.sale_id = o.sale_id AND items.sku = o.sku),
            e AS (${OUTBOX_FROM_O})
       SELECT * FROM o`,
      [id, status],
    );
    return rows.length > 0 ? toOrder(rows[0]) : null;
  }

  /** One reservation: the guarded item update, the order row and its event in one statement. */
  private async reserveOne(o: NewOrder): Promise<Order> {
    const [result] = await this.reserveBatch(o.saleId, o.sku, [o]);
    if (result instanceof Error) throw result;
    return result;
  }

  /**
   * Reservations of one item in one statement: the guard checks the batch's total, so it is
   * all or nothing; when it refuses (or one row conflicts), each goes again alone, so exactly
   * the ones that cannot be recorded are refused.
   */
  private async reserveBatch(saleId: string, sku: string, batch: NewOrder[]): Promise<Array<Order | Error>> {
    let rows: OrderRow[];
    try {
      ({ rows } = await this.db.query<OrderRow>(
        `WITH r AS (
           SELECT * FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::timestamptz[])
             AS r(id, user_id, quantity, idempotency_key, reservation_expires_at)
         ), item AS (
           -- The guard is in the WHERE: on PostgreSQL the row lock makes concurrent reservations
           -- re-check it one at a time, so the last unit goes to exactly one of them.
           UPDATE items SET held = held + (SELECT sum(quantity) FROM r)
           WHERE sale_id = $1::uuid AND sku = $2::text AND sold + held + (SELECT sum(quantity) FROM r) <= quantity
           RETURNING price_cents, currency
         ), o AS (
           INSERT INTO orders (id, sale_id, sku, user_id, quantity, unit_price_cents, amount_cents, currency,
                               status, idempotency_key, reservation_expires_at)
           SELECT r.id, $1::uuid, $2::text, r.user_id, r.quantity, item.price_cents, item.price_cents::bigint * r.quantity, item.currency,
                  'reserved', r.idempotency_key, r.reservation_expires_at
           FROM r CROSS JOIN item
           RETURNING *
         ), e AS (${OUTBOX_FROM_O})
         SELECT * FROM o`,
        [
          saleId,
          sku,
          batch.map((o) => o.id),
          batch.map((o) => o.userId),
          batch.map((o) => o.quantity),
          batch.map((o) => o.idempotencyKey),
          batch.map((o) => o.reservationExpiresAt),
        ],
      ));
    } catch (err) {
      const state = sqlState(err);
      // A database that is not answering is not asked again one order at a time: all fail now.
      if (batch.length > 1 && !isUnavailable(err)) return this.oneByOne(batch);
      // The CHECK constraint is the second wall; should the guard ever miss, it still refuses.
      if (state === '23514' && (err as { constraint?: string }).constraint === STOCK_CHECK) return [new LedgerOversellError(saleId, sku)];
      if (state === '23505') return [new LedgerConflictError(`order ${batch[0].id} or idempotency key ${batch[0].idempotencyKey} already exists`)];
      throw err;
    }
    if (rows.length === 0) return batch.length > 1 ? this.oneByOne(batch) : [new LedgerOversellError(saleId, sku)];
    const byId = new Map(rows.map((r) => [r.id, toOrder(r)]));
    return batch.map((o) => byId.get(o.id) ?? new Error(`order ${o.id} missing from its batch`));
  }

  private async oneByOne(batch: NewOrder[]): Promise<Array<Order | Error>> {
    const out: Array<Order | Error> = [];
    for (const o of batch) out.push((await this.reserveBatch(o.saleId, o.sku, [o]))[0]);
    return out;
  }

  private async confirmOne(c: Confirmation): Promise<Order | null> {
    const [result] = await this.confirmBatch([c]);
    if (result instanceof Error) throw result;
    return result;
  }

  /**
   * Confirms orders still reserved (compare-and-set: a hold ends exactly once) and moves their
   * units from held to sold, per item, in one statement. An id given twice is confirmed once:
   * the first caller gets the order, the second null, as if they had come one after the other.
   */
  private async confirmBatch(batch: Confirmation[]): Promise<Array<Order | null | Error>> {
    const first = new Map<string, number>();
    batch.forEach((c, i) => {
      if (!first.has(c.id)) first.set(c.id, i);
    });
    const unique = [...first.keys()];
    let rows: OrderRow[];
    try {
      ({ rows } = await this.db.query<OrderRow>(
        `WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) AS r(id, payment_id, captured_cents)),
              o AS (UPDATE orders SET status = 'confirmed', payment_id = COALESCE(r.payment_id, orders.payment_id), updated_at = now()
                    FROM r WHERE orders.id = r.id AND orders.status = 'reserved' RETURNING orders.*),
              n AS (SELECT sale_id, sku, sum(quantity)::int AS units FROM o GROUP BY sale_id, sku),
              i AS (UPDATE items SET held = items.held - n.units, sold = items.sold + n.units
                    FROM n WHERE items.sale_id = n.sale_id AND items.sku = n.sku),
              e AS (${OUTBOX_FROM_O}),
              p AS (UPDATE payments SET status = 'captured', captured_cents = r.captured_cents, order_id = r.id,
                           ended_reason = 'captured', updated_at = now()
                    FROM r WHERE r.captured_cents IS NOT NULL AND payments.id = r.payment_id AND payments.status = 'authorized'
                    RETURNING payments.*),
              pe AS (${PAYMENT_OUTBOX_FROM_P})
         SELECT * FROM o`,
        [unique, unique.map((id) => batch[first.get(id)!].paymentId), unique.map((id) => batch[first.get(id)!].capturedCents)],
      ));
    } catch (err) {
      if (batch.length === 1 || isUnavailable(err)) throw err;
      // A deadlock with another node's batch, say: each on its own, in order.
      const out: Array<Order | null | Error> = [];
      for (const c of batch) out.push(await this.confirmOne(c).catch((e: Error) => e));
      return out;
    }
    const byId = new Map(rows.map((r) => [r.id, toOrder(r)]));
    return batch.map((c, i) => (first.get(c.id) === i ? (byId.get(c.id) ?? null) : null));
  }

  // ---- order reads: see OrderReads ---------------------------------------------------------

  getOrder(id: string): Promise<Order | null> {
    return this.reads.getOrder(id);
  }

  listOrders(saleId: string, opts?: { status?: OrderStatus; limit?: number; userId?: string }): Promise<Order[]> {
    return this.reads.listOrders(saleId, opts);
  }

  expiredReservations(before: Date, limit: number): Promise<Order[]> {
    return this.reads.expiredReservations(before, limit);
  }

  orderCounts(saleId: string): Promise<Record<OrderStatus, number>> {
    return this.reads.orderCounts(saleId);
  }

  unitsPerUser(saleId: string): Promise<Array<{ userId: string; sku: string; units: number }>> {
    return this.reads.unitsPerUser(saleId);
  }

  async saleSnapshot(saleId: string): Promise<SaleRecordSnapshot | null> {
    if (!isUuid(saleId)) return null;
    return this.db.transaction(async (tx) => {
      // First statement of the transaction: every read below sees the same snapshot.
      await tx.exec('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const ledger = new SqlLedger(tx, { batching: false });
      const sale = await ledger.getSale(saleId);
      if (!sale) return null;
      const reserved = await ledger.listOrders(saleId, { status: 'reserved' });
      return { sale, reserved, perUser: await ledger.unitsPerUser(saleId) };
    });
  }
}

/** The outbox event of each changed order `o`, as `order.<status>` (one per row, same statement). */
const OUTBOX_FROM_O = `INSERT INTO outbox (topic, payload)
  SELECT 'order.' || o.status, jsonb_build_object('order_id', o.id, 'sale_id', o.sale_id, 'sku', o.sku, 'user_id', o.user_id,
                                                  'quantity', o.quantity, 'status', o.status, 'payment_id', o.payment_id)
  FROM o`;
