/**
 * Pacing toward the card network is one budget for every node (on Redis): two nodes' buckets on
 * one key together keep to the processor's rate, where two buckets of their own would send twice
 * it. A wait longer than allowed is refused without reserving a slot, and with Redis gone a node
 * paces on its own rather than hold the card network up. On Redis and on the Redis Cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '../../src/engine/redis/redis-engine.js';
import { GatewayUnavailableError } from '../../src/payments/gateway.js';
import { SharedBucket } from '../../src/payments/shared-pacing.js';
import { redisTestEngine, type RedisTestEngine } from '../support/redis.js';

for (const cluster of [false, true]) {
  describe(`shared payment pacing [${cluster ? 'redis cluster' : 'redis'}]`, () => {
    let a: RedisTestEngine | null = null;
    let b: RedisTestEngine | null = null;
    let n = 0;

    beforeAll(async () => {
      a = await redisTestEngine({ cluster });
      b = a && (await redisTestEngine({ cluster }));
    });

    afterAll(async () => {
      // b's keys are under a's prefix (the one key both nodes share).
      await b?.cleanup();
      await a?.cleanup();
    });

    const bucketsOnOneKey = (ratePerSec: number, burst: number, maxWaitMs?: number) => {
      const key = `${a!.prefix}:pace:test:${++n}`;
      // Two nodes: each its own connection, one key.
      return [a!, b!].map((node) => new SharedBucket({ client: node.redis, key, ratePerSec, burst, maxWaitMs }));
    };

    it('two nodes together keep to the rate: 30 calls at 20/s with a burst of 2 take 1.4 s or more, not half that', async (ctx) => {
      if (!a || !b) return ctx.skip();
      const [one, two] = bucketsOnOneKey(20, 2);
      const started = performance.now();
      const done: number[] = [];
      await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? one : two).take().then(() => done.push(performance.now() - started))));
      // Two buckets of their own would let 2 + 2 go at once and each 20 a second more: ~0.65 s.
      // One budget lets 2 go at once and 28 more at 20 a second: 1.4 s at least (a slow machine only adds).
      expect(Math.max(...done)).toBeGreaterThanOrEqual(1350);
      expect(one.calls + two.calls).toBe(30);
      expect(one.waited + two.waited).toBeGreaterThanOrEqual(27);
    });

    it('a wait over the longest allowed is refused, and a refused call reserves no slot', async (ctx) => {
      if (!a || !b) return ctx.skip();
      const [one, two] = bucketsOnOneKey(10, 1, 250);
      // Slots at 0, 100, 200 ms are within 250 ms; whichever call reaches Redis fourth (300 ms) is not.
      const answers = await Promise.allSettled([one.take(), two.take(), one.take(), two.take()]);
      expect(answers.filter((x) => x.status === 'fulfilled')).toHaveLength(3);
      const refused = answers.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
      expect(refused).toHaveLength(1);
      expect(refused[0].reason).toBeInstanceOf(GatewayUnavailableError);
      expect(one.rejected + two.rejected).toBe(1);
      // Had the refused call reserved its slot, this one would wait 400 ms and be refused too.
      await new Promise((r) => setTimeout(r, 120));
      await expect(one.take()).resolves.toBeUndefined();
    });

    it('with Redis not answering, a node paces on its own bucket and says so once', async (ctx) => {
      if (!a) return ctx.skip();
      const dead = createRedis(cluster ? { clusterNodes: ['127.0.0.1:1'] } : { url: 'redis://127.0.0.1:1' });
      const warned: string[] = [];
      try {
        const bucket = new SharedBucket({
          client: dead,
          key: 'stampede-test-nowhere',
          ratePerSec: 1000,
          burst: 5,
          log: { warn: (_o, msg) => warned.push(msg) },
        });
        for (let i = 0; i < 5; i++) await bucket.take();
        expect(bucket.calls).toBe(5);
        expect(warned).toHaveLength(1);
        expect(warned[0]).toMatch(/Redis is not answering/);
      } finally {
        dead.disconnect();
      }
    });
  });
}
