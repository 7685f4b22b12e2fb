/**
 * SPEC §6, "money is reconciled with the card network, not with memory", on the sandbox gateway:
 * after a restart the hold sweeper settles a reserved order from the ledger's own rows and the
 * gateway's answer about the stored reference — never from what the dead process remembered —
 * and a capture that lands after its order lapsed is refunded at once, with the order saying so.
 *
 * The sandbox's book is process memory, so a restart is shown two ways: a fresh SandboxGateway
 * (it knows nothing: only the ledger's rows can save the order), and the same sandbox behind a
 * node whose lookup-by-key forgot everything (as the Stripe adapter's does across a restart).
 * The sweepers run with a clock an hour ahead, so windows have passed without a test waiting.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HoldSweeper } from '../../src/checkout/hold-sweeper.js';
import type { EngineClock } from '../../src/engine/engine-clock.js';
import type { GatewayOutcome, PaymentGateway } from '../../src/payments/gateway.js';
import { SandboxGateway } from '../../src/payments/sandbox-gateway.js';
import { PaymentService } from '../../src/payments/payment-service.js';
import type { Runtime } from '../../src/runtime.js';
import { admitEveryone, createSale, describeStacksAndCluster, enter, openStack, userToken, type Stack } from '../support/stack.js';

const HOUR = 3_600_000;
const oneUnit = { items: [{ sku: 'phone', name: 'Phone', price_cents: 30_000, currency: 'EUR', quantity: 1, per_user_limit: 1 }] };
/** A clock an hour ahead: every reservation's window (and the sweeper's grace) has passed on it. */
const later = { now: () => Date.now() + HOUR } as unknown as EngineClock;
const sweepLater = (r: Runtime) => new HoldSweeper(r.engine, r.ledger, later, r.monitor, r.checkout, r.payments, r.log).sweep();

/** A node's gateway in front of the shared sandbox: its lookup by key forgot everything; captures wait at a gate while one is set. */
class RestartedView implements PaymentGateway {
  readonly name = 'sandbox';
  gate: Promise<void> | null = null;
  constructor(
    readonly sandbox: SandboxGateway,
    private readonly remembersKeys = false,
  ) {}
  authorize: PaymentGateway['authorize'] = (req) => this.sandbox.authorize(req);
  void: PaymentGateway['void'] = (req) => this.sandbox.void(req);
  charge: PaymentGateway['charge'] = (req) => this.sandbox.charge(req);
  refund: PaymentGateway['refund'] = (req) => this.sandbox.refund(req);
  retrieve: PaymentGateway['retrieve'] = (ref) => this.sandbox.retrieve(ref);
  capture: PaymentGateway['capture'] = async (req) => {
    await this.gate;
    return this.sandbox.capture(req);
  };
  lookup = async (key: string): Promise<GatewayOutcome | null> => (this.remembersKeys ? this.sandbox.lookup(key) : null);
}

