/** Public sale pages' data: the list, one sale, its inventory, and the proof-of-work challenge. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { saleJson } from '../sales/sale-schema.js';
import { SaleParams, SaleResponse, doc, errors } from './schemas.js';
import { Type } from 'typebox';

export const publicSaleRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { runtime } = app;
  const tags = ['shopper'];
  const config = { access: 'public' } as const;

  app.get(
    '/api/flash-sales',
    {
      config,
      schema: { tags, summary: 'Current and upcoming sales', response: { 200: doc(Type.Object({ sales: Type.Array(SaleResponse) })) } },
    },
    async (req, reply) => {
      app.defence.local.spend('ip', req.ip);
      const now = runtime.clock.now();
      const sales = (await app.sales.list()).filter((s) => s.endsAt.getTime() > now - 3_600_000);
      reply.header('cache-control', 'public, max-age=1');
      return {
        sales: sales.map((s) => {
          const live = runtime.monitor.get(s.id);
          return saleJson(s, live?.status ?? (s.cancelledAt ? 'cancelled' : 'scheduled'), runtime.clock.now(s.id), live?.snapshot.remaining ?? null);
        }),
      };
    },
  );

  app.get(
    '/api/flash-sales/:id',
    {
      config,
      schema: { tags, summary: 'One sale: items, prices, remaining, server time', params: SaleParams, response: { 200: SaleResponse, ...errors(404) } },
    },
    async (req, reply) => {
      app.defence.local.spend('ip', req.ip);
      const sale = await app.sales.get(req.params.id);
      const live = await app.queue.live(sale.id);
      reply.header('cache-control', 'public, max-age=1');
      const body = saleJson(sale, live.status, runtime.clock.now(sale.id), live.snapshot.remaining);
      // The last picture, while the engine or the ledger is not answering (SPEC §6).
      return live.stale || app.sales.stale(sale.id) ? { ...body, stale: true } : body;
    },
  );

  app.get(
    '/api/flash-sales/:id/inventory',
    {
      config,
      schema: {
        tags,
        summary: 'Remaining units per item (from a cache at most ~1 s old)',
        params: SaleParams,
        response: {
          200: doc(
            Type.Object({
              items: Type.Array(Type.Object({ sku: Type.String(), remaining: Type.Integer() })),
              sold_out: Type.Boolean(),
              sale_status: Type.String(),
              stale: Type.Optional(Type.Boolean({ description: 'Present while the engine is not answering: the last known figures' })),
            }),
          ),
          ...errors(404),
        },
      },
    },
    async (req, reply) => {
      app.defence.local.spend('ip', req.ip);
      const live = await app.queue.live(req.params.id);
      reply.header('cache-control', 'public, max-age=1');
      return {
        items: Object.entries(live.snapshot.remaining).map(([sku, remaining]) => ({ sku, remaining })),
        sold_out: live.status === 'sold_out',
        sale_status: live.status,
        ...(live.stale ? { stale: true } : {}),
      };
    },
  );

  app.get(
    '/api/flash-sales/:id/challenge',
    {
      config,
      schema: {
        tags,
        summary: 'A proof-of-work challenge (ALTCHA) for entering the queue; `{challenge: null}` when the sale asks for none',
        params: SaleParams,
        response: { ...errors(404, 429) },
      },
    },
    async (req, reply) => {
      app.defence.local.spend('ip', req.ip);
      const sale = await app.sales.get(req.params.id);
      reply.header('cache-control', 'no-store');
      const challenge = await app.defence.pow.challenge(sale.id, sale.botProtection.powDifficulty);
      return challenge ?? { challenge: null };
    },
  );
};
