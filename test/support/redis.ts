/**
 * A Redis engine for tests: a real Redis (`TEST_REDIS_URL`, default the local one), a unique key
 * prefix per call, and a cleanup that deletes every key under it. Without a reachable Redis it
 * answers null (callers skip) — except in CI, where Redis is required and its absence fails.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { REDIS_CLIENT_OPTIONS, RedisEngine, deleteKeys } from '../../src/engine/redis/redis-engine.js';

export interface RedisTestEngine {
  engine: RedisEngine;
  redis: Redis;
  prefix: string;
  cleanup(): Promise<void>;
}

export async function redisTestEngine(): Promise<RedisTestEngine | null> {
  // `npm run test:unit`: no services at all, so the Redis parts skip.
  if (process.env.STAMPEDE_TEST_SERVICES === 'none') return null;
  const url = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(url, {
    ...REDIS_CLIENT_OPTIONS,
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 2,
    retryStrategy: (attempt) => (attempt > 5 ? null : 100 * attempt),
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    const reason = `Redis is not reachable at ${url}: ${(err as Error).message}`;
    if (process.env.CI) throw new Error(`${reason} (Redis is required in CI)`);
    console.warn(`\n!!! SKIPPING REDIS ENGINE TESTS — ${reason}\n!!! Start one (redis-server) or set TEST_REDIS_URL.\n`);
    return null;
  }
  const prefix = `stampede-test-${randomBytes(6).toString('hex')}`;
  const engine = new RedisEngine(redis, { prefix });
  return {
    engine,
    redis,
    prefix,
    async cleanup() {
      // The engine's keys, and the rate limits a node keeps under `dev:<prefix>` outside production.
      await deleteKeys(redis, `${prefix}*`, `dev:${prefix}*`);
      await engine.close();
      await redis.quit();
    },
  };
}
