/**
 * The baseline: a bare Fastify app that answers the benchmarked routes with constants. It gets
 * the same requests (method, path, headers, JSON body, which Fastify parses as usual) and sends
 * a reply of the same status and size as Stampede's, so the ratio of the two measures what
 * Stampede's own work costs above what this framework and this load generator allow here.
 *
 * Routes come from BENCH_BASELINE_ROUTES: [{method, url, replies: {<sale id>: {status, body}}}]
 * (url in Fastify's `:id` form); the reply is picked by the sale id in the path, as Stampede's is.
 */
import Fastify from 'fastify';

interface Route {
  method: 'GET' | 'POST';
  url: string;
  replies: Record<string, { status: number; body: string }>;
}

const routes: Route[] = JSON.parse(process.env.BENCH_BASELINE_ROUTES ?? '[]');
const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
app.get('/healthz', async () => ({ status: 'ok' }));
for (const r of routes) {
  app.route({
    method: r.method,
    url: r.url,
    handler: (req, reply) => {
      const answer = r.replies[(req.params as { id: string }).id] ?? { status: 404, body: '{"error":{"code":"SALE_NOT_FOUND","message":"No such sale"}}' };
      reply.code(answer.status).header('content-type', 'application/json; charset=utf-8').send(answer.body);
    },
  });
}
await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' });
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    void app.close().then(() => process.exit(0));
  });
