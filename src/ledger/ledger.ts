/**
 * The ledger port: the durable record of sales, items, orders, payments and the outbox. One
 * implementation (`SqlLedger`) runs the same SQL on PostgreSQL (`pg`) and embedded PGlite; the
 * difference is only the `SqlClient` underneath (see `sql-client.ts`).
 *
 * The ledger is the second wall against oversell: an item row refuses `sold + held > quantity`
 * (a guarded update plus a CHECK constraint), so even a faulty engine cannot oversell into it.
 */
import type { QueueMode } from '../engine/engine.js';

export interface ItemInput {
  sku: string;
  name: string;
  priceCents: number;
  currency: string;
  quantity: number;
  perUserLimit: number;
  maxPerOrder: number;
}

export interface Item extends ItemInput {
  /** Confirmed units. */
  sold: number;
  /** Units in reserved (unconfirmed) orders. */
  held: number;
}

export interface QueueSettings {
  mode: QueueMode;
  admissionRatePerSec: number;
  admittedTtlSec: number;
  maxActive: number;
  /** Queue lanes (1, or absent on sales made before lanes existed: one). */
  shards?: number;
}

export interface BotProtection {
  powDifficulty: number;
  captcha: 'none' | 'turnstile' | 'hcaptcha' | 'recaptcha';
  /** User ids that skip bot checks (staff, load testers). */
  allowlist: string[];
}

export interface SaleInput {
  name: string;
  startsAt: Date;
  endsAt: Date;
  items: ItemInput[];
  queue: QueueSettings;
  reservationTtlSec: number;
  botProtection: BotProtection;
}

export interface Sale extends Omit<SaleInput, 'items'> {
  id: string;
  items: Item[];
  cancelledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export type OrderStatus = 'reserved' | 'confirmed' | 'expired' | 'cancelled' | 'failed';

export interface Order {
  id: string;
  saleId: string;
  sku: string;
  userId: string;
  quantity: number;
  unitPriceCents: number;
  amountCents: number;
  currency: string;
  status: OrderStatus;
  idempotencyKey: string;
  reservationExpiresAt: Date;
  /** The payment that confirmed it. */
  paymentId: string | null;
  /** Money given back for this order (a capture that came after it lapsed, or an admin's refund); its status does not change. */
  refundedCents: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewOrder {
  id: string;
  saleId: string;
  sku: string;
  userId: string;
  quantity: number;
  idempotencyKey: string;
  reservationExpiresAt: Date;
}

export type PaymentKind = 'authorization' | 'charge';
export type PaymentStatus = 'pending' | 'authorized' | 'captured' | 'voided' | 'failed' | 'refunded';

export interface Payment {
  id: string;
  saleId: string;
  userId: string;
  /** The queue ticket's place the authorisation is bound to (0 for a direct charge). */
  ticketPlace: number;
  orderId: string | null;
  kind: PaymentKind;
  gateway: string;
  gatewayRef: string | null;
  amountCents: number;
  capturedCents: number;
  /** Given back after the capture (status `refunded`). */
  refundedCents: number;
  currency: string;
  status: PaymentStatus;
  /** Why it ended (captured, sold_out, ended, cancelled, cap, superseded, declined, refunded:<why> ...). */
  endedReason: string | null;
  expiresAt: Date;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewPayment {
  id: string;
  saleId: string;
  userId: string;
  ticketPlace: number;
  orderId: string | null;
  kind: PaymentKind;
  gateway: string;
  amountCents: number;
  currency: string;
  expiresAt: Date;
}

/** Thrown by `reserveOrder` when the item row cannot take the units. */
export class LedgerOversellError extends Error {
  constructor(saleId: string, sku: string) {
    super(`ledger refused: item ${saleId}/${sku} would exceed its quantity`);
    this.name = 'LedgerOversellError';
  }
}

/** Thrown when a change would contradict what the ledger already holds (e.g. replacing items with units held). */
export class LedgerConflictError extends Error {
  constructor(message: string) {
    super(`ledger refused: ${message}`);
    this.name = 'LedgerConflictError';
  }
}

/** Thrown by the methods that change a record (`updateSale`, `cancelSale`) when it does not exist. */
export class LedgerNotFoundError extends Error {
  constructor(what: string, id: string) {
    super(`ledger: no ${what} ${id}`);
    this.name = 'LedgerNotFoundError';
  }
}

/** A sale as the ledger holds it at one instant: see `Ledger.saleSnapshot`. */
export interface SaleRecordSnapshot {
  sale: Sale;
  reserved: Order[];
  perUser: Array<{ userId: string; sku: string; units: number }>;
}

export interface Ledger {
  readonly kind: 'pg' | 'pglite';
  /** Applies pending migrations in order, each recorded in `schema_migrations`. */
  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;

