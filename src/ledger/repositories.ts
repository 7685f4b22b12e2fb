/**
 * The ledger seen by each tier: one port, cut into the parts a tier may use. A service takes its
 * own tier's repository, so reaching into another tier's tables does not compile; what a tier
 * needs of another's records it asks that tier's service for.
 */
import type { Ledger } from './ledger.js';

/** Sales and their items (the sales tier). */
export type SalesRepository = Pick<Ledger, 'createSale' | 'getSale' | 'listSales' | 'updateSale' | 'cancelSale' | 'saleSnapshot'>;

/** Orders: holds made durable (the checkout tier). */
export type OrdersRepository = Pick<
  Ledger,
  'reserveOrder' | 'confirmOrder' | 'releaseOrder' | 'getOrder' | 'listOrders' | 'expiredReservations' | 'orderCounts'
>;

/** Authorisations and charges (the payment tier). */
export type PaymentsRepository = Pick<
  Ledger,
  | 'insertPayment'
  | 'transitionPayment'
  | 'getPayment'
  | 'paymentsOfOrder'
  | 'recordRefund'
  | 'strayCaptures'
  | 'liveAuthorization'
  | 'openAuthorizations'
  | 'paymentCounts'
>;

/** Events waiting for the stream (the outbox relay). */
export type OutboxRepository = Pick<Ledger, 'pendingEvents' | 'markPublished'>;
