/**
 * SPEC §6 "retrying is always safe and always ends": a purchase whose order the ledger refused
 * to record answers 503 and leaves nothing behind — not the units, and not the idempotency key —
 * so the shopper's retry with the same key runs again and buys. (Before, the key kept naming
 * the released hold and every retry got 409 REQUEST_IN_PROGRESS for ever.)
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { admitEveryone, createSale, describeStacksAndCluster, enter, openStack, userToken, type Stack } from '../support/stack.js';

/** A sale of `quantity` phones and one buyer admitted to it. */
async function admittedBuyer(s: Stack, quantity: number, perUserLimit: number, reservationTtlSec = 600) {
  const sale = await createSale(s, {
    reservation_ttl_sec: reservationTtlSec,
    items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity, per_user_limit: perUserLimit }],
  });
  const buyer = await userToken(s);
  const ticket = await enter(s, sale.id, buyer);
  await admitEveryone(s, sale.id);
  return { sale, buyer, ticket };
}

describeStacksAndCluster('a purchase the ledger could not record', (kind) => {
  let stack: Stack | null;
  beforeAll(async () => {
    stack = await openStack(kind);
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('answers 503, gives the unit back, and the same key buys on retry', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { sale, buyer, ticket } = await admittedBuyer(s, 1, 1);

    // The ledger's row is full behind the engine's back (a real refusal: its stock guard), so
    // the engine takes the hold and the ledger refuses the order.
    const intruder = await s.runtime.ledger.reserveOrder({
      id: randomUUID(),
      saleId: sale.id,
      sku: 'phone',
      userId: 'someone-else',
      quantity: 1,
      idempotencyKey: randomUUID(),
      reservationExpiresAt: new Date(Date.now() + 600_000),
    });
    const key = randomUUID();
    const buy = () =>
      s.app.inject({
        method: 'POST',
        url: `/api/flash-sales/${sale.id}/purchase`,
        headers: { ...buyer.headers, 'idempotency-key': key },
        payload: { ticket: ticket.queue_ticket, sku: 'phone', payment_token: 'tok_visa' },
      });
    const refused = await buy();
    expect([refused.statusCode, refused.json().error.code, refused.headers['retry-after']]).toEqual([503, 'UNAVAILABLE', '1']);
    // Nothing left behind: the unit is back in the engine.
    expect((await s.runtime.engine.snapshot(sale.id, 0)).remaining.phone).toBe(1);

    // The ledger frees the row; the shopper presses "retry" with the same key, a second later.
    await s.runtime.ledger.releaseOrder(intruder.id, 'cancelled');
    await new Promise((r) => setTimeout(r, 1100));
    const retried = await buy();
    expect([retried.statusCode, retried.json().status]).toEqual([201, 'confirmed']);
    // And the key now answers that order: a third press is the same 201, not a second unit.
    const again = await buy();
    expect([again.statusCode, again.json().order_id]).toEqual([201, retried.json().order_id]);
    expect((await s.runtime.engine.snapshot(sale.id, 0)).remaining.phone).toBe(0);
  });

  // The wreck a kill -9 leaves between the engine step and the ledger write: the engine holds the
  // unit under the key, the ledger has no order. Made here with the engine's own reserve step.
  async function wreck(s: Stack, quantity = 1, reservationTtlSec = 600) {
    const { sale, buyer, ticket } = await admittedBuyer(s, quantity, 1, reservationTtlSec);
    const key = randomUUID();
    const place = (await s.runtime.engine.placeOf(sale.id, buyer.sub))!;
    const died = await s.runtime.engine.reserve(sale.id, {
      userId: buyer.sub,
      place,
      sku: 'phone',
      quantity: 1,
      idempotencyKey: key,
      fingerprint: 'phone\u00001',
      holdId: randomUUID(),
    });
    if (died.kind !== 'held') throw new Error('the wreck needs a fresh hold');
    const buy = () =>
      s.app.inject({
        method: 'POST',
        url: `/api/flash-sales/${sale.id}/purchase`,
        headers: { ...buyer.headers, 'idempotency-key': key },
        payload: { ticket: ticket.queue_ticket, sku: 'phone', payment_token: 'tok_visa' },
      });
    return { sale, buyer, key, hold: died.hold, buy };
  }

  it('a node died after the hold: the retry with the same key records that hold and buys (no 409 "in progress")', async (ctx) => {
    if (!stack) return ctx.skip();
    const w = await wreck(stack);
    expect(await stack.runtime.ledger.getOrder(w.hold.holdId)).toBeNull();
    const retried = await w.buy();
    expect([retried.statusCode, retried.json().status, retried.json().order_id]).toEqual([201, 'confirmed', w.hold.holdId]);
    expect(await stack.runtime.engine.snapshot(w.sale.id, 0)).toMatchObject({ remaining: { phone: 0 }, heldUnits: 0 });
    expect((await stack.runtime.ledger.getSale(w.sale.id))!.items[0]).toMatchObject({ sold: 1, held: 0 });
  });

  it('a node died after the hold and the sweeper returned it: the key went with it, and the retry runs again', async (ctx) => {
    if (!stack) return ctx.skip();
    const w = await wreck(stack);
    // What the sweeper does with a hold that has no order: release it with the key it carries.
    const hold = await stack.runtime.engine.getHold(w.sale.id, w.hold.holdId);
    expect(hold?.idempotencyKey).toBe(w.key);
    expect(await stack.runtime.engine.releaseHold(w.sale.id, w.hold.holdId, { userId: hold!.userId, idempotencyKey: hold!.idempotencyKey! })).toBe(true);
    const retried = await w.buy();
    expect([retried.statusCode, retried.json().status]).toEqual([201, 'confirmed']);
    expect(retried.json().order_id).not.toBe(w.hold.holdId);
    expect((await stack.runtime.ledger.getSale(w.sale.id))!.items[0]).toMatchObject({ sold: 1, held: 0 });
  });

  it('a hold released without its key (an older node): the retry forgets the key and runs again', async (ctx) => {
    if (!stack) return ctx.skip();
    const w = await wreck(stack);
    expect(await stack.runtime.engine.releaseHold(w.sale.id, w.hold.holdId)).toBe(true);
    const retried = await w.buy();
    expect([retried.statusCode, retried.json().status]).toEqual([201, 'confirmed']);
    const again = await w.buy();
    expect([again.statusCode, again.json().order_id]).toEqual([201, retried.json().order_id]);
  });

  it('the engine lost the key but the ledger has its order: the retry answers that order and gives the new hold back', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { sale, buyer, ticket } = await admittedBuyer(s, 3, 2);
    const key = randomUUID();
    // The first answer, recorded in the ledger; the engine never heard of its key (lost in a restart).
    const first = await s.runtime.ledger.reserveOrder({
      id: randomUUID(),
      saleId: sale.id,
      sku: 'phone',
      userId: buyer.sub,
      quantity: 1,
      idempotencyKey: key,
      reservationExpiresAt: new Date(Date.now() + 600_000),
    });
    const res = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...buyer.headers, 'idempotency-key': key },
      payload: { ticket: ticket.queue_ticket, sku: 'phone' },
    });
    expect([res.statusCode, res.json().order_id]).toEqual([201, first.id]);
    // The hold the retry took went back: the engine holds none of this buyer's units beyond the ledger's.
    expect((await s.runtime.engine.snapshot(sale.id, 0)).remaining.phone).toBe(3);
    expect((await s.runtime.ledger.getSale(sale.id))!.items[0]).toMatchObject({ sold: 0, held: 1 });
  });

  it('a payment answered 503 may be retried at once: the retry it was told to make spends no rate limit', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { sale, buyer, ticket } = await admittedBuyer(s, 1, 1);
    const reserved = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...buyer.headers, 'idempotency-key': randomUUID() },
      payload: { ticket: ticket.queue_ticket, sku: 'phone' },
    });
    expect([reserved.statusCode, reserved.json().status]).toEqual([201, 'reserved']);
    // The purchase spent this second's attempt.
    await new Promise((r) => setTimeout(r, 1100));
    const pay = () =>
      s.app.inject({ method: 'POST', url: `/api/orders/${reserved.json().order_id}/pay`, headers: buyer.headers, payload: { payment_token: 'tok_visa' } });
    s.gateway.inject({ chargeFailuresNext: 1 });
    const down = await pay();
    expect([down.statusCode, down.json().error.code, down.headers['retry-after']]).toEqual([503, 'PAYMENT_UNAVAILABLE', '1']);
    // At once, not a second later: still within the 1-per-second limit, and not refused by it.
    const retried = await pay();
    expect([retried.statusCode, retried.json().status]).toEqual([200, 'confirmed']);
  });

  it("a retry after the hold's window passed never records it: the hold goes back with its key and the retry buys afresh", async (ctx) => {
    if (!stack) return ctx.skip();
    const w = await wreck(stack, 2, 1);
    // Past the window (the engine's clock), before any sweep: what the sweeper would return now.
    await new Promise((r) => setTimeout(r, 1200));
    const retried = await w.buy();
    expect([retried.statusCode, retried.json().status]).toEqual([201, 'confirmed']);
    expect(retried.json().order_id).not.toBe(w.hold.holdId);
    expect(await stack.runtime.ledger.getOrder(w.hold.holdId)).toBeNull();
    expect(await stack.runtime.engine.snapshot(w.sale.id, 0)).toMatchObject({ remaining: { phone: 1 }, heldUnits: 0 });
    const counted = (await stack.runtime.engine.inspect(w.sale.id))!.perUser.find((u) => u.userId === w.buyer.sub);
    expect(counted?.units).toBe(1);
  });

  it('an order write whose answer was lost (it committed): 503, hold and key kept, and the retry answers that very order', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { sale, buyer, ticket } = await admittedBuyer(s, 2, 1);
    const ledger = s.ledger as { reserveOrder: typeof s.ledger.reserveOrder; getOrder: typeof s.ledger.getOrder; listOrders: typeof s.ledger.listOrders };
    const real = { reserveOrder: ledger.reserveOrder, getOrder: ledger.getOrder, listOrders: ledger.listOrders };
    // The statement commits, then its answer is lost (a client deadline), and the ledger answers
    // nothing more for a moment (the client marks it down): whether the order is there, nobody can say.
    ledger.reserveOrder = async (o) => {
      await real.reserveOrder.call(s.ledger, o);
      const down = () => Promise.reject(new Error('Connection terminated unexpectedly'));
      ledger.getOrder = down;
      ledger.listOrders = down;
      throw new Error('Query read timeout');
    };
    const key = randomUUID();
    const buy = () =>
      s.app.inject({
        method: 'POST',
        url: `/api/flash-sales/${sale.id}/purchase`,
        headers: { ...buyer.headers, 'idempotency-key': key },
        payload: { ticket: ticket.queue_ticket, sku: 'phone', payment_token: 'tok_visa' },
      });
    let lost;
    try {
      lost = await buy();
    } finally {
      Object.assign(ledger, real);
    }
    expect([lost.statusCode, lost.json().error.code, lost.headers['retry-after']]).toEqual([503, 'UNAVAILABLE', '1']);
    // The order is in the ledger and its hold still in the engine: nothing was given back twice.
    expect(await s.runtime.engine.snapshot(sale.id, 0)).toMatchObject({ remaining: { phone: 1 }, heldUnits: 1 });
    const retried = await buy();
    expect([retried.statusCode, retried.json().status]).toEqual([201, 'confirmed']);
    expect((await s.ledger.getSale(sale.id))!.items[0]).toMatchObject({ sold: 1, held: 0 });
    expect(await s.runtime.engine.snapshot(sale.id, 0)).toMatchObject({ remaining: { phone: 1 }, heldUnits: 0 });
    // Still one unit counted for this user (a second would be refused by the per-user limit).
    const counted = (await s.runtime.engine.inspect(sale.id))!.perUser.find((u) => u.userId === buyer.sub);
    expect(counted?.units).toBe(1);
  });

  it('the engine lost its keys (a rebuild) after a purchase: the retry of that key answers its order, not LIMIT_REACHED', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { sale, buyer, ticket } = await admittedBuyer(s, 3, 1);
    const key = randomUUID();
    const buy = () =>
      s.app.inject({
        method: 'POST',
        url: `/api/flash-sales/${sale.id}/purchase`,
        headers: { ...buyer.headers, 'idempotency-key': key },
        payload: { ticket: ticket.queue_ticket, sku: 'phone', payment_token: 'tok_visa' },
      });
    const first = await buy();
    expect([first.statusCode, first.json().status]).toEqual([201, 'confirmed']);
    // The key map alone is lost (stock, holds and counts intact, as a rebuild leaves them).
    const { RedisEngine } = await import('../../src/engine/redis/redis-engine.js');
    if (s.engine instanceof RedisEngine) await s.engine.client.del(s.engine.keys.sale(sale.id).idem);
    else (s.engine as unknown as { sales: Map<string, { idempotency: Map<string, unknown> }> }).sales.get(sale.id)!.idempotency.clear();
    await new Promise((r) => setTimeout(r, 1100));
    const again = await buy();
    expect([again.statusCode, again.json().order_id, again.json().status]).toEqual([201, first.json().order_id, 'confirmed']);
  });
});
