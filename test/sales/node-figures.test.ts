/**
 * The admin's live counters of a sale — requests per second, refusals, event streams — are summed
 * over every node on the same Redis: behind a balancer each node sees only its share, and the
 * dashboard showed whichever node answered. A node that stops writing ages out of the sum.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RedisEngine } from '../../src/engine/redis/redis-engine.js';
import { adminHeaders, createSale, describeStacks, twoNodes, type Stack } from '../support/stack.js';

describeStacks('live counters across nodes', (kind) => {
  let a: Stack;
  let b: Stack;
  let nodes: Awaited<ReturnType<typeof twoNodes>>;

  beforeAll(async () => {
    nodes = await twoNodes(kind);
    if (nodes) ({ a, b } = nodes);
  });

  afterAll(() => nodes?.close());

  const stats = async (node: Stack, saleId: string) =>
    (await node.app.inject({ method: 'GET', url: `/api/admin/flash-sales/${saleId}/stats`, headers: adminHeaders })).json();

  it(
    kind === 'embedded' ? 'one node: its own figures' : 'every node on the Redis: the sum, and how many nodes it covers',
    async (ctx) => {
      if (!a) return ctx.skip();
      const sale = await createSale(a);
      // Refusals counted on each node: 3 on A, 5 on B.
      for (let i = 0; i < 3; i++) a.runtime.traffic.record(sale.id, 'SOLD_OUT');
      for (let i = 0; i < 5; i++) b.runtime.traffic.record(sale.id, 'SOLD_OUT');
      b.runtime.traffic.record(sale.id, 'RATE_LIMITED');
      await Promise.all([a.runtime.figures.publish(), b.runtime.figures.publish()]);

      const fromA = await stats(a, sale.id);
      const fromB = await stats(b, sale.id);
      if (kind === 'embedded') {
        // The embedded engine is one process's: the peer shares its engine object, not a Redis, so each counts alone.
        expect([fromA.nodes_reporting, fromA.rejections]).toEqual([1, { SOLD_OUT: 3 }]);
        return;
      }
      for (const s of [fromA, fromB]) expect([s.nodes_reporting, s.rejections]).toEqual([2, { SOLD_OUT: 8, RATE_LIMITED: 1 }]);
      // The figures expire on their own (10 s after the last write): nothing to clean up after a node.
      const key = `${a.runtime.config.redisPrefix}:{sale:${sale.id}}:nodes`;
      const redis = (a.engine as RedisEngine).client;
      expect(await redis.hlen(key)).toBe(2);
      expect(await redis.pttl(key)).toBeGreaterThan(0);

      // B stops (its figures are no longer written): after 5 s they no longer count.
      b.runtime.figures.stop();
      await new Promise((r) => setTimeout(r, 5200));
      expect((await stats(a, sale.id)).nodes_reporting).toBe(1);
      expect((await stats(a, sale.id)).rejections).toEqual({ SOLD_OUT: 3 });
    },
    30_000,
  );
});
