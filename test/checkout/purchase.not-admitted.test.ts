/**
 * A purchase with a ticket far back in line is refused by the node, before the rate limit and the
 * engine: bots holding waiting tickets hammer purchase, and each attempt used to cost the sale's
 * Redis shard three calls. A ticket near the front (within what the engine could have admitted
 * since this node's picture) still goes to the engine, which decides.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createSale, describeStacks, enter, openStack, userToken, type Stack } from '../support/stack.js';

describeStacks('purchase with a waiting ticket', (kind) => {
  let stack: Stack | null;

  beforeAll(async () => {
    // No background loops: nobody is admitted, and the node's picture moves only when refreshed.
    stack = await openStack(kind, { workers: false });
  });

  afterAll(() => stack?.close());

  const buy = (s: Stack, user: { headers: Record<string, string> }, saleId: string, ticket: string) =>
    s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${saleId}/purchase`,
      headers: { ...user.headers, 'idempotency-key': randomUUID() },
      payload: { ticket, sku: 'phone', quantity: 1, payment_token: 'tok_visa' },
    });

  it('far back: refused NOT_ADMITTED by the node, every time, without spending the purchase limit; near the front: the engine decides', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    // One admission a second: at most 2 × (1 × (age + 1 s)) + 10 places can have been reached
    // since the node's picture (watermark 0), so place 40 cannot be admitted yet, place 3 might.
    const sale = await createSale(s, { queue: { mode: 'fifo', admission_rate_per_sec: 1, admitted_ttl_sec: 600, max_active: 1_000_000 } });
    const users = [];
    for (let i = 0; i < 40; i++) users.push(await userToken(s));
    const tickets = [];
    for (const user of users) tickets.push((await enter(s, sale.id, user)).queue_ticket);
    await s.runtime.monitor.refresh(sale.id);
    expect(s.runtime.monitor.get(sale.id)!.snapshot.watermark).toBe(0);

    // Place 40, three times within a second: three refusals, no 429 (the limit is 1 a second).
    const far = [];
    for (let i = 0; i < 3; i++) far.push(await buy(s, users[39], sale.id, tickets[39]));
    expect(far.map((r) => [r.statusCode, r.json().error.code])).toEqual(Array(3).fill([403, 'NOT_ADMITTED']));

    // Place 3: the engine refuses it (not admitted), and the attempt spent the limit, so the next
    // within the second is 429 — it went the whole way.
    const near = [await buy(s, users[2], sale.id, tickets[2]), await buy(s, users[2], sale.id, tickets[2])];
    expect(near.map((r) => [r.statusCode, r.json().error.code])).toEqual([
      [403, 'NOT_ADMITTED'],
      [429, 'RATE_LIMITED'],
    ]);
  });

  it('with queue lanes the reach is S times as far (places have gaps), and a ticket past it is still refused by the node', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, { queue: { mode: 'fifo', admission_rate_per_sec: 1, admitted_ttl_sec: 600, max_active: 1_000_000, shards: 4 } });
    const users = [];
    for (let i = 0; i < 100; i++) users.push(await userToken(s));
    const entered = [];
    for (const user of users) entered.push(await enter(s, sale.id, user));
    await s.runtime.monitor.refresh(sale.id);
    const age = 5; // the most the node trusts its picture for
    const reach = 2 * 4 * Math.ceil(1 * (age + 1)) + 10;
    const last = entered.reduce((a, b) => (b.place > a.place ? b : a));
    expect(last.place).toBeGreaterThan(reach);
    const far = await buy(s, users[entered.indexOf(last)], sale.id, last.queue_ticket);
    expect([far.statusCode, far.json().error.code]).toEqual([403, 'NOT_ADMITTED']);
    // A place in the first two rounds of the lanes: within reach, so the engine decides (and the limit is spent).
    const near = entered.find((t) => t.place <= 8)!;
    const user = users[entered.indexOf(near)];
    const answers = [await buy(s, user, sale.id, near.queue_ticket), await buy(s, user, sale.id, near.queue_ticket)];
    expect(answers.map((r) => r.json().error.code)).toEqual(['NOT_ADMITTED', 'RATE_LIMITED']);
  });
});