describeStacksAndCluster('settling money after a restart (sandbox)', (kind) => {
  let stack: Stack | null;
  const view = new RestartedView(new SandboxGateway({ latencyMs: 1, jitterMs: 1, timeoutMs: 5 }), true);
  beforeAll(async () => {
    stack = await openStack(kind, { workers: false, gateway: view, rateLimits: { buckets: { purchase: [] } } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function shopper(s: Stack, saleId: string) {
    const user = await userToken(s);
    const ticket = await enter(s, saleId, user);
    return { ...user, ticket: ticket.queue_ticket };
  }
  const preAuth = (s: Stack, saleId: string, u: { headers: Record<string, string>; ticket: string }) =>
    s.app.inject({ method: 'POST', url: `/api/flash-sales/${saleId}/pre-auth`, headers: u.headers, payload: { ticket: u.ticket, payment_token: 'tok_visa' } });
  const buy = (s: Stack, saleId: string, u: { headers: Record<string, string>; ticket: string }, key = randomUUID()) =>
    s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${saleId}/purchase`,
      headers: { ...u.headers, 'idempotency-key': key },
      payload: { ticket: u.ticket, sku: 'phone' },
    });
  /** A buyer with a live authorisation whose purchase left a reserved order (no capture attempted). */
  async function reservedOrder(s: Stack) {
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    await admitEveryone(s, sale.id);
    const res = await buy(s, sale.id, u);
    expect(res.json().status).toBe('reserved');
    return { sale, u, order: (await s.ledger.getOrder(res.json().order_id))! };
  }

  it('a fresh gateway that knows nothing: a captured charge in the ledger makes the sweeper confirm the order, not expire it', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const { sale, order } = await reservedOrder(s);
    // The charge went through and was recorded; the node died before the order was confirmed.
    const charge = await s.ledger.insertPayment({
      id: `charge_${order.id}`,
      saleId: sale.id,
      userId: order.userId,
      ticketPlace: 0,
      orderId: order.id,
      kind: 'charge',
      gateway: 'sandbox',
      amountCents: order.amountCents,
      currency: order.currency,
      expiresAt: new Date(Date.now() + HOUR),
    });
    await s.ledger.transitionPayment(charge.id, ['pending'], 'captured', {
      gatewayRef: 'ch_sbx_gone',
      capturedCents: order.amountCents,
      endedReason: 'captured',
    });

    const restarted = (await openStack(kind, { peer: s, workers: false, gateway: new SandboxGateway({ latencyMs: 1, jitterMs: 1 }) }))!;
    try {
      expect(await sweepLater(restarted.runtime)).toBe(0);
      expect(await s.ledger.getOrder(order.id)).toMatchObject({ status: 'confirmed', paymentId: charge.id, refundedCents: 0 });
      expect(await s.engine.getHold(sale.id, order.id)).toBeNull();
      expect((await s.ledger.getSale(sale.id))!.items[0]).toMatchObject({ sold: 1, held: 0 });
    } finally {
      await restarted.close();
    }
  });

  it("a fresh gateway: the authorisation the ledger recorded as captured for the order is trusted too, by the shopper's retry and the sweeper", async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    const authId = (await preAuth(s, sale.id, u)).json().auth_id as string;
    await admitEveryone(s, sale.id);
    view.sandbox.inject({ captureFailuresNext: 1 });
    const key = randomUUID();
    const res = await buy(s, sale.id, u, key);
    expect([res.statusCode, res.json().error.code]).toEqual([503, 'PAYMENT_UNAVAILABLE']);
    const [order] = await s.ledger.listOrders(sale.id, { userId: u.sub });
    // A sweeper of the old node had recorded the capture (and died before the confirmation).
    await s.ledger.transitionPayment(authId, ['authorized'], 'captured', { capturedCents: order.amountCents, orderId: order.id, endedReason: 'captured' });

    const restarted = (await openStack(kind, { peer: s, workers: false, gateway: new SandboxGateway({ latencyMs: 1, jitterMs: 1 }) }))!;
    try {
      // The shopper's retry (same key) finds the capture in the ledger: confirmed, with no gateway call.
      const retry = await buy(restarted, sale.id, u, key);
      expect([retry.statusCode, retry.json().order_id, retry.json().status]).toEqual([201, order.id, 'confirmed']);
      expect(await s.ledger.getOrder(order.id)).toMatchObject({ status: 'confirmed', paymentId: authId });
      expect(await sweepLater(restarted.runtime)).toBe(0);
      expect((await s.ledger.getSale(sale.id))!.items[0]).toMatchObject({ sold: 1, held: 0 });
    } finally {
      await restarted.close();
    }
  });

  it('a capture the ledger never heard of is found by the stored reference: the sweeper confirms, nothing is voided', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    const authId = (await preAuth(s, sale.id, u)).json().auth_id as string;
    await admitEveryone(s, sale.id);
    // The capture happens, its answer is lost, and the node dies: the ledger still says "authorized".
    view.sandbox.inject({ captureTimeoutsNext: 1 });
    expect((await buy(s, sale.id, u)).json().error.code).toBe('PAYMENT_UNAVAILABLE');
    const [order] = await s.ledger.listOrders(sale.id, { userId: u.sub });
    expect(await s.ledger.getPayment(authId)).toMatchObject({ status: 'authorized' });

    // The new process's lookup by key knows nothing (as Stripe's adapter after a restart); the sandbox still has the capture.
    const restarted = (await openStack(kind, { peer: s, workers: false, gateway: new RestartedView(view.sandbox) }))!;
    try {
      await sweepLater(restarted.runtime);
      expect(await s.ledger.getOrder(order.id)).toMatchObject({ status: 'confirmed', paymentId: authId });
      expect(await s.ledger.getPayment(authId)).toMatchObject({ status: 'captured', orderId: order.id, capturedCents: 30_000 });
      await restarted.runtime.voidSweeper.sweep();
      const book = view.sandbox.authorizations().find((a) => a.metadata.payment === authId)!;
      expect(book).toMatchObject({ status: 'captured', captures: 1, voids: 0, refunds: 0 });
    } finally {
      await restarted.close();
    }
  });

  it('a capture that lands after the order expired is refunded at once, and the order view says so', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    const authId = (await preAuth(s, sale.id, u)).json().auth_id as string;
    await admitEveryone(s, sale.id);
    let open!: () => void;
    view.gate = new Promise<void>((resolve) => (open = resolve));
    const purchase = buy(s, sale.id, u);
    // The capture is on its way to the card network while the sweeper, past the window, asks the
    // gateway about the authorisation: not captured (yet), so the order expires.
    let order = (await s.ledger.listOrders(sale.id, { userId: u.sub }))[0];
    for (let i = 0; !order && i < 500; i++) {
      await new Promise((r) => setTimeout(r, 5));
      order = (await s.ledger.listOrders(sale.id, { userId: u.sub }))[0];
    }
    await sweepLater(s.runtime);
    expect((await s.ledger.getOrder(order.id))!.status).toBe('expired');
    view.gate = null;
    open();

    const late = await purchase;
    expect([late.statusCode, late.json().error.code]).toEqual([410, 'PAYMENT_WINDOW_PASSED']);
    expect(late.json()).toMatchObject({ order_id: order.id, order_status: 'expired', refunded_cents: 30_000 });
    const view_ = await s.app.inject({ url: `/api/orders/${order.id}`, headers: u.headers });
    expect(view_.json()).toMatchObject({ status: 'expired', payment_status: 'refunded', refunded_cents: 30_000 });
    expect(await s.ledger.getPayment(authId)).toMatchObject({ status: 'refunded', capturedCents: 30_000, refundedCents: 30_000, orderId: order.id });
    expect(view.sandbox.authorizations().find((a) => a.metadata.payment === authId)).toMatchObject({ status: 'refunded', captures: 1, refunds: 1 });
    // The unit went back to stock when the order expired, and stays there.
    expect((await s.ledger.getSale(sale.id))!.items[0]).toMatchObject({ sold: 0, held: 0 });
  });

  it("the void sweeper never voids a capture it finds at the gateway: an expired order's capture is refunded instead", async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    const authId = (await preAuth(s, sale.id, u)).json().auth_id as string;
    await admitEveryone(s, sale.id);
    view.sandbox.inject({ captureTimeoutsNext: 1 });
    expect((await buy(s, sale.id, u)).json().error.code).toBe('PAYMENT_UNAVAILABLE');
    const [order] = await s.ledger.listOrders(sale.id, { userId: u.sub });
    // The order was ended without asking the gateway (what the old sweeper did), the card held past its cap.
    await s.runtime.checkout.end(order, 'expired');
    await (s.ledger as unknown as { db: { query(sql: string, p: unknown[]): Promise<unknown> } }).db.query(
      `UPDATE payments SET expires_at = now() - interval '1 second' WHERE id = $1`,
      [authId],
    );

    await s.runtime.voidSweeper.sweep();
    expect(await s.ledger.getPayment(authId)).toMatchObject({ status: 'refunded', refundedCents: 30_000, orderId: order.id });
    expect(await s.ledger.getOrder(order.id)).toMatchObject({ status: 'expired', refundedCents: 30_000 });
    expect(view.sandbox.authorizations().find((a) => a.metadata.payment === authId)).toMatchObject({ status: 'refunded', voids: 0, refunds: 1 });
  });

  it('a refund the gateway could not make at once is made by the stray-capture sweep, once', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, oneUnit);
    const u = await shopper(s, sale.id);
    const authId = (await preAuth(s, sale.id, u)).json().auth_id as string;
    await admitEveryone(s, sale.id);
    let open!: () => void;
    view.gate = new Promise<void>((resolve) => (open = resolve));
    const purchase = buy(s, sale.id, u);
    let order = (await s.ledger.listOrders(sale.id, { userId: u.sub }))[0];
    for (let i = 0; !order && i < 500; i++) {
      await new Promise((r) => setTimeout(r, 5));
      order = (await s.ledger.listOrders(sale.id, { userId: u.sub }))[0];
    }
    await sweepLater(s.runtime);
    view.gate = null;
    // The capture lands on the expired order, and the refund meets an outage.
    view.sandbox.inject({ refundFailuresNext: 1 });
    open();
    const late = await purchase;
    expect([late.statusCode, late.json().error.code]).toEqual([410, 'PAYMENT_WINDOW_PASSED']);
    expect(late.json().refunded_cents).toBeUndefined();
    expect(await s.ledger.getPayment(authId)).toMatchObject({ status: 'captured', orderId: order.id });

    // The sweep (its clock past the grace) gives it back; a second finds nothing more to do.
    const sweeper = new PaymentService(s.runtime.ledger, view, later);
    sweeper.useOrders({ order: (id) => s.runtime.checkout.order(id) });
    expect(await sweeper.refundStrays()).toBe(1);
    expect(await sweeper.refundStrays()).toBe(0);
    expect(await s.ledger.getOrder(order.id)).toMatchObject({ status: 'expired', refundedCents: 30_000 });
    expect(view.sandbox.authorizations().find((a) => a.metadata.payment === authId)).toMatchObject({ status: 'refunded', refunds: 1 });
  });
});
