/**
 * Two nodes on one Redis and one PostgreSQL, each on its own Redis connection and ledger pool and
 * with the sandbox the runtime builds for it (no gateway given): a card pre-authorised through
 * one node is captured when the purchase lands on the other, because on Redis the sandbox's book
 * is in Redis, one card network for every node — as Stripe would be. With a book per process the
 * winner's purchase would be declined 402 PAYMENT_DECLINED (the other node never saw the card).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { RedisEngine } from '../../src/engine/redis/redis-engine.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { openLedger } from '../../src/ledger/open-ledger.js';
import { Runtime } from '../../src/runtime.js';
import { admitEveryone, createSale, enter, redisAndPostgres, testConfig, userToken, type RedisAndPostgres, type Stack } from '../support/stack.js';

let services: RedisAndPostgres | null = null;
const nodes: Stack[] = [];
const closing: Array<() => Promise<unknown>> = [];

/** A node as `server.ts` would wire it on this Redis and database; `createSale` and friends take it as a stack. */
async function node(engine: RedisEngine, ledger: Ledger): Promise<Stack> {
  const config = testConfig({ STAMPEDE_REDIS_PREFIX: engine.keys.prefix, STAMPEDE_SANDBOX_LATENCY_MS: '0' });
  const runtime = await Runtime.create({ config, engine, ledger, workers: false });
  await runtime.start();
  const app = await buildApp(runtime);
  await app.ready();
  closing.unshift(
    () => app.close(),
    () => runtime.close(),
  );
  return { kind: 'redis+pg', runtime, app, engine, ledger, gateway: null as never, close: async () => {} };
}

beforeAll(async () => {
  services = await redisAndPostgres('shared sandbox book');
  if (!services) return;
  nodes.push(await node(services.redis.engine, services.ledger));
  // The second node's own connection and pool, as another process would have.
  const engine = await RedisEngine.connect({ url: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', prefix: services.redis.prefix });
  const ledger = await openLedger({ databaseUrl: services.db.url });
  closing.push(
    () => engine.close(),
    () => ledger.close(),
  );
  nodes.push(await node(engine, ledger));
});
afterAll(async () => {
  for (const step of closing) await step().catch(() => {});
  await services?.close();
});

it('a card pre-authorised through one node pays for the purchase made through another', async (ctx) => {
  if (!services) return ctx.skip();
  const [a, b] = nodes;
  const sale = await createSale(a, { items: [{ sku: 'phone', name: 'Phone', price_cents: 40_000, currency: 'EUR', quantity: 3, per_user_limit: 1 }] });
  const user = await userToken(a);
  const { queue_ticket: ticket } = await enter(a, sale.id, user);
  const preAuth = await a.app.inject({
    method: 'POST',
    url: `/api/flash-sales/${sale.id}/pre-auth`,
    headers: user.headers,
    payload: { ticket, payment_token: 'tok_visa' },
  });
  expect(preAuth.statusCode).toBe(200);
  await admitEveryone(b, sale.id);

  const bought = await b.app.inject({
    method: 'POST',
    url: `/api/flash-sales/${sale.id}/purchase`,
    headers: { ...user.headers, 'idempotency-key': randomUUID() },
    payload: { ticket, sku: 'phone' },
  });
  expect([bought.statusCode, bought.json().status]).toEqual([201, 'confirmed']);
  const payment = (await services.ledger.getPayment(preAuth.json().auth_id))!;
  expect(payment).toMatchObject({ status: 'captured', orderId: bought.json().order_id });
  // The one authorisation, captured once, in the deployment's Redis.
  const record = await services.redis.redis.hgetall(`${services.redis.prefix}:sandbox:{${payment.gatewayRef}}`);
  expect(record).toMatchObject({ kind: 'authorization', status: 'captured', captures: '1', captured: '40000' });
});
