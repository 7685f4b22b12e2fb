/**
 * Several nodes behind one port, for real: three Stampede nodes (the compiled build, production
 * mode, one set of secrets) behind HAProxy with round robin and nothing sticky, on the local
 * Redis Cluster (a fresh key prefix) and a throwaway PostgreSQL database, and a short rehearsal
 * through the balancer. Consecutive requests of one shopper land on different nodes, so every
 * invariant holding here is every node honouring what another issued and decided.
 * `npm run cluster` is the same deployment, by hand and at any size.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, untilReady } from '../../src/engine/redis/redis-engine.js';
import { Deployment } from '../../tools/deploy/deployment.js';
import { HAPROXY_MISSING, findHaproxy, requestsPerNode, type BalancerStats } from '../../tools/deploy/haproxy.js';
import { parseOptions, rehearse, type RehearsalRun } from '../../tools/rehearse.js';
import { TEST_DATABASE_URL, requirePostgres, withTempDatabase, type TempDatabase } from '../support/pg.js';
import { testClusterNodes } from '../support/redis.js';
import { expectEveryInvariantHeld } from '../support/rehearsal.js';

const SUITE = 'multi-node (HAProxy, 3 nodes)';
const NODES = 3;

/** Why the suite cannot run here (it skips, loudly; under CI it fails instead), or null. */
async function unavailable(): Promise<string | null> {
  if (!findHaproxy()) return HAPROXY_MISSING;
  const nodes = testClusterNodes();
  if (!nodes) return 'no Redis Cluster: TEST_REDIS_CLUSTER_NODES is not set (scripts/redis-cluster.sh start)';
  const client = createRedis({ clusterNodes: nodes });
  try {
    await untilReady(client, 5000);
  } catch (err) {
    return `the Redis Cluster at ${nodes.join(',')} is not reachable: ${(err as Error).message}`;
  } finally {
    client.disconnect();
  }
  return null;
}

/** Keys under `prefix` on every master of the cluster. */
async function keysUnder(nodes: string[], prefix: string): Promise<string[]> {
  const client = createRedis({ clusterNodes: nodes });
  try {
    await untilReady(client, 5000);
    const found: string[] = [];
    for (const master of (client as Cluster).nodes('master')) {
      let cursor = '0';
      do {
        const [next, keys] = await master.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        found.push(...keys);
        cursor = next;
      } while (cursor !== '0');
    }
    return found;
  } finally {
    client.disconnect();
  }
}

async function databaseExists(url: string): Promise<boolean> {
  const name = new URL(url).pathname.slice(1);
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  } finally {
    await client.end();
  }
}

let deployment: Deployment | null = null;
let db: TempDatabase | null = null;
let run: RehearsalRun;
let stats: BalancerStats;
const prefix = `stampede-test-multi-${randomBytes(6).toString('hex')}`;
const logDir = mkdtempSync(join(tmpdir(), 'stampede-multi-node-'));
const out = join(logDir, 'reports');
/** Tests that passed: the nodes' and HAProxy's logs are kept (and their place printed) unless all did. */
let passed = 0;

beforeAll(async () => {
  if (process.env.STAMPEDE_TEST_SERVICES === 'none') return;
  const why = await unavailable();
  if (why) {
    if (process.env.CI) throw new Error(`${SUITE}: ${why} (required in CI)`);
    console.warn(`\n!!! SKIPPING ${SUITE} — ${why}\n`);
    return;
  }
  if (!(await requirePostgres(SUITE))) return;
  db = await withTempDatabase();
  deployment = await Deployment.start({
    nodes: NODES,
    port: 0,
    redisCluster: testClusterNodes(),
    databaseUrl: db.url,
    prefix,
    logDir,
    // The simulated crowd comes from this machine's loopback addresses.
    ipLimit: false,
  });
  const opts = parseOptions(
    [
      ['--url', deployment.url],
      ['--admin-token', deployment.adminToken],
      ['--user-secret', deployment.userSecret],
      ['--users', '400'],
      ['--bots', '0.5'],
      ['--units', '40'],
      ['--start-in', '2s'],
      ['--arrival', '3s'],
      ['--settle', '15s'],
      // A run that hangs fails here rather than at the hook's timeout.
      ['--timeout', '40s'],
      ['--solvers', '0'],
      ['--out', out],
      ['--quiet'],
    ].flat(),
    {},
  );
  run = await rehearse(opts, () => {});
  stats = await deployment.stats();
}, 100_000);

afterAll(async () => {
  await deployment?.close().catch((err: Error) => console.warn(`${SUITE}: ${err.message}`));
  await db?.drop();
  if (passed === 3) rmSync(logDir, { recursive: true, force: true });
  else if (deployment) console.log(`${SUITE}: the nodes' and HAProxy's logs and the rehearsal's reports: ${logDir}`);
}, 60_000);

describe('three Stampede nodes behind HAProxy (round robin, nothing sticky) on a Redis Cluster and PostgreSQL', () => {
  it('a rehearsal through the balancer keeps every invariant, from outside and from the ledger', (ctx) => {
    if (!deployment) return ctx.skip();
    expectEveryInvariantHeld(run);
    expect(run.data.timedOut).toBe(false);
    // Demand was ten times the stock: it all sold, and every authorisation ended.
    expect(run.verdict.figures.soldUnits).toBe(40);
    expect(run.data.ledger.authsOpen).toBe(0);
    passed++;
  });

  it('every node answered a real share of the requests (HAProxy stats), and all stayed up', (ctx) => {
    if (!deployment) return ctx.skip();
    const report = requestsPerNode(stats);
    const { servers } = stats;
    expect(servers.map((s) => s.name).sort(), report).toEqual(['node-1', 'node-2', 'node-3']);
    const total = servers.reduce((sum, s) => sum + s.requests, 0);
    expect(total, report).toBeGreaterThan(400);
    for (const s of servers) {
      expect(s.requests / total, report).toBeGreaterThanOrEqual(0.2);
      expect(s.status, report).toBe('UP');
      expect(s.connectErrors, report).toBe(0);
    }
    passed++;
  });

  it('teardown leaves no key under the prefix on the cluster, and the throwaway database is dropped', { timeout: 60_000 }, async (ctx) => {
    if (!deployment || !db) return ctx.skip();
    await deployment.close();
    expect(await keysUnder(testClusterNodes()!, prefix)).toEqual([]);
    // The deployment leaves a given database as it is (its rows are the record); the suite drops its own.
    expect(await databaseExists(db.url)).toBe(true);
    await db.drop();
    expect(await databaseExists(db.url)).toBe(false);
    passed++;
  });
});
