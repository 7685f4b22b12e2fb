-- Stampede ledger schema, version 1. Plain SQL that runs unchanged on PostgreSQL 15+ and PGlite.
-- Ids are made by the application (crypto.randomUUID), so no extension is needed.
-- `schema_migrations` itself is created by the runner (migrate.ts) before any file runs.

CREATE TABLE sales (
  id                  uuid PRIMARY KEY,
  name                text NOT NULL,
  starts_at           timestamptz NOT NULL,
  ends_at             timestamptz NOT NULL,
  queue               jsonb NOT NULL,
  reservation_ttl_sec integer NOT NULL CHECK (reservation_ttl_sec > 0),
  bot_protection      jsonb NOT NULL,
  cancelled_at        timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sales_ends_after_start CHECK (ends_at > starts_at)
);

-- The second wall against oversell: whatever the engine does, a row never holds more
-- confirmed plus reserved units than it has.
CREATE TABLE items (
  sale_id        uuid NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
  sku            text NOT NULL,
  name           text NOT NULL,
  price_cents    integer NOT NULL CHECK (price_cents >= 0),
  currency       text NOT NULL,
  quantity       integer NOT NULL CHECK (quantity >= 0),
  per_user_limit integer NOT NULL CHECK (per_user_limit > 0),
  max_per_order  integer NOT NULL CHECK (max_per_order > 0),
  sold           integer NOT NULL DEFAULT 0,
  held           integer NOT NULL DEFAULT 0,
  position       integer NOT NULL,
  PRIMARY KEY (sale_id, sku),
  CONSTRAINT items_stock_within_quantity CHECK (sold >= 0 AND held >= 0 AND sold + held <= quantity)
);

-- No foreign key to items: a sale's item list may be replaced before any unit is held, while
-- orders that ended (expired, cancelled) still name the old SKUs.
CREATE TABLE orders (
  id                     text PRIMARY KEY,
  sale_id                uuid NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
  sku                    text NOT NULL,
  user_id                text NOT NULL,
  quantity               integer NOT NULL CHECK (quantity > 0),
  unit_price_cents       integer NOT NULL CHECK (unit_price_cents >= 0),
  amount_cents           bigint NOT NULL CHECK (amount_cents >= 0),
  currency               text NOT NULL,
  status                 text NOT NULL
    CHECK (status IN ('reserved', 'confirmed', 'expired', 'cancelled', 'failed')),
  idempotency_key        text NOT NULL,
  reservation_expires_at timestamptz NOT NULL,
  payment_id             text,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT orders_one_per_idempotency_key UNIQUE (sale_id, user_id, idempotency_key)
);
CREATE INDEX orders_sale_status ON orders (sale_id, status);
CREATE INDEX orders_status_expiry ON orders (status, reservation_expires_at);

CREATE TABLE payments (
  id             text PRIMARY KEY,
  sale_id        uuid NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
  user_id        text NOT NULL,
  ticket_place   bigint NOT NULL DEFAULT 0,
  order_id       text,
  kind           text NOT NULL CHECK (kind IN ('authorization', 'charge')),
  gateway        text NOT NULL,
  gateway_ref    text,
  amount_cents   bigint NOT NULL CHECK (amount_cents >= 0),
  captured_cents bigint NOT NULL DEFAULT 0 CHECK (captured_cents >= 0),
  currency       text NOT NULL,
  status         text NOT NULL
    CHECK (status IN ('pending', 'authorized', 'captured', 'voided', 'failed')),
  ended_reason   text,
  expires_at     timestamptz NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_sale_status ON payments (sale_id, status);
CREATE INDEX payments_status_expiry ON payments (status, expires_at);
CREATE INDEX payments_sale_user ON payments (sale_id, user_id);

-- Events leave through the outbox: written in the same transaction as the change they
-- describe, published later by a relay that marks them.
CREATE TABLE outbox (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic        text NOT NULL,
  payload      jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
