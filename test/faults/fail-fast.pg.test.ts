/**
 * SPEC §6, fail fast: with the ledger's PostgreSQL frozen (SIGSTOP) or stopped, /readyz says 503
 * within a second, a purchase answers 503 UNAVAILABLE with Retry-After instead of hanging, and
 * the waiting room goes on without the ledger — entering the queue, status (a buyer's too), the
 * sale page, the admin's stats (marked stale). Once PostgreSQL is back, everything answers again,
 * from a pool with no connection left broken. A PostgreSQL cluster of the test's own; the
 * engine is the embedded one, so only the ledger fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { openLedger } from '../../src/ledger/open-ledger.js';
import { startPostgres, type OwnPostgres } from '../support/own-services.js';
import { expectUnavailable, openFaultNode, playScene, report, requests, until, userHeaders, type FaultNode, type Scene } from '../support/fault-scene.js';

const skip = process.env.STAMPEDE_TEST_SERVICES === 'none';

describe.skipIf(skip)('fail fast: the ledger’s PostgreSQL frozen or stopped', () => {
  let pg: OwnPostgres;
  let ledger: Ledger;
  let node: FaultNode;

  beforeAll(async () => {
    pg = await startPostgres();
    ledger = await openLedger({ databaseUrl: pg.url, poolSize: 10 });
    node = await openFaultNode(new MemoryEngine(), ledger);
  });

  afterAll(async () => {
    pg?.resume();
    await node?.close();
    await ledger?.close();
    await pg?.stop();
  });

  /** What the outage is tried with: every request at once, then the same again a moment later. */
  async function duringOutage(title: string, scene: Scene) {
    const req = requests(node, scene.saleId);
    const newcomer = await userHeaders(node);
    const round = () =>
      Promise.all([
        req.readyz(),
        req.purchase(scene.buyer),
        req.enter(newcomer),
        req.status(scene.waiter),
        req.status(scene.bought),
        req.salePage(),
        req.stats(),
      ]);
    const first = await round();
    report(`${title}, first requests:`, first);
    const again = await round();
    report(`${title}, again:`, again);
    for (const answers of [first, again]) {
      const [ready, purchase, enter, waiting, bought, page, stats] = answers;
      expect(ready.status).toBe(503);
      expectUnavailable(purchase);
      // The waiting room needs no ledger: a newcomer gets a place, the others their answers.
      expect([enter.status, enter.body.status]).toEqual([200, 'waiting']);
      // (The buyer's hold, taken in the engine before the ledger failed, freed the one admission.)
      expect(waiting.status).toBe(200);
      expect(['waiting', 'admitted']).toContain(waiting.body.status);
      expect([bought.status, bought.body.status]).toEqual([200, 'purchased']);
      expect(page.status).toBe(200);
      expect([stats.status, stats.body.stale]).toEqual([200, true]);
      // Generous bounds (a busy machine): the point is "no hang", the figures are printed above.
      for (const a of answers) expect(a.ms, a.label).toBeLessThan(5000);
    }
    return { first, again };
  }

  /** Back to normal: ready, the purchase goes through, and a burst of ledger reads (more than the pool holds) all answer. */
  async function afterRecovery(title: string, scene: Scene) {
    const req = requests(node, scene.saleId);
    await until('/readyz answers 200 again', async () => (await req.readyz()).status === 200);
    const after = await Promise.all([req.purchase(scene.buyer), req.status(scene.bought), req.salePage(), req.stats()]);
    report(`${title}:`, after);
    expect(after.map((a) => a.status)).toEqual([201, 200, 200, 200]);
    expect(after[3].body.stale).toBeUndefined();
    const burst = await Promise.all(Array.from({ length: 25 }, () => req.orders()));
    expect(burst.map((a) => a.status)).toEqual(burst.map(() => 200));
  }

  it('frozen (SIGSTOP): /readyz 503 and purchase 503 + Retry-After; queue, status, sale page and stats answer; all well after SIGCONT', async () => {
    const scene = await playScene(node);
    // The admin has looked at the stats once: that picture is what an outage shows.
    expect((await requests(node, scene.saleId).stats()).status).toBe(200);

    pg.freeze();
    try {
      const { first } = await duringOutage('PostgreSQL frozen', scene);
      // The probe that finds the ledger frozen waits out the deadline; readiness never more than its cap.
      expect(first[0].ms).toBeLessThan(3000);
    } finally {
      pg.resume();
    }
    await afterRecovery('PostgreSQL resumed', scene);
  });

  it('stopped (pg_ctl stop -m fast): the same answers; started again, all well', async () => {
    const scene = await playScene(node);
    expect((await requests(node, scene.saleId).stats()).status).toBe(200);

    await pg.stopServer();
    try {
      await duringOutage('PostgreSQL stopped', scene);
    } finally {
      await pg.startServer();
    }
    await afterRecovery('PostgreSQL started again', scene);
  });
});
