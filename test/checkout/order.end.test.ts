/**
 * Ending an order follows the ledger. When a reservation is ended (expired, cancelled) just as
 * it was paid, the ledger refuses the release; the engine must then keep the units sold, not
 * put them back on sale (phantom stock the ledger would refuse to sell again).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { admitEveryone, createSale, describeStacksAndCluster, enter, openStack, userToken, type Stack } from '../support/stack.js';

describeStacksAndCluster('ending an order', (kind) => {
  let stack: Stack | null;
  beforeAll(async () => {
    stack = await openStack(kind, { workers: false });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('an order paid just before it is ended stays sold in the engine and the ledger', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, { items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity: 2, per_user_limit: 1 }] });
    const buyer = await userToken(s);
    const ticket = await enter(s, sale.id, buyer);
    await admitEveryone(s, sale.id);
    const res = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...buyer.headers, 'idempotency-key': randomUUID() },
      payload: { ticket: ticket.queue_ticket, sku: 'phone' },
    });
    expect([res.statusCode, res.json().status]).toEqual([201, 'reserved']);
    const order = (await s.runtime.ledger.getOrder(res.json().order_id))!;

    // Paid in the ledger (another node's /pay) a moment before this node ends it.
    expect(await s.runtime.ledger.confirmOrder(order.id, null)).not.toBeNull();
    expect(await s.runtime.checkout.end(order, 'expired')).toBeNull();

    expect((await s.runtime.engine.snapshot(sale.id, 0)).remaining.phone).toBe(1);
    expect(await s.runtime.engine.getHold(sale.id, order.id)).toBeNull();
    const item = (await s.runtime.ledger.getSale(sale.id))!.items[0];
    expect([item.sold, item.held]).toEqual([1, 0]);
    // A plain end of a reserved order still gives its unit back.
    const other = await userToken(s);
    const otherTicket = await enter(s, sale.id, other);
    await admitEveryone(s, sale.id);
    const second = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...other.headers, 'idempotency-key': randomUUID() },
      payload: { ticket: otherTicket.queue_ticket, sku: 'phone' },
    });
    expect(second.json().status).toBe('reserved');
    expect((await s.runtime.checkout.end((await s.runtime.ledger.getOrder(second.json().order_id))!, 'cancelled'))?.status).toBe('cancelled');
    expect((await s.runtime.engine.snapshot(sale.id, 0)).remaining.phone).toBe(1);
  });
});
