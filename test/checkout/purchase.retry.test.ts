/**
 * SPEC §6 "retrying is always safe and always ends": a purchase whose order the ledger refused
 * to record answers 503 and leaves nothing behind — not the units, and not the idempotency key —
 * so the shopper's retry with the same key runs again and buys. (Before, the key kept naming
 * the released hold and every retry got 409 REQUEST_IN_PROGRESS for ever.)
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { admitEveryone, createSale, describeStacks, enter, openStack, userToken, type Stack } from '../support/stack.js';

describeStacks('a purchase the ledger could not record', (kind) => {
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
    const sale = await createSale(s, { items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity: 1, per_user_limit: 1 }] });
    const buyer = await userToken(s);
    const ticket = await enter(s, sale.id, buyer);
    await admitEveryone(s, sale.id);

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
});
