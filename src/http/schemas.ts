/**
 * Schemas shared by several routes, for validation and for the OpenAPI document. Response
 * schemas list the fields clients rely on and allow more, so documenting never drops a field.
 */
import { Type, type TSchema, type TUnknown } from 'typebox';

/**
 * A response schema for documentation and serialisation, typed loosely: handlers return view
 * objects built elsewhere, and the schema must not force them into its static type.
 */
export const doc = (schema: TSchema): TUnknown => schema as unknown as TUnknown;

export const ErrorBody = doc(
  Type.Object(
    {
      error: Type.Object({
        code: Type.String({ description: 'Stable code from docs/errors.md' }),
        message: Type.String(),
        field: Type.Optional(Type.String()),
      }),
    },
    { additionalProperties: true, description: 'The one error shape' },
  ),
);

export const SaleParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
export const TicketQuery = Type.Object({
  ticket: Type.String({ minLength: 1, maxLength: 1024 }),
  seen: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description:
        'The highest `watermark` this client was shown, by any node. A node whose picture of the sale is older reads the engine before answering, so the answer never steps back (admitted, then waiting) when the next request reaches another node',
    }),
  ),
});

const open = (props: Parameters<typeof Type.Object>[0], description?: string) => Type.Object(props, { additionalProperties: true, description });

export const SaleResponse = doc(
  open(
    {
      id: Type.String(),
      name: Type.String(),
      status: Type.Union(['scheduled', 'open', 'sold_out', 'ended', 'cancelled'].map((s) => Type.Literal(s))),
      starts_at: Type.String({ format: 'date-time' }),
      ends_at: Type.String({ format: 'date-time' }),
      server_time: Type.String({ format: 'date-time' }),
      items: Type.Array(
        open({
          sku: Type.String(),
          name: Type.String(),
          price_cents: Type.Integer(),
          currency: Type.String(),
          quantity: Type.Integer(),
          remaining: Type.Integer(),
        }),
      ),
    },
    'A flash sale',
  ),
);

export const TicketResponseSchema = open(
  {
    status: Type.Union(['waiting', 'admitted', 'sold_out', 'ended', 'expired', 'purchased'].map((s) => Type.Literal(s))),
    position: Type.Union([Type.Integer(), Type.Null()]),
    estimated_wait_sec: Type.Union([Type.Integer(), Type.Null()]),
    inventory_remaining: Type.Integer(),
  },
  'Where a ticket stands',
);
export const TicketResponse = doc(TicketResponseSchema);

export const OrderResponse = doc(
  open(
    {
      order_id: Type.String(),
      status: Type.String(),
      sku: Type.String(),
      quantity: Type.Integer(),
      amount_cents: Type.Integer(),
      reservation_expires_at: Type.Optional(Type.String({ format: 'date-time' })),
      payment_status: Type.Optional(Type.Literal('refunded', { description: 'Money was given back; the status stays what it was' })),
      refunded_cents: Type.Optional(Type.Integer({ description: 'How much was given back (with payment_status: refunded)' })),
    },
    'An order',
  ),
);

/** Standard error responses for a route, for the OpenAPI document. */
export const errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, ErrorBody]));
