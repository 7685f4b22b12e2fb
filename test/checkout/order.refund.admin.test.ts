/**
 * `POST /api/admin/orders/{id}/refund`: the whole capture of a confirmed or lapsed order goes back
 * once, however often it is asked; the order keeps its status and says it was refunded. Refusals
 * come in the one error shape.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SandboxGateway } from '../../src/payments/sandbox-gateway.js';
import { adminHeaders, admitEveryone, createSale, describeStacks, enter, openStack, userToken, type Stack } from '../support/stack.js';

const twoUnits = { items: [{ sku: 'phone', name: 'Phone', price_cents: 12_000, currency: 'EUR', quantity: 2, per_user_limit: 1 }] };

describeStacks('the admin refund of an order', (kind) => {
  let stack: Stack | null;
  const sandbox = new SandboxGateway({ latencyMs: 1, jitterMs: 1, timeoutMs: 5 });
  beforeAll(async () => {
    stack = await openStack(kind, { workers: false, gateway: sandbox, rateLimits: { buckets: { purchase: [] } } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const refund = (s: Stack, orderId: string, headers: Record<string, string> = adminHeaders) =>
    s.app.inject({ method: 'POST', url: `/api/admin/orders/${orderId}/refund`, headers });

  /** A buyer's purchase in a fresh sale: paid with `payment_token` when given, else left reserved. */
  async function purchase(s: Stack, extra: Record<string, unknown> = {}, preAuth = false) {
    const sale = await createSale(s, twoUnits);
    const user = await userToken(s);
    const ticket = (await enter(s, sale.id, user)).queue_ticket;
    if (preAuth) {
      const res = await s.app.inject({
        method: 'POST',
        url: `/api/flash-sales/${sale.id}/pre-auth`,
        headers: user.headers,
        payload: { ticket, payment_token: 'tok_visa' },
      });
      expect(res.statusCode).toBe(200);
    }
    await admitEveryone(s, sale.id);
    const res = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/purchase`,
      headers: { ...user.headers, 'idempotency-key': randomUUID() },
      payload: { ticket, sku: 'phone', ...extra },
    });
    return { sale, user, res };
  }

  it('refunds a confirmed order once: 200, and the same answer when asked again; the order stays confirmed, its unit sold', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { sale, user, res } = await purchase(s, { payment_token: 'tok_visa' });
    const orderId = res.json().order_id as string;
    expect(res.json().status).toBe('confirmed');

    const first = await refund(s, orderId);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ order_id: orderId, status: 'confirmed', payment_status: 'refunded', refunded_cents: 12_000 });
    const again = await refund(s, orderId);
    expect([again.statusCode, again.json()]).toEqual([200, first.json()]);

    expect(sandbox.charges().filter((c) => c.metadata.order === orderId)).toMatchObject([{ status: 'refunded', refundedCents: 12_000 }]);
    expect(await s.ledger.getPayment(`charge_${orderId}`)).toMatchObject({ status: 'refunded', refundedCents: 12_000, endedReason: 'refunded:admin' });
    expect((await s.ledger.getSale(sale.id))!.items[0]).toMatchObject({ sold: 1, held: 0 });
    // The buyer sees it too.
    const mine = await s.app.inject({ url: `/api/orders/${orderId}`, headers: user.headers });
    expect(mine.json()).toMatchObject({ status: 'confirmed', payment_status: 'refunded', refunded_cents: 12_000 });
  });

  it("refunds a lapsed order's capture the ledger never heard of, found at the gateway by the stored reference", async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    sandbox.inject({ captureTimeoutsNext: 1 });
    const { sale, user, res } = await purchase(s, {}, true);
    expect(res.json().error.code).toBe('PAYMENT_UNAVAILABLE');
    const [order] = await s.ledger.listOrders(sale.id, { userId: user.sub });
    await s.runtime.checkout.end(order, 'expired');

    const answer = await refund(s, order.id);
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toMatchObject({ order_id: order.id, status: 'expired', payment_status: 'refunded', refunded_cents: 12_000 });
    const auth = sandbox.authorizations().find((a) => a.metadata.order === order.id)!;
    expect(auth).toMatchObject({ status: 'refunded', captures: 1, refunds: 1, voids: 0 });
  });

  it('answers 503 PAYMENT_UNAVAILABLE with Retry-After while the gateway does not answer, and the retry refunds once', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { res } = await purchase(s, { payment_token: 'tok_visa' });
    const orderId = res.json().order_id as string;
    sandbox.inject({ refundTimeoutsNext: 1 });
    const down = await refund(s, orderId);
    expect([down.statusCode, down.json().error.code]).toEqual([503, 'PAYMENT_UNAVAILABLE']);
    expect(down.headers['retry-after']).toBeDefined();
    // The refund went through although its answer was lost: the retry, under the same key, gives back nothing more.
    const retry = await refund(s, orderId);
    expect(retry.json()).toMatchObject({ status: 'confirmed', refunded_cents: 12_000 });
    expect(sandbox.charges().find((c) => c.metadata.order === orderId)).toMatchObject({ status: 'refunded', refundedCents: 12_000 });
  });

  it('404 ORDER_NOT_FOUND for no such order; 409 NOTHING_TO_REFUND for a reserved order and for one never paid', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const missing = await refund(s, randomUUID());
    expect([missing.statusCode, missing.json()]).toEqual([404, { error: { code: 'ORDER_NOT_FOUND', message: 'No such order' } }]);

    const { sale, user, res } = await purchase(s);
    expect(res.json().status).toBe('reserved');
    const reserved = await refund(s, res.json().order_id);
    expect([reserved.statusCode, reserved.json().error.code]).toEqual([409, 'NOTHING_TO_REFUND']);
    const [order] = await s.ledger.listOrders(sale.id, { userId: user.sub });
    await s.runtime.checkout.end(order, 'cancelled');
    const unpaid = await refund(s, order.id);
    expect([unpaid.statusCode, unpaid.json().error.code]).toEqual([409, 'NOTHING_TO_REFUND']);
    expect(await s.ledger.getOrder(order.id)).toMatchObject({ status: 'cancelled', refundedCents: 0 });
  });

  it('401 without the admin token, a user token included; nothing is refunded', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { user, res } = await purchase(s, { payment_token: 'tok_visa' });
    const orderId = res.json().order_id as string;
    for (const headers of [{}, user.headers, { authorization: 'Bearer not-the-admin-token-000000' }]) {
      const denied = await refund(s, orderId, headers);
      expect([denied.statusCode, denied.json().error.code]).toEqual([401, 'UNAUTHENTICATED']);
    }
    expect(await s.ledger.getPayment(`charge_${orderId}`)).toMatchObject({ status: 'captured', refundedCents: 0 });
  });
});
