/** The admin's routes on one order: a full refund of its capture. Registered under /api/admin. */
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { OrderResponse, errors } from './schemas.js';

const OrderParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export const orderAdminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Checked by app.ts's route guard before anything of the route runs, whatever spelling reached it.
  const config = { access: 'admin' } as const;

  app.post(
    '/orders/:id/refund',
    {
      config,
      schema: {
        tags: ['admin'],
        security: [{ admin: [] }],
        summary:
          "Refund a confirmed or lapsed order's capture in full; its status stays. Asked again, answers the same refund. 409 NOTHING_TO_REFUND when no money is held",
        params: OrderParams,
        response: { 200: OrderResponse, ...errors(401, 404, 409, 503) },
      },
    },
    async (req) => app.checkout.refund(req.params.id),
  );
};
