/**
 * Builds the Fastify app from a runtime: one error shape, request ids, metrics, the OpenAPI
 * document, then the routes. It opens no port, so tests build it and call `app.inject()`.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ErrorCatalogue, StampedeError, quietDuringOutages, unavailableError } from './errors.js';
import type { Runtime } from './runtime.js';
import { adminRoutes } from './http/admin-routes.js';
import { orderAdminRoutes } from './http/order-admin-routes.js';
import { publicSaleRoutes } from './http/sale-routes.js';
import { queueRoutes } from './http/queue-routes.js';
import { checkoutRoutes } from './http/checkout-routes.js';
import { systemRoutes } from './http/system-routes.js';
import { webRoutes } from './web/web-routes.js';
import { guardRoutes } from './http/access.js';
import './http/fastify-decorations.js';
import { enginePlugin } from './engine/engine-plugin.js';
import { ledgerPlugin } from './ledger/ledger-plugin.js';
import { defencePlugin } from './defence/defence-plugin.js';
import { salesPlugin } from './sales/sales-plugin.js';
import { queuePlugin } from './queue/queue-plugin.js';
import { paymentsPlugin } from './payments/payments-plugin.js';
import { checkoutPlugin } from './checkout/checkout-plugin.js';
import { accessLogSerializers } from './http/log-redaction.js';

/** The refusal code of a request, for the per-sale traffic counters. */
const rejections = new WeakMap<object, string>();

export type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>;

/**
 * Fastify's `trustProxy` for the configured proxies. A hop count trusts the socket's peer and the
 * hops-1 addresses it forwarded for, no more: what a client writes further left is ignored.
 */
