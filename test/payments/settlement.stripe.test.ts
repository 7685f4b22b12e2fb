/**
 * SPEC §6 on the Stripe adapter, against the local STAND-IN for Stripe's API (a test double, not
 * Stripe): a node restarted after a lost reply settles by the PaymentIntent id the ledger stored,
 * never voids an intent Stripe says is captured, and refunds through Stripe once.
 *
 * A restart is a second node on the same engine and ledger with a new StripeGateway, which knows
 * none of the keys the first one sent; the stand-in keeps its intents, as Stripe does. The hold
 * sweeper runs with a clock an hour ahead, so windows have passed without a test waiting.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HoldSweeper } from '../../src/checkout/hold-sweeper.js';
import type { EngineClock } from '../../src/engine/engine-clock.js';
import { PaymentService } from '../../src/payments/payment-service.js';
import { StripeGateway } from '../../src/payments/stripe-gateway.js';
import type { Runtime } from '../../src/runtime.js';
import { adminHeaders, admitEveryone, createSale, describeStacks, enter, openStack, userToken, type Stack } from '../support/stack.js';
import { StripeStandIn } from '../support/stripe-stand-in.js';

const HOUR = 3_600_000;
const oneUnit = { items: [{ sku: 'phone', name: 'Phone', price_cents: 30_000, currency: 'EUR', quantity: 1, per_user_limit: 1 }] };
const later = { now: () => Date.now() + HOUR } as unknown as EngineClock;
const sweepLater = (r: Runtime) => new HoldSweeper(r.engine, r.ledger, later, r.monitor, r.checkout, r.payments, r.log).sweep();

let standIn: StripeStandIn;
const stripe = () => new StripeGateway({ apiKey: 'sk_test_stand_in', host: standIn.host, port: standIn.port, protocol: 'http', timeoutMs: 5000 });
beforeAll(async () => {
  standIn = await new StripeStandIn().start();
});
afterAll(() => standIn.stop());

describeStacks('settling money with Stripe after a restart', (kind) => {
  let stack: Stack | null;
  beforeAll(async () => {
    stack = await openStack(kind, { workers: false, gateway: stripe(), rateLimits: { buckets: { purchase: [] } } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function shopper(s: Stack, saleId: string) {
    const user = await userToken(s);
    const ticket = await enter(s, saleId, user);
    return { ...user, ticket: ticket.queue_ticket };
  }
  const buy = (s: Stack, saleId: string, u: { headers: Record<string, string>; ticket: string }, extra: Record<string, unknown> = {}) =>
    s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${saleId}/purchase`,
      headers: { ...u.headers, 'idempotency-key': randomUUID() },
      payload: { ticket: u.ticket, sku: 'phone', ...extra },
    });
  const cancels = (pi: string) => standIn.calls.filter((c) => c.method === 'POST' && c.path === `/v1/payment_intents/${pi}/cancel`);

  /** A pre-authorised buyer whose capture Stripe made but whose answer was lost: the ledger still says "authorized". */
  async function lostCapture(s: Stack) {
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    const auth = await s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${sale.id}/pre-auth`,
      headers: u.headers,
      payload: { ticket: u.ticket, payment_token: 'pm_card_visa' },
    });
    expect(auth.statusCode).toBe(200);
    await admitEveryone(s, sale.id);
    standIn.failNext(1, { status: 500, after: true });
    const res = await buy(s, sale.id, u);
    expect([res.statusCode, res.json().error.code]).toEqual([503, 'PAYMENT_UNAVAILABLE']);
    const payment = (await s.ledger.getPayment(auth.json().auth_id))!;
    expect(payment.status).toBe('authorized');
    expect(standIn.intent(payment.gatewayRef!)).toMatchObject({ status: 'succeeded', amount_received: 30_000 });
    const [order] = await s.ledger.listOrders(sale.id, { userId: u.sub });
    return { sale, u, order, authId: payment.id, pi: payment.gatewayRef! };
  }

  const restart = async (s: Stack) => (await openStack(kind, { peer: s, workers: false, gateway: stripe() }))!;
  const pastCap = (s: Stack, paymentId: string) =>
    (s.ledger as unknown as { db: { query(sql: string, p: unknown[]): Promise<unknown> } }).db.query(
      `UPDATE payments SET expires_at = now() - interval '1 second' WHERE id = $1`,
      [paymentId],
    );

  it('the restarted node reads the PaymentIntent by its stored id and confirms the order; the intent is never cancelled', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { order, authId, pi } = await lostCapture(s);
    const restarted = await restart(s);
    try {
      await sweepLater(restarted.runtime);
      expect(await s.ledger.getOrder(order.id)).toMatchObject({ status: 'confirmed', paymentId: authId });
      expect(await s.ledger.getPayment(authId)).toMatchObject({ status: 'captured', capturedCents: 30_000, orderId: order.id });
      await pastCap(s, authId);
      await restarted.runtime.voidSweeper.sweep();
      expect(cancels(pi)).toEqual([]);
      expect(standIn.intent(pi)).toMatchObject({ status: 'succeeded' });
      expect(standIn.allRefunds().filter((r) => r.payment_intent === pi)).toEqual([]);
    } finally {
      await restarted.close();
    }
  });

  it('the void sweeper never cancels a captured PaymentIntent: for an order the ledger ended, the capture is recorded and refunded', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { order, authId, pi, u } = await lostCapture(s);
    // The old node ended the order without asking Stripe, and died.
    await s.runtime.checkout.end(order, 'expired');
    const restarted = await restart(s);
    try {
      await pastCap(s, authId);
      await restarted.runtime.voidSweeper.sweep();
      expect(cancels(pi)).toEqual([]);
      expect(standIn.chargeOf(pi)).toMatchObject({ amount_refunded: 30_000, refunded: true });
      expect(await s.ledger.getPayment(authId)).toMatchObject({ status: 'refunded', refundedCents: 30_000, orderId: order.id });
      const view = await restarted.app.inject({ url: `/api/orders/${order.id}`, headers: u.headers });
      expect(view.json()).toMatchObject({ status: 'expired', payment_status: 'refunded', refunded_cents: 30_000 });
      // Swept again: nothing more happens at Stripe.
      await restarted.runtime.voidSweeper.sweep();
      expect(standIn.allRefunds().filter((r) => r.payment_intent === pi)).toHaveLength(1);
    } finally {
      await restarted.close();
    }
  });

  it('a charge whose answer was lost is found after a restart by its key in metadata, and the order confirmed', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    await admitEveryone(s, sale.id);
    standIn.failNext(1, { status: 500, after: true });
    const res = await buy(s, sale.id, u, { payment_token: 'pm_card_visa' });
    expect(res.json().error.code).toBe('PAYMENT_UNAVAILABLE');
    const [order] = await s.ledger.listOrders(sale.id, { userId: u.sub });
    expect(await s.ledger.getPayment(`charge_${order.id}`)).toMatchObject({ status: 'pending', gatewayRef: null });

    const restarted = await restart(s);
    try {
      await sweepLater(restarted.runtime);
      const charge = (await s.ledger.getPayment(`charge_${order.id}`))!;
      expect(charge).toMatchObject({ status: 'captured', capturedCents: 30_000 });
      expect(standIn.intent(charge.gatewayRef!)).toMatchObject({ status: 'succeeded', metadata: { order: order.id, payment: charge.id } });
      expect(await s.ledger.getOrder(order.id)).toMatchObject({ status: 'confirmed', paymentId: charge.id });
    } finally {
      await restarted.close();
    }
  });

  it('a charge that never reached Stripe keeps its order reserved while search may lag behind, then lets it expire', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    await admitEveryone(s, sale.id);
    standIn.failNext(1, { status: 500 });
    expect((await buy(s, sale.id, u, { payment_token: 'pm_card_visa' })).json().error.code).toBe('PAYMENT_UNAVAILABLE');
    const [order] = await s.ledger.listOrders(sale.id, { userId: u.sub });

    const restarted = await restart(s);
    try {
      // Search finds nothing, but the row is younger than search's lag: not known yet, so not expired.
      await sweepLater(restarted.runtime);
      expect((await s.ledger.getOrder(order.id))!.status).toBe('reserved');
      // Once the row is older than the lag, a miss is final.
      const r = restarted.runtime;
      const payments = new PaymentService(r.ledger, r.gateway, later);
      payments.useOrders({ order: (id) => r.checkout.order(id) });
      await new HoldSweeper(r.engine, r.ledger, later, r.monitor, r.checkout, payments, r.log).sweep();
      expect((await s.ledger.getOrder(order.id))!.status).toBe('expired');
      expect(standIn.allIntents().filter((pi) => pi.metadata.order === order.id)).toEqual([]);
    } finally {
      await restarted.close();
    }
  });

  it('the admin refund of a confirmed order goes to Stripe once; asked again it answers the same; the order stays confirmed', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    await admitEveryone(s, sale.id);
    const paid = await buy(s, sale.id, u, { payment_token: 'pm_card_visa' });
    expect(paid.json().status).toBe('confirmed');
    const orderId = paid.json().order_id as string;
    const pi = (await s.ledger.getPayment(`charge_${orderId}`))!.gatewayRef!;

    const first = await s.app.inject({ method: 'POST', url: `/api/admin/orders/${orderId}/refund`, headers: adminHeaders });
    const again = await s.app.inject({ method: 'POST', url: `/api/admin/orders/${orderId}/refund`, headers: adminHeaders });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ order_id: orderId, status: 'confirmed', payment_status: 'refunded', refunded_cents: 30_000 });
    expect([again.statusCode, again.json()]).toEqual([200, first.json()]);
    expect(standIn.allRefunds().filter((r) => r.payment_intent === pi)).toHaveLength(1);
    expect(standIn.calls.filter((c) => c.path === '/v1/refunds' && c.body.payment_intent === pi).map((c) => c.idempotencyKey)).toEqual([
      `refund:charge_${orderId}`,
    ]);
    expect((await s.ledger.getSale(sale.id))!.items[0]).toMatchObject({ sold: 1, held: 0 });
  });
});
