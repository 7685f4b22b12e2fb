/**
 * The port's `retrieve` (what the gateway says about a stored reference now) and `refund`, on
 * the sandbox and on the Stripe adapter against the local STAND-IN for Stripe's API
 * (test/support/stripe-stand-in.ts — a test double, not Stripe). `retrieve` is what settles money
 * after a crash, so it must need nothing the process that made the payment knew.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayUnavailableError, type GatewayOutcome } from '../../src/payments/gateway.js';
import { PacedGateway } from '../../src/payments/pacing.js';
import type { SandboxGateway } from '../../src/payments/sandbox-gateway.js';
import { StripeGateway } from '../../src/payments/stripe-gateway.js';
import { StripeStandIn } from '../support/stripe-stand-in.js';
import { describeBooks } from '../support/sandbox-books.js';

let n = 0;
const key = (label: string) => `${label}-${++n}`;
const refOf = (o: GatewayOutcome) => {
  if (!o.ok) throw new Error(`expected ok, got ${o.reason}: ${o.message}`);
  return o.ref;
};

describeBooks('sandbox gateway: retrieve and refund', (books) => {
  const fast = () => books.gateway({ latencyMs: 0, jitterMs: 0, timeoutMs: 5 });
  const authorize = (gw: SandboxGateway, paymentToken = 'tok_visa', amountCents = 3000) =>
    gw.authorize({ idempotencyKey: key('auth'), paymentToken, amountCents, currency: 'eur', metadata: { payment: 'auth_1' } });

  it('retrieve follows an authorisation from authorized to captured (naming its order) to refunded', async () => {
    const gw = fast();
    const ref = refOf(await authorize(gw));
    expect(await gw.retrieve(ref)).toEqual({
      ref,
      state: 'authorized',
      amountCents: 3000,
      capturedCents: 0,
      refundedCents: 0,
      metadata: { payment: 'auth_1' },
    });
    await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 2000, metadata: { order: 'o-1' } });
    expect(await gw.retrieve(ref)).toMatchObject({ state: 'captured', capturedCents: 2000, refundedCents: 0, metadata: { payment: 'auth_1', order: 'o-1' } });

    const part = await gw.refund({ idempotencyKey: key('refund'), ref, amountCents: 500 });
    expect(part).toMatchObject({ ok: true, amountCents: 500 });
    expect(refOf(part)).not.toBe(ref);
    expect(await gw.retrieve(ref)).toMatchObject({ state: 'captured', refundedCents: 500 });
    expect(await gw.refund({ idempotencyKey: key('refund'), ref, amountCents: 1500 })).toMatchObject({ ok: true, amountCents: 1500 });
    expect(await gw.retrieve(ref)).toMatchObject({ state: 'refunded', capturedCents: 2000, refundedCents: 2000 });
    // Nothing is left to give back.
    expect(await gw.refund({ idempotencyKey: key('refund'), ref, amountCents: 1 })).toMatchObject({ ok: false, reason: 'already_ended' });
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'refunded', captures: 1, refunds: 2, refundedCents: 2000 }]);
  });

  it('retrieve: voided, lapsed and declined authorisations, a charge, and an unknown ref', async () => {
    let now = 1_000_000;
    const gw = books.gateway({ latencyMs: 0, jitterMs: 0, authTtlMs: 1000, now: () => now });
    const voided = refOf(await authorize(gw));
    await gw.void({ idempotencyKey: key('void'), ref: voided });
    const lapsed = refOf(await authorize(gw));
    now += 2000;
    const declined = await authorize(gw, 'tok_chargeDeclined');
    expect(declined.ok).toBe(false);
    const declinedRef = (await gw.listAuthorizations()).find((a) => a.status === 'declined')!.ref;
    const charge = refOf(
      await gw.charge({ idempotencyKey: key('ch'), paymentToken: 'tok_visa', amountCents: 700, currency: 'eur', metadata: { order: 'o-2' } }),
    );

    expect((await gw.retrieve(voided))?.state).toBe('voided');
    expect((await gw.retrieve(lapsed))?.state).toBe('voided');
    expect((await gw.retrieve(declinedRef))?.state).toBe('failed');
    expect(await gw.retrieve(charge)).toEqual({
      ref: charge,
      state: 'captured',
      amountCents: 700,
      capturedCents: 700,
      refundedCents: 0,
      metadata: { order: 'o-2' },
    });
    expect(await gw.retrieve('auth_sbx_unknown')).toBeNull();

    expect(await gw.refund({ idempotencyKey: key('refund'), ref: charge, amountCents: 700 })).toMatchObject({ ok: true, amountCents: 700 });
    expect(await gw.retrieve(charge)).toMatchObject({ state: 'refunded', refundedCents: 700 });
    expect(await gw.listCharges()).toMatchObject([{ status: 'refunded', refundedCents: 700 }]);
  });

  it('a refund of money never captured is already_ended; of an unknown ref, not_found', async () => {
    const gw = fast();
    const ref = refOf(await authorize(gw));
    expect(await gw.refund({ idempotencyKey: key('refund'), ref, amountCents: 100 })).toMatchObject({ ok: false, reason: 'already_ended' });
    expect(await gw.refund({ idempotencyKey: key('refund'), ref: 'ch_sbx_nope', amountCents: 100 })).toMatchObject({ ok: false, reason: 'not_found' });
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'authorized', refunds: 0 }]);
  });

  it('a refund whose reply is lost: lookup sees it, the retry with the same key replays it, money goes back once', async () => {
    const gw = fast();
    const ref = refOf(await authorize(gw));
    await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 3000 });
    const refundKey = key('refund');
    gw.inject({ refundTimeoutsNext: 1 });
    await expect(gw.refund({ idempotencyKey: refundKey, ref, amountCents: 3000 })).rejects.toThrow(GatewayUnavailableError);
    expect(await gw.lookup(refundKey)).toMatchObject({ ok: true, amountCents: 3000 });
    const again = await gw.refund({ idempotencyKey: refundKey, ref, amountCents: 3000 });
    expect(again).toEqual(await gw.lookup(refundKey));
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'refunded', refunds: 1, refundedCents: 3000 }]);

    // A read can fail too; it changes nothing.
    gw.inject({ retrieveFailuresNext: 1 });
    await expect(gw.retrieve(ref)).rejects.toThrow(GatewayUnavailableError);
    expect((await gw.retrieve(ref))?.state).toBe('refunded');
  });

  it('PacedGateway paces refund and retrieve and forwards them', async () => {
    const inner = fast();
    const gw = new PacedGateway(inner, { shared: { ratePerSec: 1000, burst: 50 }, perOperation: { retrieve: { ratePerSec: 1000, burst: 10 } } });
    const ref = refOf(await gw.authorize({ idempotencyKey: key('auth'), paymentToken: 'tok_visa', amountCents: 100, currency: 'eur' }));
    await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 100 });
    expect(await gw.refund({ idempotencyKey: key('refund'), ref, amountCents: 100 })).toMatchObject({ ok: true });
    expect((await gw.retrieve(ref))?.state).toBe('refunded');
    // refund shares the bucket of authorise and capture (3 calls there); retrieve has its own.
    expect(gw.stats()).toMatchObject({ refund: { calls: 3 }, retrieve: { calls: 1 } });
    expect(gw.bucket('refund')).toBe(gw.bucket('capture'));
    expect(gw.bucket('retrieve')).not.toBe(gw.bucket('capture'));
  });
});

describe('StripeGateway against the Stripe stand-in: retrieve and refund', () => {
  let standIn: StripeStandIn;
  const gateway = () => new StripeGateway({ apiKey: 'sk_test_stand_in', host: standIn.host, port: standIn.port, protocol: 'http', timeoutMs: 2000 });
  beforeAll(async () => {
    standIn = await new StripeStandIn().start();
  });
  afterAll(() => standIn.stop());

  const authorize = (gw: StripeGateway, paymentToken = 'pm_card_visa', idempotencyKey = key('auth')) =>
    gw.authorize({ idempotencyKey, paymentToken, amountCents: 3000, currency: 'eur', metadata: { payment: 'auth_9' } });

  it('retrieve reads the intent with its latest charge: authorized, captured for an order, refunded', async () => {
    const gw = gateway();
    const ref = refOf(await authorize(gw));
    expect(await gw.retrieve(ref)).toMatchObject({
      ref,
      state: 'authorized',
      amountCents: 3000,
      capturedCents: 0,
      refundedCents: 0,
      metadata: { payment: 'auth_9' },
    });
    expect(standIn.calls.at(-1)).toMatchObject({ method: 'GET', path: `/v1/payment_intents/${ref}`, body: { expand: { 0: 'latest_charge' } } });

    await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 2500, metadata: { order: 'o-9' } });
    expect(standIn.calls.at(-1)!.body).toMatchObject({ amount_to_capture: '2500', metadata: { order: 'o-9' } });
    expect(await gw.retrieve(ref)).toMatchObject({ state: 'captured', capturedCents: 2500, refundedCents: 0, metadata: { payment: 'auth_9', order: 'o-9' } });

    const refundKey = key('refund');
    const refund = await gw.refund({ idempotencyKey: refundKey, ref, amountCents: 2500 });
    expect(refund).toMatchObject({ ok: true, amountCents: 2500 });
    expect(refOf(refund)).toMatch(/^re_/);
    expect(standIn.calls.at(-1)).toMatchObject({
      method: 'POST',
      path: '/v1/refunds',
      idempotencyKey: refundKey,
      body: { payment_intent: ref, amount: '2500' },
    });
    expect(standIn.chargeOf(ref)).toMatchObject({ amount_captured: 2500, amount_refunded: 2500, refunded: true });
    expect(await gw.retrieve(ref)).toMatchObject({ state: 'refunded', capturedCents: 2500, refundedCents: 2500 });

    // The same key again is Stripe's replay, not a second refund; another key finds nothing left.
    expect(await gw.refund({ idempotencyKey: refundKey, ref, amountCents: 2500 })).toEqual(refund);
    expect(standIn.allRefunds().filter((r) => r.payment_intent === ref)).toHaveLength(1);
    expect(await gw.refund({ idempotencyKey: key('refund'), ref, amountCents: 2500 })).toMatchObject({ ok: false, reason: 'already_ended' });
  });

  it('retrieve: cancelled and lapsed intents are voided, a declined one failed, an unknown one null', async () => {
    const gw = gateway();
    const voided = refOf(await authorize(gw));
    await gw.void({ idempotencyKey: key('void'), ref: voided });
    const lapsed = refOf(await authorize(gw));
    standIn.expire(lapsed);
    await authorize(gw, 'pm_card_chargeDeclined');
    const declined = standIn.allIntents().find((pi) => pi.status === 'requires_payment_method')!.id;
    expect((await gw.retrieve(voided))?.state).toBe('voided');
    expect((await gw.retrieve(lapsed))?.state).toBe('voided');
    expect((await gw.retrieve(declined))?.state).toBe('failed');
    expect(await gw.retrieve('pi_missing')).toBeNull();
  });

  it('a refund of an intent not captured is already_ended; of an unknown intent, not_found', async () => {
    const gw = gateway();
    const ref = refOf(await authorize(gw));
    expect(await gw.refund({ idempotencyKey: key('refund'), ref, amountCents: 100 })).toMatchObject({ ok: false, reason: 'already_ended' });
    expect(await gw.refund({ idempotencyKey: key('refund'), ref: 'pi_missing', amountCents: 100 })).toMatchObject({ ok: false, reason: 'not_found' });
    expect(standIn.intent(ref)).toMatchObject({ status: 'requires_capture' });
  });

  it('a refund whose reply is lost: lookup sees it, the retry replays it; a 500 before Stripe is "don\'t know"', async () => {
    const gw = gateway();
    const ref = refOf(await gw.charge({ idempotencyKey: key('ch'), paymentToken: 'pm_card_visa', amountCents: 900, currency: 'eur' }));
    const refundKey = key('refund');
    standIn.failNext(1, { status: 500 });
    await expect(gw.refund({ idempotencyKey: refundKey, ref, amountCents: 900 })).rejects.toThrow(GatewayUnavailableError);
    expect(await gw.lookup(refundKey)).toBeNull();
    standIn.failNext(1, { status: 500, after: true });
    await expect(gw.refund({ idempotencyKey: refundKey, ref, amountCents: 900 })).rejects.toThrow(GatewayUnavailableError);
    expect(await gw.lookup(refundKey)).toEqual({ ok: true, ref, amountCents: 900 });
    expect(await gw.refund({ idempotencyKey: refundKey, ref, amountCents: 900 })).toMatchObject({ ok: true, amountCents: 900 });
    expect(standIn.chargeOf(ref)).toMatchObject({ amount_refunded: 900 });
    expect(standIn.allRefunds().filter((r) => r.payment_intent === ref)).toHaveLength(1);
  });

  it('after a restart, an authorisation whose reply was lost is found by its key in metadata (search)', async () => {
    const before = gateway();
    const authKey = key('authorize:auth_lost');
    standIn.failNext(1, { status: 500, after: true });
    await expect(authorize(before, 'pm_card_visa', authKey)).rejects.toThrow(GatewayUnavailableError);
    const ref = standIn.allIntents().find((pi) => pi.metadata.stampede_idempotency_key === authKey)!.id;

    const restarted = gateway();
    expect(await restarted.lookup(authKey)).toEqual({ ok: true, ref, amountCents: 3000 });
    expect(standIn.calls.at(-1)).toMatchObject({ method: 'GET', path: '/v1/payment_intents/search' });
    expect(String(standIn.calls.at(-1)!.body.query)).toBe(`metadata['stampede_idempotency_key']:'${authKey}'`);
    expect(await restarted.lookup('authorize:auth_never_sent')).toBeNull();
    // A declined one is found as the decline it was.
    const declinedKey = key('authorize:auth_declined');
    await authorize(before, 'pm_card_chargeDeclined', declinedKey);
    expect(await gateway().lookup(declinedKey)).toMatchObject({ ok: false, reason: 'declined' });
  });
});
