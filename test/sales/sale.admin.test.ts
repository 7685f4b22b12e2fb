/** The admin API: each bad field gets a 4xx with a stable code; the lifecycle moves by the engine's clock. */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ErrorCatalogue } from '../../src/errors.js';
import { adminHeaders, admitEveryone, createSale, describeStacks, enter, openStack, saleBody, userToken, type Stack } from '../support/stack.js';

describeStacks('sale administration', (kind) => {
  let stack: Stack | null;
  beforeAll(async () => {
    stack = await openStack(kind);
  });
  afterAll(async () => {
    await stack?.close();
  });

  const create = (s: Stack, body: unknown, headers: Record<string, string> = adminHeaders) =>
    s.app.inject({ method: 'POST', url: '/api/admin/flash-sales', headers, payload: body as object });
  const item = { sku: 'a', name: 'A', price_cents: 100, currency: 'EUR', quantity: 10 };

  it.each([
    ['missing name', { name: undefined }, 400, 'VALIDATION_FAILED', 'body/name'],
    ['bad start', { starts_at: 'tomorrow' }, 400, 'VALIDATION_FAILED', 'body/starts_at'],
    ['negative quantity', { items: [{ ...item, quantity: -1 }] }, 400, 'VALIDATION_FAILED', 'body/items/0/quantity'],
    ['fractional price', { items: [{ ...item, price_cents: 1.5 }] }, 400, 'VALIDATION_FAILED', 'body/items/0/price_cents'],
    ['bad currency', { items: [{ ...item, currency: 'euro' }] }, 400, 'VALIDATION_FAILED', 'body/items/0/currency'],
    ['bad sku', { items: [{ ...item, sku: 'a b' }] }, 400, 'VALIDATION_FAILED', 'body/items/0/sku'],
    ['no items', { items: [] }, 400, 'VALIDATION_FAILED', 'body/items'],
    ['unknown queue mode', { queue: { mode: 'lottery' } }, 400, 'VALIDATION_FAILED', 'body/queue/mode'],
    ['zero admission rate', { queue: { admission_rate_per_sec: 0 } }, 400, 'VALIDATION_FAILED', 'body/queue/admission_rate_per_sec'],
    ['unknown field', { colour: 'red' }, 400, 'VALIDATION_FAILED', 'body/colour'],
    ['end before start', { duration_sec: undefined, ends_at: new Date(Date.now() - 3_600_000).toISOString() }, 422, 'INVALID_SALE', 'ends_at'],
    ['both end and duration', { ends_at: new Date(Date.now() + 3_600_000).toISOString() }, 422, 'INVALID_SALE', 'ends_at'],
    ['duplicate sku', { items: [item, item] }, 422, 'INVALID_SALE', 'items/1/sku'],
    ['per-order over per-user', { items: [{ ...item, per_user_limit: 1, max_per_order: 2 }] }, 422, 'INVALID_SALE', 'items/0/max_per_order'],
  ])('%s is refused', async (_title, override, status, code, field) => {
    if (!stack) return;
    const res = await create(stack, saleBody(override));
    expect(res.statusCode).toBe(status);
    expect(res.json().error).toMatchObject({ code, field });
  });

  it('without the admin token nothing is created', async (ctx) => {
    if (!stack) return ctx.skip();
    const res = await create(stack, saleBody(), { authorization: 'Bearer nope' });
    expect([res.statusCode, res.json().error.code]).toEqual([401, 'UNAUTHENTICATED']);
    const none = await create(stack, saleBody(), {});
    expect(none.statusCode).toBe(401);
  });

  it('creates, reads, changes before the start, lists publicly and cancels', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const later = new Date(Date.now() + 600_000).toISOString();
    const sale = await createSale(s, {
      starts_at: later,
      items: [
        { ...item, quantity: 5 },
        { ...item, sku: 'b', quantity: 7 },
      ],
    });
    expect(sale).toMatchObject({
      status: 'scheduled',
      items: [
        { sku: 'a', remaining: 5 },
        { sku: 'b', remaining: 7 },
      ],
    });

    const patched = await s.app.inject({
      method: 'PATCH',
      url: `/api/admin/flash-sales/${sale.id}`,
      headers: adminHeaders,
      payload: { items: [{ ...item, quantity: 9 }] },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().items).toMatchObject([{ sku: 'a', quantity: 9, remaining: 9 }]);

    const pub = await s.app.inject({ url: `/api/flash-sales/${sale.id}` });
    expect(pub.statusCode).toBe(200);
    expect(pub.headers['cache-control']).toMatch(/max-age/);
    expect(Math.abs(Date.parse(pub.json().server_time) - Date.now())).toBeLessThan(2000);
    expect(pub.json().items[0]).not.toHaveProperty('sold');
    const inv = await s.app.inject({ url: `/api/flash-sales/${sale.id}/inventory` });
    expect(inv.json()).toMatchObject({ items: [{ sku: 'a', remaining: 9 }], sold_out: false });

    const cancelled = await s.app.inject({ method: 'POST', url: `/api/admin/flash-sales/${sale.id}/cancel`, headers: adminHeaders });
    expect(cancelled.json().status).toBe('cancelled');
    const after = await s.app.inject({ method: 'PATCH', url: `/api/admin/flash-sales/${sale.id}`, headers: adminHeaders, payload: { name: 'x' } });
    expect([after.statusCode, after.json().error.code]).toEqual([410, 'SALE_CANCELLED']);
    expect((await s.app.inject({ url: '/api/admin/flash-sales/00000000-0000-0000-0000-000000000000', headers: adminHeaders })).json().error.code).toBe(
      'SALE_NOT_FOUND',
    );
  });

  it('a cancel that stopped after the ledger is finished by the next one: engine told, holds ended, cards voided', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s);
    const [holder, reserver] = await Promise.all([userToken(s), userToken(s)]);
    const [holderTicket, reserverTicket] = [await enter(s, sale.id, holder), await enter(s, sale.id, reserver)];
    await admitEveryone(s, sale.id);
    // One waits with an authorised card; the other holds a unit with payment still owed.
    const auth = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/pre-auth`,
      headers: holder.headers,
      payload: { ticket: holderTicket.queue_ticket, payment_token: 'tok_visa' },
    });
    expect(auth.statusCode).toBe(200);
    const reserved = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...reserver.headers, 'idempotency-key': randomUUID() },
      payload: { ticket: reserverTicket.queue_ticket, sku: 'phone', quantity: 1 },
    });
    expect([reserved.statusCode, reserved.json().status]).toEqual([201, 'reserved']);

    // The first cancel got as far as the ledger and died: the engine still sells.
    await s.runtime.ledger.cancelSale(sale.id);
    expect((await s.runtime.engine.snapshot(sale.id, 0)).cancelled).toBe(false);

    const again = await s.app.inject({ method: 'POST', url: `/api/admin/flash-sales/${sale.id}/cancel`, headers: adminHeaders });
    expect([again.statusCode, again.json().status]).toEqual([200, 'cancelled']);
    expect((await s.runtime.engine.snapshot(sale.id, 0)).cancelled).toBe(true);
    expect((await s.runtime.ledger.getOrder(reserved.json().order_id))?.status).toBe('cancelled');
    expect((await s.runtime.ledger.getPayment(auth.json().auth_id))?.status).toBe('voided');
    const late = await userToken(s);
    const refused = await s.app.inject({ method: 'POST', url: `/api/flash-sales/${sale.id}/enter-queue`, headers: late.headers, payload: {} });
    expect([refused.statusCode, refused.json().error.code]).toEqual([410, 'SALE_CANCELLED']);
  });

  it('refuses changes once the sale has started', async (ctx) => {
    if (!stack) return ctx.skip();
    const sale = await createSale(stack);
    const res = await stack.app.inject({ method: 'PATCH', url: `/api/admin/flash-sales/${sale.id}`, headers: adminHeaders, payload: { name: 'Renamed' } });
    expect([res.statusCode, res.json().error.code]).toEqual([409, 'SALE_STARTED']);
  });
});

it('every error code is documented in docs/errors.md, and every documented code exists', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]));
  expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(Object.entries(ErrorCatalogue).map(([code, e]) => [code, e.status])));
});
