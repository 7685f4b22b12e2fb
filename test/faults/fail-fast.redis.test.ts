/**
 * SPEC §6, fail fast: with the engine's Redis frozen (SIGSTOP) or killed, a request that needs it
 * answers 503 UNAVAILABLE with Retry-After instead of hanging; a waiting shopper's status and the
 * sale page answer from the last picture; /readyz says 503; and once Redis is back, everything
 * answers as before. A Redis of the test's own (AOF on): the shared one is never touched.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisEngine, createRedis, untilReady } from '../../src/engine/redis/redis-engine.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { openLedger } from '../../src/ledger/open-ledger.js';
import { startRedis, type OwnRedis } from '../support/own-services.js';
import { withTempDatabase, type TempDatabase } from '../support/pg.js';
import { expectUnavailable, openFaultNode, playScene, report, requests, sleep, until, userHeaders, type FaultNode } from '../support/fault-scene.js';

const skip = process.env.STAMPEDE_TEST_SERVICES === 'none';

describe.skipIf(skip)('fail fast: the engine’s Redis frozen or killed', () => {
  let redis: OwnRedis;
  let engine: RedisEngine;
  let ledger: Ledger;
  let node: FaultNode;
  let db: TempDatabase;

  beforeAll(async () => {
    redis = await startRedis({ aof: true });
    const client = createRedis({ url: redis.url });
    await untilReady(client);
    const prefix = `ff-${randomBytes(4).toString('hex')}`;
    engine = new RedisEngine(client, { prefix, ownsClient: true });
    // The ledger on the shared PostgreSQL (a database of this test's own): only Redis fails here.
    db = await withTempDatabase();
    ledger = await openLedger({ databaseUrl: db.url });
    node = await openFaultNode(engine, ledger, { STAMPEDE_REDIS_PREFIX: prefix });
  });

  afterAll(async () => {
    redis?.resume();
    await node?.close();
    await engine?.close();
    await ledger?.close();
    await db?.drop();
    await redis?.stop();
  });

  it('frozen: purchase and enter-queue answer 503 + Retry-After, status and the sale page answer, /readyz 503; all well after SIGCONT', async () => {
    const scene = await playScene(node);
    const req = requests(node, scene.saleId);
    const newcomer = await userHeaders(node);

    redis.freeze();
    // Everything at once, the moment Redis stops answering: the slowest waits out one deadline.
    const first = await Promise.all([req.purchase(scene.buyer), req.enter(newcomer), req.status(scene.waiter), req.salePage(), req.readyz()]);
    report('Redis frozen, first requests:', first);
    // Then once more: the dropped connection now refuses at once, and the picture is marked stale.
    await sleep(300);
    const again = await Promise.all([req.purchase(scene.buyer), req.enter(newcomer), req.status(scene.waiter), req.salePage(), req.readyz()]);
    report('Redis frozen, a moment later:', again);

    for (const round of [first, again]) {
      const [purchase, enter, status, page, ready] = round;
      expectUnavailable(purchase);
      expectUnavailable(enter);
      expect([status.status, status.body.status]).toEqual([200, 'waiting']);
      expect(page.status).toBe(200);
      expect(ready.status).toBe(503);
      // Generous bounds (a busy machine): the point is "no hang", the figures are printed above.
      for (const a of round) expect(a.ms, a.label).toBeLessThan(5000);
    }
    expect(again[2].body.stale).toBe(true);
    expect(again[3].body.stale).toBe(true);

    redis.resume();
    await until('/readyz answers 200 again', async () => (await req.readyz()).status === 200);
    const after = await Promise.all([req.purchase(scene.buyer), req.enter(newcomer), req.status(scene.bought)]);
    report('Redis resumed:', after);
    expect(after.map((a) => a.status)).toEqual([201, 200, 200]);
    await until('the picture is fresh again', async () => (await req.status(scene.waiter)).body.stale === undefined);
  });

  it('killed: the same answers, at once; restarted from its AOF, the sale goes on where it was', async () => {
    const scene = await playScene(node);
    const req = requests(node, scene.saleId);
    const newcomer = await userHeaders(node);
    // appendfsync everysec: let the scene reach the disk before the crash.
    await sleep(1500);

    await redis.kill9();
    await until('the node sees the engine gone', async () => (await req.status(scene.waiter)).body.stale === true);
    const down = await Promise.all([
      req.purchase(scene.buyer),
      req.enter(newcomer),
      req.status(scene.waiter),
      req.status(scene.bought),
      req.salePage(),
      req.readyz(),
    ]);
    report('Redis killed:', down);
    const [purchase, enter, waiting, bought, page, ready] = down;
    expectUnavailable(purchase);
    expectUnavailable(enter);
    expect([waiting.status, waiting.body.status]).toEqual([200, 'waiting']);
    expect([bought.status, bought.body.status]).toEqual([200, 'purchased']);
    expect(page.status).toBe(200);
    expect(ready.status).toBe(503);
    for (const a of down) expect(a.ms, a.label).toBeLessThan(5000);

    await redis.restart();
    await until('/readyz answers 200 again', async () => (await req.readyz()).status === 200);
    const after = await Promise.all([req.purchase(scene.buyer), req.enter(newcomer), req.status(scene.waiter)]);
    report('Redis restarted from AOF:', after);
    expect(after.map((a) => a.status)).toEqual([201, 200, 200]);
    // The buyer's purchase freed the one admission: the waiter is next, as before the crash.
    await until('the waiter is admitted', async () => (await req.status(scene.waiter)).body.status === 'admitted');
  });
});
