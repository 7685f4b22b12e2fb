/**
 * Rows as the database returns them (snake_case) and their mapping to the ledger's types
 * (camelCase). Kept apart from the queries so `sql-ledger.ts` reads as the rules it enforces.
 */
import type { BotProtection, Item, Order, OrderStatus, Payment, PaymentKind, PaymentStatus, QueueSettings, Sale } from './ledger.js';

export interface SaleRow {
  id: string;
  name: string;
  starts_at: Date;
  ends_at: Date;
  queue: QueueSettings;
  reservation_ttl_sec: number;
  bot_protection: BotProtection;
  cancelled_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface ItemRow {
  sale_id: string;
  sku: string;
  name: string;
  price_cents: number;
  currency: string;
  quantity: number;
  per_user_limit: number;
  max_per_order: number;
  sold: number;
  held: number;
}

export interface OrderRow {
  id: string;
  sale_id: string;
  sku: string;
  user_id: string;
  quantity: number;
  unit_price_cents: number;
  amount_cents: number;
  currency: string;
  status: OrderStatus;
  idempotency_key: string;
  reservation_expires_at: Date;
  payment_id: string | null;
  refunded_cents: number;
  created_at: Date;
  updated_at: Date;
}

export interface PaymentRow {
  id: string;
  sale_id: string;
  user_id: string;
  ticket_place: number;
  order_id: string | null;
  kind: PaymentKind;
  gateway: string;
  gateway_ref: string | null;
  amount_cents: number;
  captured_cents: number;
  refunded_cents: number;
  currency: string;
  status: PaymentStatus;
  ended_reason: string | null;
  expires_at: Date;
  created_at: Date;
  updated_at: Date;
}

export interface OutboxRow {
  id: number;
  topic: string;
  payload: Record<string, unknown>;
  created_at: Date;
}

export const ORDER_STATUSES: readonly OrderStatus[] = ['reserved', 'confirmed', 'expired', 'cancelled', 'failed'];
export const PAYMENT_STATUSES: readonly PaymentStatus[] = ['pending', 'authorized', 'captured', 'voided', 'failed', 'refunded'];

export function toItem(r: ItemRow): Item {
  return {
    sku: r.sku,
    name: r.name,
    priceCents: r.price_cents,
    currency: r.currency,
    quantity: r.quantity,
    perUserLimit: r.per_user_limit,
    maxPerOrder: r.max_per_order,
    sold: r.sold,
    held: r.held,
  };
}

export function toSale(r: SaleRow, items: ItemRow[]): Sale {
  return {
    id: r.id,
    name: r.name,
    startsAt: r.starts_at,
    endsAt: r.ends_at,
    queue: r.queue,
    reservationTtlSec: r.reservation_ttl_sec,
    botProtection: r.bot_protection,
    items: items.map(toItem),
    cancelledAt: r.cancelled_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function toOrder(r: OrderRow): Order {
  return {
    id: r.id,
    saleId: r.sale_id,
    sku: r.sku,
    userId: r.user_id,
    quantity: r.quantity,
    unitPriceCents: r.unit_price_cents,
    amountCents: r.amount_cents,
    currency: r.currency,
    status: r.status,
    idempotencyKey: r.idempotency_key,
    reservationExpiresAt: r.reservation_expires_at,
    paymentId: r.payment_id,
    refundedCents: r.refunded_cents,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function toPayment(r: PaymentRow): Payment {
  return {
    id: r.id,
    saleId: r.sale_id,
    userId: r.user_id,
    ticketPlace: r.ticket_place,
    orderId: r.order_id,
    kind: r.kind,
    gateway: r.gateway,
    gatewayRef: r.gateway_ref,
    amountCents: r.amount_cents,
    capturedCents: r.captured_cents,
    refundedCents: r.refunded_cents,
    currency: r.currency,
    status: r.status,
    endedReason: r.ended_reason,
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** `{status: n}` for every status, zeros included, from `status, n` rows. */
export function countsByStatus<S extends string>(statuses: readonly S[], rows: Array<{ status: S; n: number }>): Record<S, number> {
  const counts = Object.fromEntries(statuses.map((s) => [s, 0])) as Record<S, number>;
  for (const r of rows) counts[r.status] = r.n;
  return counts;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Sale ids are uuid columns; anything else cannot name a sale (and would be a SQL error). */
export const isUuid = (s: string): boolean => UUID.test(s);
