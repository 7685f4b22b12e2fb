/**
 * REDIS_CLUSTER_NODES with credentials: a user and password in the node URLs reach every node of
 * the local cluster (the client learns the other nodes from the seed and opens them with the same
 * credentials); a wrong password is refused, not ignored; `rediss://` asks for TLS on every node.
 * The user is made for the test on each master (ACL SETUSER) and removed afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createRedis, untilReady } from '../../src/engine/redis/redis-engine.js';
import { testClusterNodes } from '../support/redis.js';

const nodes = process.env.STAMPEDE_TEST_SERVICES === 'none' ? null : testClusterNodes();
if (!nodes && process.env.CI && process.env.STAMPEDE_TEST_SERVICES !== 'none') throw new Error('TEST_REDIS_CLUSTER_NODES is required in CI');

describe.skipIf(!nodes)('Redis Cluster with a user and password', () => {
  const user = `stampede-test-${randomBytes(4).toString('hex')}`;
  // Characters a URL must escape, to prove they are decoded before they reach AUTH.
  const password = `p@ss/${randomBytes(8).toString('hex')}:#`;
  const masters: Redis[] = [];
  const withUser = (pass: string) => nodes!.map((node) => `redis://${user}:${encodeURIComponent(pass)}@${node}`);

  beforeAll(async () => {
    for (const node of nodes!) {
      const [host, port] = node.split(':');
      const redis = new Redis({ host, port: Number(port), maxRetriesPerRequest: 1 });
      masters.push(redis);
      await redis.call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all');
    }
  });

  afterAll(async () => {
    for (const redis of masters) {
      await redis.call('ACL', 'DELUSER', user).catch(() => {});
      redis.disconnect();
    }
  });

  it('the configuration takes the URLs, and every node the client opens is logged in as that user', async () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: withUser(password).join(',') });
    const client = createRedis({ clusterNodes: config.redisClusterNodes }) as Cluster;
    try {
      await untilReady(client, 5000);
      // Keys in every slot range, so every master is used.
      const key = (i: number) => `stampede-test-access:{${user}-${i}}`;
      for (let i = 0; i < 30; i++) await client.set(key(i), 'x', 'EX', 60);
      const opened = client.nodes('master');
      expect(opened).toHaveLength(nodes!.length);
      for (const node of opened) expect(await node.call('ACL', 'WHOAMI')).toBe(user);
      for (let i = 0; i < 30; i++) await client.del(key(i));
    } finally {
      client.disconnect();
    }
  });

  it('a wrong password is refused (the node does not fall back to the default user)', async () => {
    const client = createRedis({ clusterNodes: withUser('wrong-password') });
    try {
      // The same URLs as the test above but for the password: never ready (ioredis reports it as
      // "Failed to refresh slots cache", each node having answered WRONGPASS).
      await expect(untilReady(client, 2000)).rejects.toThrow(/not ready within 2000 ms/);
    } finally {
      client.disconnect();
    }
  });
});

describe('REDIS_CLUSTER_NODES URLs', () => {
  it('rediss:// asks every node for TLS, with the credentials decoded', () => {
    const client = createRedis({ clusterNodes: ['rediss://app:s%40cret@127.0.0.1:1', 'rediss://app:s%40cret@127.0.0.1:2'] }) as Cluster;
    try {
      expect(client.options.redisOptions).toMatchObject({ tls: {}, username: 'app', password: 's@cret' });
    } finally {
      client.disconnect();
    }
  });

  it('entries that disagree on scheme or credentials are refused, and the message hides the password', () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis://a:1@h1:7000,rediss://a:1@h2:7000' })).toThrow(/share one scheme .* one user and password/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis://a:1@h1:7000,redis://a:2@h2:7000' })).toThrow(/share one scheme/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'h1:7000,redis://a:2@h2:7000' })).toThrow(/share one scheme/);
    let message = '';
    try {
      loadConfig({ REDIS_CLUSTER_NODES: 'redis://app:topsecret@h1' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/REDIS_CLUSTER_NODES must be host:port or redis\[s\]:\/\/\[user:password@\]host:port/);
    expect(message).toContain('redis://app:***@h1');
    expect(message).not.toContain('topsecret');
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'rediss://app:pw@h1:7000,rediss://app:pw@h2:7000' }).redisClusterNodes).toHaveLength(2);
  });
});
