/**
 * SPEC §3.7: a node killed (kill -9) after taking a hold and before the ledger write leaves no
 * unit lost. After a restart the sweeper finds the orphaned hold, returns the unit exactly once,
 * and the engine and the ledger agree again.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SWEEP_GRACE_MS } from '../../src/checkout/hold-sweeper.js';
import { buildApp } from '../../src/app.js';
import { openLedger } from '../../src/ledger/open-ledger.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { Runtime } from '../../src/runtime.js';
import { admitAll } from '../support/sales.js';
import type { RedisTestEngine } from '../support/redis.js';
import type { TempDatabase } from '../support/pg.js';
import { adminHeaders, redisAndPostgres, saleBody, testConfig, type RedisAndPostgres } from '../support/stack.js';

let services: RedisAndPostgres | null = null;
let redis: RedisTestEngine | null = null;
let db: TempDatabase | null = null;
let ledger: Ledger | null = null;

beforeAll(async () => {
  services = await redisAndPostgres('crash-after-hold');
  if (services) ({ redis, db, ledger } = services);
});
afterAll(() => services?.close());

it('kill -9 between the hold and the ledger write: after restart the sweeper returns the unit, once', async (ctx) => {
  if (!redis || !ledger || !db) return ctx.skip();
  const config = testConfig();
  const before = await Runtime.create({ config, engine: redis.engine, ledger, workers: false });
  await before.start();
  const app = await buildApp(before);
  const created = await app.inject({
    method: 'POST',
    url: '/api/admin/flash-sales',
    headers: adminHeaders,
    payload: saleBody({ reservation_ttl_sec: 1, items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity: 1, per_user_limit: 1 }] }),
  });
  const saleId = created.json().id;
  const user = `crash-user-${randomUUID()}`;
  const { token } = await before.auth.issue(user);
  const entered = await app.inject({
    method: 'POST',
    url: `/api/flash-sales/${saleId}/enter-queue`,
    headers: { authorization: `Bearer ${token}` },
    payload: {},
  });
  await admitAll(redis.engine, saleId);
  await app.close();
  await before.close();

  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../fixtures/crash-after-hold.ts', import.meta.url))], {
    env: {
      ...process.env,
      CRASH_PREFIX: redis.prefix,
      CRASH_DATABASE_URL: db.url,
      CRASH_SALE_ID: saleId,
      CRASH_USER_ID: user,
      CRASH_TICKET: entered.json().queue_ticket,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exit = await new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  expect(exit.signal).toBe('SIGKILL');

  // The wreck: the engine holds the unit, the ledger has no order for it.
  const wreck = await redis.engine.snapshot(saleId, 0);
  expect(wreck).toMatchObject({ remaining: { phone: 0 }, heldUnits: 1 });
  expect(await ledger.listOrders(saleId)).toEqual([]);

  // Restart: a new node on the same Redis and PostgreSQL.
  const after = await Runtime.create({ config, engine: redis.engine, ledger, workers: false });
  await after.start();
  await new Promise((r) => setTimeout(r, 1000 + SWEEP_GRACE_MS + 200));
  const swept = await Promise.all([after.holdSweeper.sweep(), after.holdSweeper.sweep()]);
  expect(swept[0] + swept[1]).toBe(1);
  expect(await redis.engine.snapshot(saleId, 0)).toMatchObject({ remaining: { phone: 1 }, heldUnits: 0 });
  expect((await ledger.getSale(saleId))!.items[0]).toMatchObject({ sold: 0, held: 0 });

  // The unit sells again — to the same shopper retrying with the key the dead node took: the
  // sweeper forgot it with the hold, so the retry runs again instead of answering "in progress".
  const again = await after.checkout.purchase({
    saleId,
    userId: user,
    ticket: entered.json().queue_ticket,
    sku: 'phone',
    quantity: 1,
    idempotencyKey: 'crash-1',
    paymentToken: 'tok_visa',
  });
  expect(again.status).toBe('confirmed');
  expect((await ledger.getSale(saleId))!.items[0]).toMatchObject({ sold: 1, held: 0 });
  expect((await redis.engine.snapshot(saleId, 0)).remaining.phone).toBe(0);
  await after.close();
}, 60_000);

it('the embedded engine restarts empty and is rebuilt from the ledger: reservations stay held, then expire', async () => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { MemoryEngine } = await import('../../src/engine/memory/memory-engine.js');
  const dir = await mkdtemp(join(tmpdir(), 'stampede-restart-'));
  const config = testConfig();
  try {
    const first = await Runtime.create({ config, engine: new MemoryEngine(), ledger: await openLedger({ dataDir: dir }), workers: false });
    await first.start();
    const sale = await first.sales.create(
      saleBody({
        reservation_ttl_sec: 1,
        items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity: 2, per_user_limit: 1 }],
      }) as never,
    );
    const entered = await first.queue.enter(sale.id, { userId: 'u1', ip: '127.0.0.1' });
    await admitAll(first.engine, sale.id);
    await first.monitor.refresh(sale.id);
    const order = await first.checkout.purchase({
      saleId: sale.id,
      userId: 'u1',
      ticket: entered.queue_ticket,
      sku: 'phone',
      quantity: 1,
      idempotencyKey: 'k',
    });
    expect(order.status).toBe('reserved');
    await first.ledger.close();

    const ledger2 = await openLedger({ dataDir: dir });
    const second = await Runtime.create({ config, engine: new MemoryEngine(), ledger: ledger2, workers: false });
    await second.start();
    expect(await second.engine.snapshot(sale.id, 0)).toMatchObject({ remaining: { phone: 1 }, heldUnits: 1 });
    await new Promise((r) => setTimeout(r, 1000 + SWEEP_GRACE_MS + 200));
    expect(await second.holdSweeper.sweep()).toBe(1);
    expect(await second.engine.snapshot(sale.id, 0)).toMatchObject({ remaining: { phone: 2 }, heldUnits: 0 });
    expect((await ledger2.getOrder(order.order_id))?.status).toBe('expired');
    await second.close();
    await ledger2.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 30_000);
