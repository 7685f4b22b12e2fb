/**
 * SPEC §6: after the engine loses a sale (Redis restarted empty), the first request that needs
 * it rebuilds it from the ledger — nobody is told 404 for a sale that exists, and nobody waits
 * for the follower's next pass. Stock, holds and per-user counts come back from one snapshot.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RedisEngine } from '../../src/engine/redis/redis-engine.js';
import { saleInput } from '../ledger/ledger.contract.js';
import { admitEveryone, createSale, describeStacks, enter, openStack, userToken, type Stack } from '../support/stack.js';

const HOUR = 3_600_000;

describeStacks('a sale the engine lost', (kind) => {
  let stack: Stack | null;
  beforeAll(async () => {
    stack = await openStack(kind, { workers: false });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('is rebuilt by the first request that needs it, with its stock, holds and limits', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, { items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity: 3, per_user_limit: 1 }] });
    const buyer = await userToken(s);
    const ticket = await enter(s, sale.id, buyer);
    await admitEveryone(s, sale.id);
    const bought = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...buyer.headers, 'idempotency-key': randomUUID() },
      payload: { ticket: ticket.queue_ticket, sku: 'phone' },
    });
    expect([bought.statusCode, bought.json().status]).toEqual([201, 'reserved']);

    // Every key of the sale gone, as after a restart without persistence.
    await s.engine.dropSale(sale.id);
    const newcomer = await userToken(s);
    const entered = await s.app.inject({ method: 'POST', url: `/api/flash-sales/${sale.id}/enter-queue`, headers: newcomer.headers, payload: {} });
    expect([entered.statusCode, entered.body]).toEqual([200, expect.anything()]);
    // One unit is still held by the reserved order, and its buyer still counts it against the limit.
    const snap = await s.engine.snapshot(sale.id, 0);
    expect(snap).toMatchObject({ remaining: { phone: 2 }, heldUnits: 1 });
    const hold = await s.engine.getHold(sale.id, bought.json().order_id);
    expect(hold).toMatchObject({ userId: buyer.sub, quantity: 1 });

    // A sale nobody has is still 404.
    const unknown = await s.app.inject({ method: 'POST', url: `/api/flash-sales/${randomUUID()}/enter-queue`, headers: newcomer.headers, payload: {} });
    expect([unknown.statusCode, unknown.json().error.code]).toEqual([404, 'SALE_NOT_FOUND']);
  });

  it("after the rebuild, an admission is dated by the new queue's record, not the lost queue's", async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, { queue: { mode: 'fifo', admission_rate_per_sec: 100_000, admitted_ttl_sec: 30, max_active: 1_000_000 } });
    for (let i = 0; i < 5; i++) await enter(s, sale.id, await userToken(s));
    await admitEveryone(s, sale.id);
    // The node copied the old queue's advances (up to watermark 5); later ones are dated later.
    await new Promise((r) => setTimeout(r, 50));

    // Redis loses the sale; the rebuilt queue starts again at watermark 0, in a new epoch.
    await s.engine.dropSale(sale.id);
    const newcomer = await userToken(s);
    const ticket = await enter(s, sale.id, newcomer);
    expect(ticket.place).toBe(1);
    await admitEveryone(s, sale.id);
    const view = await s.app.inject({ method: 'GET', url: `/api/flash-sales/${sale.id}/status?ticket=${encodeURIComponent(ticket.queue_ticket)}` });
    expect(view.json().status).toBe('admitted');
    // The window runs from the new queue's advance that reached place 1, as the engine records it.
    const [[, admittedAt]] = (await s.engine.snapshot(sale.id, 0)).advances;
    expect(view.json().admission_expires_at).toBe(new Date(admittedAt + 30_000).toISOString());
  });

  it('a sale with queue lanes comes back with fresh lanes: a newcomer is not put behind the lost queue, and is admitted', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, { queue: { mode: 'fifo', admission_rate_per_sec: 100_000, admitted_ttl_sec: 600, max_active: 1_000_000, shards: 3 } });
    for (let i = 0; i < 30; i++) await enter(s, sale.id, await userToken(s));
    await admitEveryone(s, sale.id);
    const lost = s.runtime.monitor.get(sale.id)!.snapshot;
    expect(lost.watermark).toBeGreaterThanOrEqual(30);

    // The sale's own slot is lost (on a Cluster the lanes' masters may well survive it). The
    // node's picture still shows the old line when the next request comes.
    if (s.engine instanceof RedisEngine) await s.engine.client.del(...s.engine.keys.allOfSale(sale.id));
    else await s.engine.dropSale(sale.id);
    await s.runtime.monitor.refresh(sale.id);
    const newcomer = await userToken(s);
    const ticket = await enter(s, sale.id, newcomer);
    const now = (await s.engine.snapshot(sale.id, 0)).epoch;
    expect(now).not.toBe(lost.epoch);
    // First in its lane of the new queue (places 1–3), not above the lost queue's line.
    expect(ticket.place).toBeLessThanOrEqual(3);
    await admitEveryone(s, sale.id);
    const view = await s.app.inject({ method: 'GET', url: `/api/flash-sales/${sale.id}/status?ticket=${encodeURIComponent(ticket.queue_ticket)}` });
    expect(view.json().status).toBe('admitted');
  });

  it('a sale long over, brought back by a read, expires from Redis again (old ids cannot pin the engine)', async (ctx) => {
    if (!stack || !(stack.engine instanceof RedisEngine)) return ctx.skip();
    const now = Date.now();
    const past = await stack.ledger.createSale(saleInput({ startsAt: new Date(now - 5 * HOUR), endsAt: new Date(now - 4 * HOUR), reservationTtlSec: 60 }));
    const page = await stack.app.inject({ method: 'GET', url: `/api/flash-sales/${past.id}` });
    expect(page.statusCode).toBe(200);
    expect(await stack.engine.hasSale(past.id)).toBe(true);
    const ttl = await stack.engine.client.pttl(stack.engine.keys.sale(past.id).meta);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(HOUR);
  });
});
