-- Refunds (SPEC §6: a customer is never charged without a confirmed order). A capture that lands
-- on an order that lapsed is given back; the payment says `refunded` and how much, and so does
-- its order, whose status stays what it was (an expired order stays expired, a refunded
-- confirmed order stays confirmed and its units sold).
ALTER TABLE payments ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0);
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
  CHECK (status IN ('pending', 'authorized', 'captured', 'voided', 'failed', 'refunded'));
ALTER TABLE orders ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0);

-- Reconciliation starts from an order's own payment rows (its charge, the authorisation it captured).
CREATE INDEX payments_order ON payments (order_id) WHERE order_id IS NOT NULL;
-- The stray-capture check reads recent captures only.
CREATE INDEX payments_captured_recent ON payments (updated_at) WHERE status = 'captured';
