/**
 * A sale with queue lanes when the sale's own master stops answering but the lanes' masters do:
 * the node's picture of the line goes stale, and a newcomer must not be placed from that old line
 * (a place below the real watermark would be "admitted" with a window that began long ago). Entry
 * answers 503 with Retry-After until the master is back, then places above the line again.
 * A 3-master cluster of the test's own on spare ports (SIGSTOP on one master): the shared
 * services are never touched.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../src/engine/redis/key-slot.js';
import { RedisEngine } from '../../src/engine/redis/redis-engine.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { openLedger } from '../../src/ledger/open-ledger.js';
import { clusterPorts } from '../support/own-services.js';
import { withTempDatabase, type TempDatabase } from '../support/pg.js';
import { expectUnavailable, openFaultNode, requests, until, userHeaders, type FaultNode } from '../support/fault-scene.js';
import { adminHeaders, saleBody } from '../support/stack.js';

const run = promisify(execFile);
const SCRIPT = join(import.meta.dirname, '../../scripts/redis-cluster.sh');
const skip = process.env.STAMPEDE_TEST_SERVICES === 'none';

describe.skipIf(skip)('queue lanes: the sale’s own master frozen, the lanes’ masters up', () => {
  let ports: string[];
  let env: NodeJS.ProcessEnv;
  let engine: RedisEngine;
  let ledger: Ledger;
  let db: TempDatabase;
  let node: FaultNode;
  let frozen: number | null = null;

  beforeAll(async () => {
    ports = (await clusterPorts(3)).map(String);
    env = { ...process.env, STAMPEDE_REDIS_CLUSTER_DIR: mkdtempSync(join(tmpdir(), 'stampede-lanes-fault-')) };
    const { stdout } = await run(SCRIPT, ['start', ...ports], { env, timeout: 60_000 });
    const prefix = `lf-${randomBytes(4).toString('hex')}`;
    engine = await RedisEngine.connect({ clusterNodes: stdout.trim().split(','), prefix });
    db = await withTempDatabase();
    ledger = await openLedger({ databaseUrl: db.url });
    node = await openFaultNode(engine, ledger, { STAMPEDE_REDIS_PREFIX: prefix });
  }, 90_000);

  afterAll(async () => {
    if (frozen) process.kill(frozen, 'SIGCONT');
    await node?.close();
    await engine?.close();
    await ledger?.close();
    await db?.drop();
    if (ports) await run(SCRIPT, ['stop', ...ports], { env, timeout: 30_000 });
  }, 60_000);

  it('entry answers 503 + Retry-After while the line is unknown, and places above it once the master is back', async () => {
    const created = await node.app.inject({
      method: 'POST',
      url: '/api/admin/flash-sales',
      headers: adminHeaders,
      payload: saleBody({ queue: { mode: 'fifo', admission_rate_per_sec: 100_000, admitted_ttl_sec: 600, max_active: 1_000_000, shards: 2 } }),
    });
    expect(created.statusCode).toBe(201);
    const saleId = created.json().id as string;
    const req = requests(node, saleId);
    const first = await Promise.all(Array.from({ length: 6 }, async () => req.enter(await userHeaders(node))));
    expect(first.map((a) => a.status)).toEqual(Array(6).fill(200));
    const waiter = { name: 'waiter', headers: {}, ticket: first[0].body.queue_ticket as string, key: '' };

    // Two lanes go to the two masters other than the sale's own: freeze the sale's own.
    const cluster = engine.client as Cluster;
    const home = cluster.slots[keySlot(engine.keys.sale(saleId).meta)][0];
    const info = String(
      await cluster
        .nodes('master')
        .find((m) => `${m.options.host}:${m.options.port}` === home)!
        .info('server'),
    );
    frozen = Number(/process_id:(\d+)/.exec(info)![1]);
    process.kill(frozen, 'SIGSTOP');
    await until('the node marks its picture stale', async () => (await req.status(waiter)).body.stale === true);

    // Several newcomers: their lanes answer, but the line they would be placed above is unknown.
    const during = await Promise.all(Array.from({ length: 10 }, async () => req.enter(await userHeaders(node))));
    for (const answer of during) expectUnavailable(answer);

    process.kill(frozen, 'SIGCONT');
    frozen = null;
    await until('the picture is fresh again', async () => (await req.status(waiter)).body.stale === undefined);
    // Once the node's picture has the engine's line, a newcomer is placed above it.
    const { watermark } = await engine.snapshot(saleId, 0);
    expect(watermark).toBeGreaterThanOrEqual(6);
    await until('the node shows the line', async () => (await req.status(waiter)).body.watermark === watermark);
    const after = await req.enter(await userHeaders(node));
    expect(after.status).toBe(200);
    expect(after.body.place).toBeGreaterThan(watermark);
  }, 90_000);
});
