/** Tickets are the waiting room's currency: forged, expired, borrowed or misdirected ones are refused, each with its own code. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TicketSigner } from '../../src/queue/ticket.js';
import { admitEveryone, createSale, describeStacks, enter, openStack, userToken, type Stack } from '../support/stack.js';

describeStacks('hostile tickets', (kind) => {
  let stack: Stack | null;
  // Many refusals from one user in a second: the purchase rate limit would answer first.
  // No background admission: whether a ticket is admitted is this file's to decide (admitEveryone),
  // or a loaded machine lets the controller admit one between two steps of a test.
  beforeAll(async () => {
    stack = await openStack(kind, { rateLimits: { buckets: { purchase: [] } }, workers: false });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const purchase = (s: Stack, saleId: string, headers: Record<string, string>, ticket: string) =>
    s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${saleId}/purchase`,
      headers: { ...headers, 'idempotency-key': randomUUID() },
      payload: { ticket, sku: 'phone' },
    });
  const status = (s: Stack, saleId: string, ticket: string) => s.app.inject({ url: `/api/flash-sales/${saleId}/status?ticket=${encodeURIComponent(ticket)}` });

  it('refuses forged, expired, other-user and other-sale tickets with distinct codes', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s);
    const other = await createSale(s);
    const alice = await userToken(s);
    const mallory = await userToken(s);
    const t = await enter(s, sale.id, alice);
    await admitEveryone(s, sale.id);

    // Forged: a place changed in the payload, the MAC kept.
    const [payload, mac] = t.queue_ticket.split('.');
    const fields = JSON.parse(Buffer.from(payload, 'base64url').toString());
    fields[3] = 0;
    const tampered = `${Buffer.from(JSON.stringify(fields)).toString('base64url')}.${mac}`;
    // Signed with a key that is not ours.
    const foreign = new TicketSigner('another-secret-entirely-0123456789abcdef').sign({
      saleId: sale.id,
      userId: alice.sub,
      place: 1,
      epoch: fields[4],
      expiresAt: Date.now() + 60_000,
      shadow: false,
    });
    // Ours, but past its end.
    const expired = s.runtime.queue['tickets'].sign({
      saleId: sale.id,
      userId: alice.sub,
      place: 1,
      epoch: fields[4],
      expiresAt: Date.now() - 1000,
      shadow: false,
    });

    const codes = async (ticket: string, headers = alice.headers, saleId = sale.id) => {
      const r = await purchase(s, saleId, headers, ticket);
      return [r.statusCode, r.json().error?.code];
    };
    expect(await codes(tampered)).toEqual([401, 'TICKET_INVALID']);
    expect(await codes(foreign)).toEqual([401, 'TICKET_INVALID']);
    expect(await codes('garbage')).toEqual([401, 'TICKET_INVALID']);
    expect(await codes(`${payload}.`)).toEqual([401, 'TICKET_INVALID']);
    expect(await codes(expired)).toEqual([401, 'TICKET_EXPIRED']);
    expect(await codes(t.queue_ticket, mallory.headers)).toEqual([403, 'TICKET_WRONG_USER']);
    expect(await codes(t.queue_ticket, alice.headers, other.id)).toEqual([403, 'TICKET_WRONG_SALE']);

    expect((await status(s, sale.id, tampered)).json().error.code).toBe('TICKET_INVALID');
    expect((await status(s, other.id, t.queue_ticket)).json().error.code).toBe('TICKET_WRONG_SALE');
    expect((await status(s, sale.id, expired)).json().error.code).toBe('TICKET_EXPIRED');
    // The real ticket still works after all that.
    expect((await purchase(s, sale.id, alice.headers, t.queue_ticket)).statusCode).toBe(201);
  });

  it('a purchase without a user token is 401 and without an idempotency key is 400', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s);
    const alice = await userToken(s);
    const t = await enter(s, sale.id, alice);
    const noAuth = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { 'idempotency-key': 'k' },
      payload: { ticket: t.queue_ticket, sku: 'phone' },
    });
    expect([noAuth.statusCode, noAuth.json().error.code]).toEqual([401, 'UNAUTHENTICATED']);
    const badJwt = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { authorization: 'Bearer abc.def.ghi', 'idempotency-key': 'k' },
      payload: { ticket: t.queue_ticket, sku: 'phone' },
    });
    expect([badJwt.statusCode, badJwt.json().error.code]).toEqual([401, 'UNAUTHENTICATED']);
    const noKey = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: alice.headers,
      payload: { ticket: t.queue_ticket, sku: 'phone' },
    });
    expect([noKey.statusCode, noKey.json().error.code]).toEqual([400, 'IDEMPOTENCY_KEY_REQUIRED']);
    const notAdmitted = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...alice.headers, 'idempotency-key': 'k2' },
      payload: { ticket: t.queue_ticket, sku: 'phone' },
    });
    expect([notAdmitted.statusCode, notAdmitted.json().error.code]).toEqual([403, 'NOT_ADMITTED']);
    // None of it leaks a stack trace.
    for (const r of [noAuth, badJwt, noKey, notAdmitted]) expect(r.body).not.toMatch(/at .*\.ts:\d+/);
  });
});
