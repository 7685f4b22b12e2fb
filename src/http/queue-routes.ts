/** The waiting room over HTTP: enter the queue, ask where you stand, or listen (SSE). */
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sseMessage } from '../queue/sse-hub.js';
import { StampedeError } from '../errors.js';
import { SaleParams, TicketQuery, TicketResponse, TicketResponseSchema, doc, errors } from './schemas.js';

/** A rate-limit key for a ticket: its MAC, unique per ticket, without parsing it. */
const ticketKey = (ticket: string) => ticket.slice(-22);

export const queueRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { runtime } = app;
  const tags = ['queue'];

  app.post(
    '/api/flash-sales/:id/enter-queue',
    {
      config: { access: 'user' },
      schema: {
        tags,
        security: [{ user: [] }],
        params: SaleParams,
        summary: 'Enter the waiting room. Entering again returns the same place',
        body: Type.Object(
          {
            altcha: Type.Optional(
              Type.Union([Type.String({ maxLength: 4096 }), Type.Object({}, { additionalProperties: true })], {
                description: 'The solved proof-of-work (ALTCHA payload, base64 JSON or object)',
              }),
            ),
            pow: Type.Optional(
              Type.Union([Type.String({ maxLength: 4096 }), Type.Object({}, { additionalProperties: true })], { description: 'Same as altcha' }),
            ),
            captcha_token: Type.Optional(Type.String({ maxLength: 10_000 })),
            fingerprint: Type.Optional(Type.String({ maxLength: 256 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: doc(Type.Intersect([Type.Object({ queue_ticket: Type.String() }), TicketResponseSchema])),
          ...errors(400, 401, 403, 404, 409, 410, 429),
        },
      },
    },
    async (req) => {
      app.defence.local.spend('ip', req.ip);
      const userId = await runtime.auth.user(req.headers.authorization);
      await app.defence.shared.consume('enter', userId);
      return app.queue.enter(req.params.id, {
        userId,
        ip: req.ip,
        fingerprint: req.body.fingerprint,
        pow: req.body.altcha ?? req.body.pow,
        captchaToken: req.body.captcha_token,
      });
    },
  );

  app.get(
    '/api/flash-sales/:id/status',
    {
      config: { access: 'ticket' },
      schema: {
        tags,
        params: SaleParams,
        querystring: TicketQuery,
        summary: 'Where a ticket stands. Polling every second or two is expected and never limited',
        response: { 200: TicketResponse, ...errors(401, 403, 404, 409, 429) },
      },
    },
    async (req, reply) => {
      app.defence.local.spend('read', ticketKey(req.query.ticket));
      reply.header('cache-control', 'no-store');
      return app.queue.status(req.params.id, req.query.ticket, req.query.seen);
    },
  );

  app.get(
    '/api/flash-sales/:id/events',
    {
      config: { access: 'ticket' },
      schema: {
        tags,
        params: SaleParams,
        querystring: TicketQuery,
        summary:
          'Server-Sent Events: position, admitted, inventory, sold_out, ended; replaced when a newer stream of the same ticket takes over, reconnect when the node shuts down. The signed ticket authenticates',
        produces: ['text/event-stream'],
        response: { ...errors(401, 403, 404, 409, 429) },
      },
    },
    async (req, reply) => {
      app.defence.local.spend('read', ticketKey(req.query.ticket));
      const ticket = app.queue.verify(req.params.id, req.query.ticket);
      const [sale, live] = await Promise.all([app.sales.get(req.params.id), app.queue.live(req.params.id, ticket, req.query.seen)]);
      const view = await app.queue.view(sale, live, ticket);
      // Unknown (0) while the engine cannot be asked: the hub looks it up once the engine answers.
      const place = await app.queue.placeOrUnknown(ticket);
      // No await from here to add(): the room checked is the room taken.
      if (!app.streams.hasRoom(req.ip, sale.id, ticket.userId)) {
        throw new StampedeError('RATE_LIMITED', 'Too many event streams from this address; poll the status instead', { retryAfter: 5 });
      }
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-request-id': req.id,
      });
      res.socket?.setNoDelay(true);
      // The stream opens with the current state, so a client never waits for the next change.
      const first = view.status === 'sold_out' ? 'sold_out' : view.status === 'ended' ? 'ended' : view.status === 'admitted' ? 'admitted' : 'position';
      res.write(`retry: 2000\n${sseMessage(first, view)}`);
      if (first === 'ended') {
        res.end();
        return;
      }
      // A stream that ends by itself (the client went away, the node is closing) is dropped by the hub.
      app.streams.add({
        saleId: sale.id,
        userId: ticket.userId,
        place,
        shadow: ticket.shadow,
        res,
        ip: req.ip,
        admitted: view.status !== 'waiting',
        resolvePlace: place === 0 && !ticket.shadow ? () => app.queue.placeOf(ticket) : undefined,
      });
    },
  );
};
