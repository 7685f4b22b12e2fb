/**
 * A Redis engine for tests: a real Redis (`TEST_REDIS_URL`, default the local one) or, with
 * `cluster`, the local Redis Cluster (`TEST_REDIS_CLUSTER_NODES`, started by `.ci/run` or by the
 * suite's global setup with scripts/redis-cluster.sh), a unique key prefix per call, and a
 * cleanup that deletes every key under it. Without a reachable Redis it answers null (callers
 * skip) — except in CI, where Redis and the cluster are required and their absence fails.
 */
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { REDIS_CLIENT_OPTIONS, RedisEngine, createRedis, deleteKeys, untilReady } from '../../src/engine/redis/redis-engine.js';

export interface RedisTestEngine {
  engine: RedisEngine;
  redis: Redis | Cluster;
  prefix: string;
  cleanup(): Promise<void>;
}

/** The local cluster's nodes (`host:port,...`), or null when none was started. */
export function testClusterNodes(): string[] | null {
  const nodes = process.env.TEST_REDIS_CLUSTER_NODES;
  return nodes ? nodes.split(',').filter(Boolean) : null;
}

export async function redisTestEngine(opts: { cluster?: boolean } = {}): Promise<RedisTestEngine | null> {
  // `npm run test:unit`: no services at all, so the Redis parts skip.
  if (process.env.STAMPEDE_TEST_SERVICES === 'none') return null;
  const redis = opts.cluster ? await connectCluster() : await connectSingle();
  if (!redis) return null;
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

async function connectSingle(): Promise<Redis | null> {
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
    return redis;
  } catch (err) {
    redis.disconnect();
    return unreachable(`Redis is not reachable at ${url}: ${(err as Error).message}`, 'Start one (redis-server) or set TEST_REDIS_URL.');
  }
}

async function connectCluster(): Promise<Cluster | null> {
  const nodes = testClusterNodes();
  if (!nodes) return unreachable('no Redis Cluster: TEST_REDIS_CLUSTER_NODES is not set', 'Run scripts/redis-cluster.sh start and set it to what it prints.');
  const cluster = createRedis({ clusterNodes: nodes }) as Cluster;
  try {
    await untilReady(cluster, 5000);
    return cluster;
  } catch (err) {
    cluster.disconnect();
    return unreachable(`the Redis Cluster at ${nodes.join(',')} is not reachable: ${(err as Error).message}`, 'Run scripts/redis-cluster.sh start.');
  }
}

function unreachable(reason: string, hint: string): null {
  if (process.env.CI) throw new Error(`${reason} (required in CI)`);
  console.warn(`\n!!! SKIPPING REDIS TESTS — ${reason}\n!!! ${hint}\n`);
  return null;
}
