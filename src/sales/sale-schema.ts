/**
 * The sale as the API speaks it (snake_case JSON) and its mapping to the ledger's types.
 * Shape errors are caught by these schemas (400 VALIDATION_FAILED, naming the field); rules
 * that span fields are checked in `validateSale` with their own stable codes.
 */
import { Type, type Static } from 'typebox';
import { StampedeError } from '../errors.js';
import type { Item, ItemInput, Sale, SaleInput } from '../ledger/ledger.js';

const Sku = Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', description: 'Letters, digits, dot, dash, underscore' });

export const ItemBody = Type.Object(
  {
    sku: Sku,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    price_cents: Type.Integer({ minimum: 0, maximum: 100_000_000 }),
    currency: Type.String({ pattern: '^[A-Za-z]{3}$' }),
    quantity: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
    per_user_limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    max_per_order: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);

export const QueueBody = Type.Object(
  {
    mode: Type.Optional(Type.Union([Type.Literal('fifo'), Type.Literal('randomized_prequeue')])),
    admission_rate_per_sec: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    admitted_ttl_sec: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
    max_active: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000 })),
    shards: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 64,
        description:
          'Queue lanes (a mega-drop): the queue spread over this many Redis hash slots, one per master on a Cluster. 1 keeps it in the sale’s slot. fifo only; fixed when the sale is created.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const BotProtectionBody = Type.Object(
  {
    pow_difficulty: Type.Optional(Type.Integer({ minimum: 0, maximum: 12 })),
    captcha: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('turnstile'), Type.Literal('hcaptcha'), Type.Literal('recaptcha')])),
    allowlist: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 10_000 })),
  },
  { additionalProperties: false },
);

const saleFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  starts_at: Type.String({ format: 'date-time' }),
  ends_at: Type.Optional(Type.String({ format: 'date-time' })),
  duration_sec: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86_400 })),
  items: Type.Array(ItemBody, { minItems: 1, maxItems: 500 }),
  queue: Type.Optional(QueueBody),
  reservation_ttl_sec: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  bot_protection: Type.Optional(BotProtectionBody),
};

export const CreateSaleBody = Type.Object(saleFields, { additionalProperties: false });
export type CreateSaleBody = Static<typeof CreateSaleBody>;
export const PatchSaleBody = Type.Partial(Type.Object(saleFields), { additionalProperties: false, minProperties: 1 });
export type PatchSaleBody = Static<typeof PatchSaleBody>;

/** The proof-of-work difficulty a sale gets unless it chooses one: up to 20,000 hashes, ≈10,000 on average. */
export const DEFAULT_POW_DIFFICULTY = 3;

const invalid = (message: string, field: string, code: 'INVALID_SALE' = 'INVALID_SALE') => new StampedeError(code, message, { extra: { field } });

function toItem(body: Static<typeof ItemBody>): ItemInput {
  const perUserLimit = body.per_user_limit ?? 1;
  return {
    sku: body.sku,
    name: body.name,
    priceCents: body.price_cents,
    currency: body.currency.toUpperCase(),
    quantity: body.quantity,
    perUserLimit,
    maxPerOrder: body.max_per_order ?? perUserLimit,
  };
}

/** Queue lanes: fixed when the sale is created (places already given depend on them), fifo only. */
function queueShards(body: PatchSaleBody, base?: Sale): number {
  const was = base?.queue.shards ?? 1;
  const shards = body.queue?.shards ?? was;
  if (base && shards !== was) throw invalid(`queue.shards is fixed when the sale is created (it is ${was})`, 'queue/shards');
  if (shards > 1 && (body.queue?.mode ?? base?.queue.mode) === 'randomized_prequeue') {
    throw invalid('queue.shards above 1 works with the fifo queue only', 'queue/shards');
  }
  return shards;
}

