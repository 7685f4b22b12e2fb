/** Checkout over HTTP: pre-authorise while queued, purchase, and the order's own routes. */
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { StampedeError } from '../errors.js';
import { OrderResponse, SaleParams, doc, errors } from './schemas.js';

const Token = Type.String({ minLength: 1, maxLength: 256, description: 'A card token or test card number (sandbox: tok_visa, 4242424242424242, ...)' });
const OrderParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export const checkoutRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { runtime } = app;
  const tags = ['checkout'];
  const security = [{ user: [] }];
  const config = { access: 'user' } as const;

  app.post(
    '/api/flash-sales/:id/pre-auth',
    {
      config,
      schema: {
        tags,
        security,
        params: SaleParams,
        summary: 'Authorise a card while queued (the sale price times the limit); charged only on a win',
        body: Type.Object({ ticket: Type.String({ minLength: 1, maxLength: 1024 }), payment_token: Token }, { additionalProperties: false }),
        response: {
          200: doc(
            Type.Object({
              auth_id: Type.String(),
              amount_cents: Type.Integer(),
              currency: Type.String(),
              status: Type.String(),
              expires_at: Type.String({ format: 'date-time' }),
            }),
          ),
          ...errors(400, 401, 402, 403, 404, 409, 429, 503),
        },
      },
    },
    async (req) => {
      app.defence.local.spend('ip', req.ip);
      const userId = await runtime.auth.user(req.headers.authorization);
      const auth = await app.payments.preAuthorize({ saleId: req.params.id, userId, ticket: req.body.ticket, paymentToken: req.body.payment_token });
      return { auth_id: auth.id, amount_cents: auth.amountCents, currency: auth.currency, status: auth.status, expires_at: auth.expiresAt.toISOString() };
    },
  );

  app.post(
    '/api/flash-sales/:id/purchase',
    {
      config,
      schema: {
        tags,
        security,
        params: SaleParams,
        summary:
          'Buy with an admitted ticket. 201 confirmed (paid) or reserved (pay later); 409 {status: sold_out} when gone. The same Idempotency-Key returns the first answer',
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }),
        body: Type.Object(
          {
            ticket: Type.String({ minLength: 1, maxLength: 1024 }),
            sku: Type.String({ minLength: 1, maxLength: 64 }),
            quantity: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            payment_token: Type.Optional(Token),
          },
          { additionalProperties: false },
        ),
        response: { 201: OrderResponse, ...errors(400, 401, 402, 403, 404, 409, 410, 422, 429, 503) },
      },
      // When the whole sale is gone, most of the crowd is told so before its body is read or
      // validated: rejecting is most of a drop's traffic. Buyers go on (they may be replaying).
      // A plain callback, synchronous for a token seen before: no promise on the commonest answer.
      onRequest: (req, _reply, done) => {
        const saleId = (req.params as { id: string }).id;
        if (runtime.monitor.get(saleId)?.status !== 'sold_out') return done();
        const refuse = (userId: string) => {
          try {
            app.checkout.refuseLoser(saleId, userId);
          } catch (err) {
            return done(err as Error);
          }
          done();
        };
        const known = runtime.auth.knownUser(req.headers.authorization);
        if (known !== undefined) refuse(known);
        else
          runtime.auth
            .user(req.headers.authorization)
            .then(refuse, done)
            .catch((err: unknown) => req.log.error({ err }, 'sold-out refusal failed'));
      },
    },
    async (req, reply) => {
      const key = req.headers['idempotency-key'];
      if (!key) throw new StampedeError('IDEMPOTENCY_KEY_REQUIRED');
      const userId = await runtime.auth.user(req.headers.authorization);
      const order = await app.checkout.purchase({
        saleId: req.params.id,
        userId,
        ticket: req.body.ticket,
        sku: req.body.sku,
        quantity: req.body.quantity ?? 1,
        idempotencyKey: key,
        paymentToken: req.body.payment_token,
      });
      return reply.code(201).send(order);
    },
  );

  app.get(
    '/api/orders/:id',
    {
      config,
      schema: { tags, security, params: OrderParams, summary: 'An order (its owner only)', response: { 200: OrderResponse, ...errors(401, 404) } },
    },
    async (req) => app.checkout.get(req.params.id, await runtime.auth.user(req.headers.authorization)),
  );

  app.post(
    '/api/orders/:id/pay',
    {
      config,
      schema: {
        tags,
        security,
        params: OrderParams,
        summary: 'Pay a reserved order. 402 declined (the hold goes back), 410 the window passed',
        body: Type.Object({ payment_token: Token }, { additionalProperties: false }),
        response: { 200: OrderResponse, ...errors(400, 401, 402, 404, 409, 410, 429, 503) },
      },
    },
    async (req) => {
      const userId = await runtime.auth.user(req.headers.authorization);
      return app.checkout.pay(req.params.id, userId, req.body.payment_token);
    },
  );

  app.post(
    '/api/orders/:id/cancel',
    {
      config,
      schema: { tags, security, params: OrderParams, summary: 'Give a reserved order back', response: { 200: OrderResponse, ...errors(401, 404, 409) } },
    },
    async (req) => app.checkout.cancel(req.params.id, await runtime.auth.user(req.headers.authorization)),
  );
};
