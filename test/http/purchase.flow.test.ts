import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { admitEveryone, createSale, describeStacks, enter, openStack, userToken, type Stack } from '../support/stack.js';

describeStacks('a shopper enters, is admitted and buys', (kind) => {
  let stack: Stack | null;
  beforeAll(async () => {
    stack = await openStack(kind);
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('goes from entering the queue to a confirmed order, and a retry returns the same order', async (ctx) => {
    if (!stack) return ctx.skip();
    const sale = await createSale(stack);
    const user = await userToken(stack);
    const ticket = await enter(stack, sale.id, user);
    expect(ticket.place).toBe(1);
    expect(ticket.status).toBe('waiting');
    expect(await enter(stack, sale.id, user)).toMatchObject({ place: 1 });

    await admitEveryone(stack, sale.id);
    const status = await stack.app.inject({ url: `/api/flash-sales/${sale.id}/status?ticket=${encodeURIComponent(ticket.queue_ticket)}` });
    expect(status.json()).toMatchObject({ status: 'admitted' });
    expect(status.json().admission_pass).toMatch(/^ey/);

    const auth = await stack.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/pre-auth`,
      headers: user.headers,
      payload: { ticket: ticket.queue_ticket, payment_token: 'tok_visa' },
    });
    expect(auth.statusCode).toBe(200);
    expect(auth.json()).toMatchObject({ amount_cents: 50_000, status: 'authorized' });

    const key = randomUUID();
    const buy = () =>
      stack!.app.inject({
        method: 'POST',
        url: `/api/flash-sales/${sale.id}/purchase`,
        headers: { ...user.headers, 'idempotency-key': key },
        payload: { ticket: ticket.queue_ticket, sku: 'phone', quantity: 1 },
      });
    const first = await buy();
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({ status: 'confirmed', sku: 'phone', quantity: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const again = await buy();
    expect(again.statusCode).toBe(201);
    expect(again.json().order_id).toBe(first.json().order_id);

    const order = await stack.runtime.ledger.getOrder(first.json().order_id);
    expect(order?.status).toBe('confirmed');
    const auths = stack.gateway.authorizations();
    expect(auths).toHaveLength(1);
    expect(auths[0]).toMatchObject({ status: 'captured', captures: 1, capturedCents: 50_000 });
  });

  it('a double click (two requests, one key, rate limits on) gets the same first answer twice, not a 429', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s);
    const user = await userToken(s);
    const ticket = await enter(s, sale.id, user);
    await admitEveryone(s, sale.id);
    const key = randomUUID();
    const click = () =>
      s.app.inject({
        method: 'POST',
        url: `/api/flash-sales/${sale.id}/purchase`,
        headers: { ...user.headers, 'idempotency-key': key },
        payload: { ticket: ticket.queue_ticket, sku: 'phone', payment_token: 'tok_visa' },
      });
    const first = await click();
    const [second, third] = await Promise.all([click(), click()]);
    expect([first.statusCode, second.statusCode, third.statusCode]).toEqual([201, 201, 201]);
    expect(new Set([first, second, third].map((r) => r.json().order_id)).size).toBe(1);
    // A fresh key within the same second is a new attempt, and is limited.
    const fresh = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...user.headers, 'idempotency-key': randomUUID() },
      payload: { ticket: ticket.queue_ticket, sku: 'phone' },
    });
    expect([fresh.statusCode, fresh.json().error.code]).toEqual([429, 'RATE_LIMITED']);
  });

  it('once sold out, losers are told before their body is read; the buyer still gets their order back; no token is still 401', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, { items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity: 1, per_user_limit: 1 }] });
    const [buyer, loser] = [await userToken(s), await userToken(s)];
    const tickets = [await enter(s, sale.id, buyer), await enter(s, sale.id, loser)];
    await admitEveryone(s, sale.id);
    const buy = (user: typeof buyer, payload: unknown, key = 'k-1', headers: Record<string, string> = {}) =>
      s.app.inject({
        method: 'POST',
        url: `/api/flash-sales/${sale.id}/purchase`,
        headers: { ...user.headers, 'idempotency-key': key, ...headers },
        payload: payload as object,
      });
    const won = await buy(buyer, { ticket: tickets[0].queue_ticket, sku: 'phone', payment_token: 'tok_visa' });
    expect(won.statusCode).toBe(201);
    await s.runtime.monitor.refresh(sale.id);
    expect(s.runtime.monitor.get(sale.id)?.status).toBe('sold_out');

    // Valid, malformed and unparsable bodies alike: 409 sold_out, in the one error shape.
    for (const payload of [{ ticket: tickets[1].queue_ticket, sku: 'phone' }, { nonsense: true }]) {
      const r = await buy(loser, payload);
      expect([r.statusCode, r.json()]).toEqual([409, { status: 'sold_out', error: { code: 'SOLD_OUT', message: expect.any(String) } }]);
    }
    const garbled = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...loser.headers, 'content-type': 'application/json', 'idempotency-key': 'x' },
      payload: '{not json',
    });
    expect([garbled.statusCode, garbled.json().error.code]).toEqual([409, 'SOLD_OUT']);
    // The winner replaying their key is not a loser: same order back.
    await new Promise((r) => setTimeout(r, 1100));
    const replay = await buy(buyer, { ticket: tickets[0].queue_ticket, sku: 'phone', payment_token: 'tok_visa' });
    expect([replay.statusCode, replay.json().order_id]).toEqual([201, won.json().order_id]);
    // Who asks still has to say who they are.
    const anonymous = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { 'idempotency-key': 'y' },
      payload: { ticket: 't', sku: 'phone' },
    });
    expect([anonymous.statusCode, anonymous.json().error.code]).toEqual([401, 'UNAUTHENTICATED']);
  });
});
