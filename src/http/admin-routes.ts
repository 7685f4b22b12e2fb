/** The admin API: create, read, change and cancel sales; live stats; the orders of a sale. */
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CreateSaleBody, PatchSaleBody, saleJson } from '../sales/sale-schema.js';
import { orderView } from '../checkout/checkout-service.js';
import { driftJson } from '../checkout/drift-check.js';
import { ErrorBody, SaleParams, SaleResponse, errors } from './schemas.js';
import type { Sale } from '../ledger/ledger.js';

export const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { runtime } = app;
  const tags = ['admin'];
  const security = [{ admin: [] }];
  // Registered under /api/admin; each route declares admin access, which app.ts's route guard
  // checks before anything of the route runs, whatever spelling of the path reached it.
  const config = { access: 'admin' } as const;

  const render = async (sale: Sale) => {
    const live = await runtime.monitor.watch(sale.id);
    return saleJson(sale, runtime.monitor.get(sale.id)?.status ?? 'scheduled', runtime.clock.now(sale.id), live?.snapshot.remaining ?? null, true);
  };

  app.post(
    '/flash-sales',
    {
      config,
      schema: { tags, security, summary: 'Create a sale', body: CreateSaleBody, response: { 201: SaleResponse, ...errors(400, 401, 422) } },
    },
    async (req, reply) => reply.code(201).send(await render(await app.sales.create(req.body))),
  );

  app.get(
    '/flash-sales',
    {
      config,
      schema: { tags, security, summary: 'Every sale, by start time' },
    },
    async () => {
      const sales = await app.sales.list();
      return { sales: await Promise.all(sales.map(render)) };
    },
  );

  app.get(
    '/flash-sales/:id',
    {
      config,
      schema: { tags, security, summary: 'A sale with sold and held units', params: SaleParams, response: { 200: SaleResponse, ...errors(401, 404) } },
    },
    async (req) => render(await app.sales.fresh(req.params.id)),
  );

  app.patch(
    '/flash-sales/:id',
    {
      config,
      schema: {
        tags,
        security,
        summary: 'Change a sale before it starts',
        params: SaleParams,
        body: PatchSaleBody,
        response: { 200: SaleResponse, ...errors(400, 401, 404, 409, 422) },
      },
    },
    async (req) => {
      const sale = await app.sales.patch(req.params.id, req.body);
      await runtime.monitor.refresh(sale.id);
      return render(sale);
    },
  );

  app.post(
    '/flash-sales/:id/cancel',
    {
      config,
      schema: {
        tags,
        security,
        summary: 'Cancel a sale: every hold released, every authorisation voided',
        params: SaleParams,
        response: { 200: SaleResponse, ...errors(401, 404) },
      },
    },
    async (req) => render(await app.sales.cancel(req.params.id)),
  );

  app.post(
    '/flash-sales/:id/reconcile',
    {
      config,
      schema: {
        tags,
        security,
        summary: "Compare the sale's engine state with the ledger; with fix, repair the engine",
        description:
          "What a drift check found: per SKU, the ledger's sold and held units beside the engine's stock, held and sold; holds settled to match the ledger, restored or left to the hold sweeper; per-user counts. Without `fix` nothing changes. The same check runs on a timer (STAMPEDE_DRIFT_CHECK_SEC) and as `npx stampede reconcile`.",
        params: SaleParams,
        body: Type.Optional(Type.Object({ fix: Type.Optional(Type.Boolean({ default: false })) }, { additionalProperties: false })),
        response: { ...errors(400, 401, 404, 409) },
      },
    },
    async (req) => driftJson(await runtime.driftCheck.check(req.params.id, { fix: req.body?.fix ?? false })),
  );

  app.get(
    '/flash-sales/:id/stats',
    {
      config,
      schema: { tags, security, summary: 'Live counters of a sale', params: SaleParams, response: { 404: ErrorBody } },
    },
    async (req) => app.saleStats.read(req.params.id),
  );

  app.get(
    '/flash-sales/:id/orders',
    {
      config,
      schema: {
        tags,
        security,
        summary: 'Orders of a sale, oldest first',
        params: SaleParams,
        querystring: Type.Object({
          status: Type.Optional(Type.Union(['reserved', 'confirmed', 'expired', 'cancelled', 'failed'].map((s) => Type.Literal(s)))),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        }),
      },
    },
    async (req) => {
      await app.sales.get(req.params.id);
      const orders = await app.checkout.list(req.params.id, { status: req.query.status as never, limit: req.query.limit ?? 200 });
      return { orders: orders.map((o) => ({ ...orderView(o), user_id: o.userId })) };
    },
  );
};