function trustProxyOption(trust: Runtime['config']['trustProxy']): false | string[] | ((addr: string, hop: number) => boolean) {
  if (typeof trust === 'number') return trust > 0 ? (_addr, hop) => hop < trust : false;
  return trust;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** An answer slower than this is logged at info (SPEC §6: every request answered within 2 s). */
const SLOW_MS = 2000;

export async function buildApp(runtime: Runtime, opts: { logger?: FastifyBaseLogger } = {}): Promise<App> {
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger.child({}, { serializers: accessLogSerializers }) } : { logger: false }),
    trustProxy: trustProxyOption(runtime.config.trustProxy),
    genReqId: (req) =>
      typeof req.headers['x-request-id'] === 'string' && req.headers['x-request-id'].length <= 64 ? req.headers['x-request-id'] : randomUUID(),
    bodyLimit: 64 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    return503OnClosing: true,
    forceCloseConnections: false,
    // Fastify's two lines per request (received, completed) cost a drop 47 MB of log in 10 s at
    // 10,000 req/s: one line per response is written below instead, and only when it says something.
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('runtime', runtime);
  // Before any route: every route declares who may call it, and admin/metrics are checked by the route.
  app.decorate('routeTable', guardRoutes(app, runtime.auth));

  // Plain callback hooks: an async hook costs a promise and a tick on every request.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    done();
  });
  const durations = new Map<string, ReturnType<typeof runtime.metrics.httpDuration.labels>>();
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const labels = `${req.method} ${route} ${reply.statusCode}`;
    let child = durations.get(labels);
    if (!child) durations.set(labels, (child = runtime.metrics.httpDuration.labels({ method: req.method, route, status: String(reply.statusCode) })));
    child.observe(reply.elapsedTime / 1000);
    accessLog(req, reply);
    const saleId = (req.params as { id?: string } | undefined)?.id;
    // Only sales this node watches: a made-up id must not grow the counters.
    if (saleId && route.startsWith('/api/flash-sales/') && runtime.monitor.get(saleId)) runtime.traffic.record(saleId, rejections.get(req));
    done();
  });

  // One access line per response: every one at debug; at info only answers slower than the 2 s
  // SPEC §6 allows. Errors are logged where they happen (a 500 with its stack, an outage once);
  // refusals are counted in /metrics (stampede_rejections_total), not logged one by one.
  const debugAccess = app.log.level === 'debug' || app.log.level === 'trace';
  function accessLog(req: FastifyRequest, reply: FastifyReply) {
    const ms = reply.elapsedTime;
    if (!debugAccess && ms < SLOW_MS) return;
    const line = { req, res: { statusCode: reply.statusCode }, responseTime: Math.round(ms) };
    if (ms >= SLOW_MS) req.log.info(line, 'slow request');
    else req.log.debug(line, 'request completed');
  }

  // prom-client hashes a label object on every call; refusals are most of a drop's traffic.
  const refusals = new Map<string, ReturnType<typeof runtime.metrics.rejections.labels>>();
  // A dependency that is down fails every request that needs it: said once at warn, not as a 500 each.
  const outageLog = quietDuringOutages(app.log);
  app.setErrorHandler((err: any, req, reply) => {
    const unavailable = err instanceof StampedeError ? null : unavailableError(err);
    if (unavailable) {
      outageLog.warn({ err, route: req.routeOptions.url }, 'a dependency is unavailable: answering 503 UNAVAILABLE');
      err = unavailable;
    }
    if (err instanceof StampedeError) {
      if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
      const sale = (req.params as { id?: string } | undefined)?.id;
      // Only sales this node watches: refusals on made-up ids must not grow the label set.
      if (sale && err.status !== 404 && runtime.monitor.get(sale)) {
        const key = `${sale} ${err.code}`;
        let counter = refusals.get(key);
        if (!counter) refusals.set(key, (counter = runtime.metrics.rejections.labels({ sale, code: err.code })));
        counter.inc();
        rejections.set(req, err.code);
      }
      // Written as a string: refusals are most of a drop's answers, and their shape is fixed.
      return reply.code(err.status).header('content-type', JSON_TYPE).send(err.json());
    }
    if (err.validation) {
      const first = err.validation[0];
      // Name the field itself, also when it is missing or should not be there at all.
      const params = (first?.params ?? {}) as { missingProperty?: string; additionalProperty?: string };
      const leaf = params.missingProperty ?? params.additionalProperty;
      const field = `${err.validationContext ?? 'body'}${first?.instancePath ?? ''}${leaf ? `/${leaf}` : ''}`;
      const message = `${field} ${first?.message ?? 'is not valid'}`;
      return reply.code(400).send({ error: { code: 'VALIDATION_FAILED', message, field } });
    }
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status < 500) {
      const code = status === 404 ? 'NOT_FOUND' : status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'VALIDATION_FAILED';
      return reply.code(status).send({ error: { code, message: String(err.message ?? 'Bad request') } });
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: { code: 'INTERNAL', message: `${ErrorCatalogue.INTERNAL.message} (request ${req.id})` } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `No route ${req.method} ${req.url.split('?')[0]}` } });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Stampede',
        version: '0.1.0',
        description: 'Flash-sale engine: waiting room, checkout and payments. Errors are `{error: {code, message}}`; see docs/errors.md.',
      },
      components: {
        securitySchemes: {
          user: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: "A user token from the shop's login (or POST /api/session in demo mode)" },
          admin: { type: 'http', scheme: 'bearer', description: 'STAMPEDE_ADMIN_TOKEN' },
        },
      },
    },
  });

  // The tiers, each decorating its one service and running its loops while the app is up.
  for (const tier of [enginePlugin, ledgerPlugin, defencePlugin, salesPlugin, queuePlugin, paymentsPlugin, checkoutPlugin]) {
    await app.register(tier, { runtime });
  }

  await app.register(systemRoutes);
  await app.register(adminRoutes, { prefix: '/api/admin' });
  await app.register(orderAdminRoutes, { prefix: '/api/admin' });
  await app.register(publicSaleRoutes);
  await app.register(queueRoutes);
  await app.register(checkoutRoutes);
  await app.register(webRoutes);
  return app;
}
