/** Liveness, readiness, metrics, the OpenAPI document, the admission-pass keys and demo sessions. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { withDeadline } from '../async-limits.js';
import { StampedeError } from '../errors.js';

/** Each dependency's check gets this long, so `/readyz` answers within a second whatever they do (SPEC §6). */
export const READINESS_CHECK_MS = 800;

/** `ping`, failing once `ms` have passed without an answer. */
const within = (ping: () => Promise<void>, ms: number) => withDeadline(ping(), ms, () => new Error(`no answer within ${ms} ms`));

export const systemRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { runtime } = app;
  const pub = { access: 'public' } as const;
  const hidden = { config: pub, schema: { hide: true } };

  app.get('/healthz', hidden, async () => ({ status: 'ok' }));

  app.get('/readyz', hidden, async (_req, reply) => {
    // Shutting down: tell the balancer at once, without asking the dependencies.
    if (runtime.draining) return reply.code(503).send({ status: 'draining', engine: app.engineHealth.kind, ledger: app.ledgerHealth.kind });
    const checks = await Promise.allSettled([within(app.engineHealth.ping, READINESS_CHECK_MS), within(app.ledgerHealth.ping, READINESS_CHECK_MS)]);
    const [engine, ledger] = checks.map((c) => (c.status === 'fulfilled' ? 'ok' : 'unreachable'));
    const ready = engine === 'ok' && ledger === 'ok';
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : 'not_ready', engine: `${app.engineHealth.kind}: ${engine}`, ledger: `${app.ledgerHealth.kind}: ${ledger}` });
  });

  app.get('/metrics', { config: { access: 'metrics' }, schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', runtime.metrics.registry.contentType);
    return runtime.metrics.registry.metrics();
  });

  app.get('/docs/openapi.json', hidden, async () => app.swagger());

  app.get(
    '/.well-known/jwks.json',
    {
      config: pub,
      schema: { tags: ['queue'], summary: 'Public keys that verify admission passes (ES256 JWTs)' },
    },
    async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=3600');
      return runtime.passes.jwks();
    },
  );

  app.post(
    '/api/session',
    {
      config: pub,
      schema: { tags: ['shopper'], summary: 'A guest user token (demo mode only; a real shop issues its own JWTs)' },
    },
    async (req, reply) => {
      if (!runtime.config.demo) throw new StampedeError('DEMO_DISABLED');
      app.defence.local.spend('ip', req.ip);
      const { token, sub } = await runtime.auth.issue();
      return reply.code(201).send({ token, user_id: sub, token_type: 'Bearer' });
    },
  );
};
