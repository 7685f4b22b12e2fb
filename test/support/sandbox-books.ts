/**
 * The sandbox gateway on each of its books: in this process's memory, and in Redis (a key prefix
 * of the suite's own, `stampede-test-<random>`, whose keys are deleted after). Suites call
 * `describeBooks` to run the same tests on both; without a reachable Redis the Redis half is
 * skipped loudly on a developer machine and fails in CI.
 */
import { afterAll, beforeAll, beforeEach, describe } from 'vitest';
import { RedisSandboxBook } from '../../src/payments/redis-sandbox-book.js';
import { SandboxGateway, type SandboxGatewayOptions } from '../../src/payments/sandbox-gateway.js';
import { redisTestEngine, type RedisTestEngine } from './redis.js';

export type BookKind = 'memory' | 'redis';
/** Both books; `npm run test:unit` (STAMPEDE_TEST_SERVICES=none) runs the one in memory only. */
export const BOOKS: BookKind[] = process.env.STAMPEDE_TEST_SERVICES === 'none' ? ['memory'] : ['memory', 'redis'];

export interface Books {
  kind: BookKind;
  /** A sandbox on a new, empty book of this kind (on Redis: a prefix of its own under the suite's). */
  gateway(opts?: SandboxGatewayOptions): SandboxGateway;
}

/** Runs `fn` as a describe block per book. */
export function describeBooks(title: string, fn: (books: Books) => void) {
  for (const kind of BOOKS) {
    describe(`${title} [${kind} book]`, () => {
      let redis: RedisTestEngine | null = null;
      let n = 0;
      if (kind === 'redis') {
        beforeAll(async () => {
          redis = await redisTestEngine();
        });
        beforeEach((ctx) => {
          if (!redis) ctx.skip();
        });
        afterAll(async () => {
          await redis?.cleanup();
        });
      }
      fn({
        kind,
        gateway: (opts = {}) =>
          new SandboxGateway({ ...opts, book: kind === 'redis' ? new RedisSandboxBook(redis!.redis, { prefix: `${redis!.prefix}:${++n}` }) : undefined }),
      });
    });
  }
}