  createSale(input: SaleInput): Promise<Sale>;
  getSale(id: string): Promise<Sale | null>;
  listSales(): Promise<Sale[]>;
  /** Replaces the given fields (items replaced whole when present). Refuses when any unit is sold or held. */
  updateSale(id: string, patch: Partial<SaleInput>): Promise<Sale>;
  cancelSale(id: string): Promise<Sale>;

  /** Inserts a `reserved` order and adds its units to the item's `held`, refusing (LedgerOversellError) past quantity. */
  reserveOrder(order: NewOrder): Promise<Order>;
  /**
   * reserved → confirmed (held → sold), linking the payment. Null when the order was not
   * reserved. With `capturedCents`, the same statement records the authorisation `paymentId`
   * as captured (authorized → captured) — whether or not the order was still reserved, since
   * the money has moved either way.
   */
  confirmOrder(id: string, paymentId: string | null, opts?: { capturedCents?: number }): Promise<Order | null>;
  /** reserved → expired/cancelled/failed, units back from `held`. Null when the order was not reserved. */
  releaseOrder(id: string, status: 'expired' | 'cancelled' | 'failed'): Promise<Order | null>;
  getOrder(id: string): Promise<Order | null>;
  /** Orders of a sale, oldest first; of one user when `userId` is given. */
  listOrders(saleId: string, opts?: { status?: OrderStatus; limit?: number; userId?: string }): Promise<Order[]>;
  /** Reserved orders whose window ended before `before`. */
  expiredReservations(before: Date, limit: number): Promise<Order[]>;
  orderCounts(saleId: string): Promise<Record<OrderStatus, number>>;
  /** Units per user and SKU in reserved plus confirmed orders (to rebuild the engine's per-user counts). */
  unitsPerUser(saleId: string): Promise<Array<{ userId: string; sku: string; units: number }>>;
  /**
   * What the engine is rebuilt from, read in one REPEATABLE READ transaction: the sale (its
   * items' sold counts), its reserved orders and units per user all as of the same instant. Reads
   * taken at different moments let an order paid in between count as neither sold nor held.
   */
  saleSnapshot(saleId: string): Promise<SaleRecordSnapshot | null>;

  insertPayment(p: NewPayment): Promise<Payment>;
  /** Compare-and-set on status; null when the payment was not in one of `from`. */
  transitionPayment(
    id: string,
    from: PaymentStatus[],
    to: PaymentStatus,
    fields?: { gatewayRef?: string; capturedCents?: number; orderId?: string; endedReason?: string },
  ): Promise<Payment | null>;
  getPayment(id: string): Promise<Payment | null>;
  /** The payments that name an order: its charge, and the authorisation captured for it. Oldest first. */
  paymentsOfOrder(orderId: string): Promise<Payment[]>;
  /**
   * captured → refunded, with the amount given back, on the payment and on its order in one
   * statement (with its `payment.refunded` event). Null when the payment was not captured.
   */
  recordRefund(paymentId: string, refundedCents: number, reason: string): Promise<Payment | null>;
  /**
   * Captures that no confirmed order owns — their order ended, is missing, or was paid by another
   * payment — recorded (last changed) between `since` and `before`. Reserved orders' captures are
   * not stray: their confirmation may be on its way.
   */
  strayCaptures(opts: { since: Date; before: Date; limit: number }): Promise<Payment[]>;
  /** The live (pending or authorized) authorisation of a user in a sale, if any. */
  liveAuthorization(saleId: string, userId: string): Promise<Payment | null>;
  /** Authorisations still pending/authorized, for the void sweeper: of one sale, or (saleId null) any expired before `expiredBefore`. */
  openAuthorizations(opts: { saleId?: string; expiredBefore?: Date; limit: number }): Promise<Payment[]>;
  paymentCounts(saleId: string): Promise<Record<PaymentStatus, number>>;

  /** Appends an event to the outbox (inside the caller's unit of work when the ledger has one). */
  appendEvent(topic: string, payload: Record<string, unknown>): Promise<void>;
  /** Oldest unpublished events. */
  pendingEvents(limit: number): Promise<Array<{ id: number; topic: string; payload: Record<string, unknown>; createdAt: Date }>>;
  markPublished(ids: number[]): Promise<void>;
}
