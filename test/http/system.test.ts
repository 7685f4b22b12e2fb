/**
 * What operators rely on: request ids, liveness and readiness (that fails when the ledger is
 * gone), Prometheus metrics that made-up sale ids cannot inflate, and the OpenAPI document.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminHeaders, createSale, describeStacks, openStack, type Stack } from '../support/stack.js';

describeStacks('system routes', (kind) => {
  let stack: Stack | null;
  beforeAll(async () => {
    stack = await openStack(kind);
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("every answer carries a request id: the caller's own when sane, a fresh one otherwise", async (ctx) => {
    if (!stack) return ctx.skip();
    const fresh = await stack.app.inject({ url: '/healthz' });
    expect(fresh.statusCode).toBe(200);
    expect(fresh.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect((await stack.app.inject({ url: '/healthz' })).headers['x-request-id']).not.toBe(fresh.headers['x-request-id']);
    expect((await stack.app.inject({ url: '/healthz', headers: { 'x-request-id': 'edge-42' } })).headers['x-request-id']).toBe('edge-42');
    expect((await stack.app.inject({ url: '/healthz', headers: { 'x-request-id': 'x'.repeat(65) } })).headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    // Refusals and unknown routes too.
    const missing = await stack.app.inject({ url: '/nowhere', headers: { 'x-request-id': 'lost-1' } });
    expect([missing.statusCode, missing.headers['x-request-id'], missing.json().error.code]).toEqual([404, 'lost-1', 'NOT_FOUND']);
  });

  it('readyz asks the engine and the ledger', async (ctx) => {
    if (!stack) return ctx.skip();
    const res = await stack.app.inject({ url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', engine: `${stack.engine.kind}: ok`, ledger: `${stack.ledger.kind}: ok` });
  });

  it('readyz answers 503 naming the ledger once the ledger is gone', async (ctx) => {
    const doomed = await openStack(kind);
    if (!doomed) return ctx.skip();
    try {
      await doomed.ledger.close();
      const res = await doomed.app.inject({ url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ status: 'not_ready', ledger: `${doomed.ledger.kind}: unreachable`, engine: `${doomed.engine.kind}: ok` });
    } finally {
      await doomed.close().catch(() => {});
    }
  });

  it('metrics count requests per route template; made-up sale ids add no series and no counters', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s);
    for (let i = 0; i < 3; i++)
      expect((await s.app.inject({ url: `/api/flash-sales/${sale.id}/status?ticket=forged.x` })).json().error.code).toBe('TICKET_INVALID');
    const madeUp = Array.from({ length: 200 }, () => randomUUID());
    await Promise.all(
      madeUp.map((id) =>
        s.app.inject({ method: 'POST', url: `/api/flash-sales/${id}/purchase`, headers: { 'idempotency-key': 'k' }, payload: { ticket: 't', sku: 'x' } }),
      ),
    );

    const res = await s.app.inject({ url: '/metrics', headers: adminHeaders });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    const text = res.body;
    const count = (route: string, status: number) =>
      Number(
        new RegExp(
          `stampede_http_request_duration_seconds_count\\{method="[A-Z]+",route="${route.replace(/[/:]/g, (c) => `\\${c}`)}",status="${status}"\\} (\\d+)`,
        ).exec(text)?.[1] ?? 0,
      );
    expect(count('/api/flash-sales/:id/status', 401)).toBeGreaterThanOrEqual(3);
    expect(count('/api/flash-sales/:id/purchase', 401)).toBe(200);
    expect(text).toContain(`stampede_rejections_total{sale="${sale.id}",code="TICKET_INVALID"}`);
    expect(text).toMatch(/stampede_ledger_call_duration_seconds_count\{op="createSale"\} \d+/);
    for (const id of madeUp.slice(0, 20)) expect(text).not.toContain(id);

    const stats = (await s.app.inject({ url: `/api/admin/flash-sales/${sale.id}/stats`, headers: adminHeaders })).json();
    expect(stats.rejections).toMatchObject({ TICKET_INVALID: 3 });
    expect((s.runtime.traffic as unknown as { sales: Map<string, unknown> }).sales.size).toBeLessThanOrEqual(1);
  });

  it('the OpenAPI document describes every public route, with the one error shape', async (ctx) => {
    if (!stack) return ctx.skip();
    const doc = (await stack.app.inject({ url: '/docs/openapi.json' })).json();
    expect(doc.openapi).toBe('3.1.0');
    const ops = Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, unknown> }>>).flatMap(([path, methods]) =>
      Object.entries(methods).map(([m, op]) => ({ key: `${m.toUpperCase()} ${path}`, op })),
    );
    const keys = ops.map((o) => o.key);
    for (const key of [
      'POST /api/admin/flash-sales',
      'GET /api/admin/flash-sales/{id}',
      'PATCH /api/admin/flash-sales/{id}',
      'GET /api/admin/flash-sales/{id}/stats',
      'GET /api/flash-sales/{id}',
      'POST /api/flash-sales/{id}/enter-queue',
      'GET /api/flash-sales/{id}/status',
      'POST /api/flash-sales/{id}/purchase',
      'POST /api/flash-sales/{id}/pre-auth',
      'GET /api/orders/{id}',
      'GET /.well-known/jwks.json',
    ])
      expect(keys).toContain(key);
    expect(keys.some((k) => k.includes('healthz') || k.includes('metrics'))).toBe(false);
    const purchase = ops.find((o) => o.key === 'POST /api/flash-sales/{id}/purchase')!.op;
    expect(Object.keys(purchase.responses)).toEqual(expect.arrayContaining(['201', '400', '401', '409', '429']));
    expect(JSON.stringify(purchase.responses['409'])).toContain('code');
  });
});