/** Builds a full sale definition from a create body, or from a patch over the current sale. */
export function toSaleInput(body: PatchSaleBody, base?: Sale): SaleInput {
  const startsAt = body.starts_at ? new Date(body.starts_at) : base?.startsAt;
  if (!startsAt) throw invalid('starts_at is required', 'starts_at');
  let endsAt: Date | undefined;
  if (body.ends_at && body.duration_sec) throw invalid('Give ends_at or duration_sec, not both', 'ends_at');
  if (body.ends_at) endsAt = new Date(body.ends_at);
  else if (body.duration_sec) endsAt = new Date(startsAt.getTime() + body.duration_sec * 1000);
  else if (base) endsAt = new Date(startsAt.getTime() + (base.endsAt.getTime() - base.startsAt.getTime()));
  if (!endsAt) throw invalid('ends_at or duration_sec is required', 'ends_at');

  const rate = body.queue?.admission_rate_per_sec ?? base?.queue.admissionRatePerSec ?? 50;
  const botProtection = body.bot_protection;
  return {
    name: body.name ?? base!.name,
    startsAt,
    endsAt,
    items: body.items ? body.items.map(toItem) : base!.items.map(({ sold: _s, held: _h, ...item }) => item),
    queue: {
      mode: body.queue?.mode ?? base?.queue.mode ?? 'fifo',
      admissionRatePerSec: rate,
      admittedTtlSec: body.queue?.admitted_ttl_sec ?? base?.queue.admittedTtlSec ?? 120,
      maxActive: body.queue?.max_active ?? base?.queue.maxActive ?? rate * 30,
      shards: queueShards(body, base),
    },
    reservationTtlSec: body.reservation_ttl_sec ?? base?.reservationTtlSec ?? 300,
    botProtection: {
      powDifficulty: botProtection?.pow_difficulty ?? base?.botProtection.powDifficulty ?? DEFAULT_POW_DIFFICULTY,
      captcha: botProtection?.captcha ?? base?.botProtection.captcha ?? 'none',
      allowlist: botProtection?.allowlist ?? base?.botProtection.allowlist ?? [],
    },
  };
}

/** The rules no schema can say: they span fields or depend on the clock. */
export function validateSale(input: SaleInput, now: number): void {
  if (input.endsAt.getTime() <= input.startsAt.getTime()) throw invalid('ends_at must be after starts_at', 'ends_at');
  if (input.endsAt.getTime() <= now) throw invalid('ends_at must be in the future', 'ends_at');
  const seen = new Set<string>();
  input.items.forEach((item, i) => {
    if (seen.has(item.sku)) throw invalid(`sku "${item.sku}" appears twice`, `items/${i}/sku`);
    seen.add(item.sku);
    if (item.maxPerOrder > item.perUserLimit) throw invalid('max_per_order cannot exceed per_user_limit', `items/${i}/max_per_order`);
  });
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function itemJson(item: Item, remaining: number | undefined, admin: boolean) {
  return {
    sku: item.sku,
    name: item.name,
    price_cents: item.priceCents,
    currency: item.currency,
    quantity: item.quantity,
    remaining: remaining ?? item.quantity - item.sold - item.held,
    per_user_limit: item.perUserLimit,
    max_per_order: item.maxPerOrder,
    ...(admin ? { sold: item.sold, held: item.held } : {}),
  };
}

export type SaleStatus = 'scheduled' | 'open' | 'sold_out' | 'ended' | 'cancelled';

/** The sale as JSON. `remaining` comes from the engine's cached snapshot when there is one. */
export function saleJson(sale: Sale, status: SaleStatus, serverTime: number, remaining: Record<string, number> | null, admin = false) {
  return {
    id: sale.id,
    name: sale.name,
    status,
    starts_at: iso(sale.startsAt),
    ends_at: iso(sale.endsAt),
    server_time: new Date(serverTime).toISOString(),
    items: sale.items.map((item) => itemJson(item, remaining?.[item.sku], admin)),
    queue: {
      mode: sale.queue.mode,
      admission_rate_per_sec: sale.queue.admissionRatePerSec,
      admitted_ttl_sec: sale.queue.admittedTtlSec,
      max_active: sale.queue.maxActive,
      shards: sale.queue.shards ?? 1,
    },
    reservation_ttl_sec: sale.reservationTtlSec,
    bot_protection: {
      pow_difficulty: sale.botProtection.powDifficulty,
      captcha: sale.botProtection.captcha,
      ...(admin ? { allowlist: sale.botProtection.allowlist } : {}),
    },
    cancelled_at: iso(sale.cancelledAt),
    created_at: iso(sale.createdAt),
  };
}
