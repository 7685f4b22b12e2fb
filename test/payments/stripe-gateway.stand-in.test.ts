/**
 * The Stripe adapter through the real `stripe` package, against a local STAND-IN for Stripe's
 * API (test/support/stripe-stand-in.ts). It proves the adapter's requests and its reading of
 * Stripe-shaped answers — not Stripe's own behaviour.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StripeGateway } from '../../src/payments/stripe-gateway.js';
import { GatewayUnavailableError, IdempotencyKeyReusedError, type GatewayOutcome } from '../../src/payments/gateway.js';
import { StripeStandIn } from '../support/stripe-stand-in.js';

let standIn: StripeStandIn;
let gw: StripeGateway;
let n = 0;
const key = (label: string) => `${label}-${++n}`;
const refOf = (o: GatewayOutcome) => {
  if (!o.ok) throw new Error(`expected ok, got ${o.reason}: ${o.message}`);
  return o.ref;
};
const authorize = (paymentToken = 'pm_card_visa', amountCents = 1999, idempotencyKey = key('auth')) =>
  gw.authorize({ idempotencyKey, paymentToken, amountCents, currency: 'EUR', metadata: { ticket: 't-1' } });

beforeAll(async () => {
  standIn = await new StripeStandIn().start();
});
afterAll(() => standIn.stop());
beforeEach(() => {
  gw = new StripeGateway({ apiKey: 'sk_test_stand_in', host: standIn.host, port: standIn.port, protocol: 'http', timeoutMs: 300 });
});

describe('StripeGateway against the Stripe stand-in', () => {
  it('authorise creates a confirmed manual-capture PaymentIntent, form-encoded as stripe-node sends it', async () => {
    const idempotencyKey = key('auth');
    const o = await authorize('pm_card_visa', 1999, idempotencyKey);
    expect(o).toMatchObject({ ok: true, amountCents: 1999 });
    const call = standIn.calls.at(-1)!;
    expect(call).toMatchObject({ method: 'POST', path: '/v1/payment_intents', idempotencyKey, status: 200 });
    expect(call.body).toMatchObject({
      amount: '1999',
      currency: 'eur',
      capture_method: 'manual',
      confirm: 'true',
      payment_method: 'pm_card_visa',
      allowed_payment_method_types: { 0: 'card' },
      metadata: { ticket: 't-1', stampede_idempotency_key: idempotencyKey },
    });
    expect(standIn.intent(refOf(o))).toMatchObject({ status: 'requires_capture', amount_capturable: 1999 });
  });

  it('a tok_ token travels as payment_method_data[card][token]', async () => {
    const o = await authorize('tok_visa');
    expect(o.ok).toBe(true);
    expect(standIn.calls.at(-1)!.body).toMatchObject({ payment_method_data: { type: 'card', card: { token: 'tok_visa' } } });
  });

  it('capture takes part of the hold (amount_to_capture) and releases the rest', async () => {
    const ref = refOf(await authorize('pm_card_visa', 3000));
    const idempotencyKey = key('cap');
    expect(await gw.capture({ idempotencyKey, ref, amountCents: 1200 })).toEqual({ ok: true, ref, amountCents: 1200 });
    expect(standIn.calls.at(-1)).toMatchObject({ path: `/v1/payment_intents/${ref}/capture`, idempotencyKey, body: { amount_to_capture: '1200' } });
    expect(standIn.intent(ref)).toMatchObject({ status: 'succeeded', amount_received: 1200, amount_capturable: 0 });
  });

  it('void cancels the intent; void after capture and capture after void are already_ended', async () => {
    const voided = refOf(await authorize());
    expect(await gw.void({ idempotencyKey: key('void'), ref: voided })).toEqual({ ok: true, ref: voided, amountCents: 1999 });
    expect(standIn.intent(voided)).toMatchObject({ status: 'canceled' });
    expect(await gw.capture({ idempotencyKey: key('cap'), ref: voided, amountCents: 1999 })).toMatchObject({ ok: false, reason: 'already_ended' });

    const captured = refOf(await authorize());
    await gw.capture({ idempotencyKey: key('cap'), ref: captured, amountCents: 1999 });
    expect(await gw.void({ idempotencyKey: key('void'), ref: captured })).toMatchObject({ ok: false, reason: 'already_ended' });
  });

  it('a lapsed authorisation (cancelled automatically) is expired; an unknown one is not_found', async () => {
    const ref = refOf(await authorize());
    standIn.expire(ref);
    expect(await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 1999 })).toMatchObject({ ok: false, reason: 'expired' });
    expect(await gw.capture({ idempotencyKey: key('cap'), ref: 'pi_missing', amountCents: 1 })).toMatchObject({ ok: false, reason: 'not_found' });
  });

  it.each([
    ['pm_card_chargeDeclined', 'declined'],
    ['tok_chargeDeclined', 'declined'],
    ['pm_card_chargeDeclinedInsufficientFunds', 'insufficient_funds'],
    ['pm_card_unknown', 'declined'],
  ])('%s is refused as %s (402 card_error → StripeCardError)', async (token, reason) => {
    expect(await authorize(token)).toMatchObject({ ok: false, reason });
    expect(await gw.charge({ idempotencyKey: key('ch'), paymentToken: token, amountCents: 500, currency: 'eur' })).toMatchObject({ ok: false, reason });
  });

  it('a raw card number never leaves for Stripe', async () => {
    const before = standIn.calls.length;
    expect(await authorize('4242424242424242')).toMatchObject({ ok: false, reason: 'declined' });
    expect(standIn.calls.length).toBe(before);
  });

  it('charge creates an automatically captured intent', async () => {
    const o = await gw.charge({ idempotencyKey: key('ch'), paymentToken: 'pm_card_visa', amountCents: 700, currency: 'eur' });
    expect(o).toMatchObject({ ok: true, amountCents: 700 });
    expect(standIn.calls.at(-1)!.body).toMatchObject({ capture_method: 'automatic', confirm: 'true' });
    expect(standIn.intent(refOf(o))).toMatchObject({ status: 'succeeded', amount_received: 700 });
  });

  it('an idempotent retry: the stand-in sees two requests but creates one intent', async () => {
    const idempotencyKey = key('auth');
    const intentsBefore = standIn.allIntents().length;
    const first = await authorize('pm_card_visa', 1999, idempotencyKey);
    const second = await authorize('pm_card_visa', 1999, idempotencyKey);
    expect(second).toEqual(first);
    const calls = standIn.calls.filter((c) => c.idempotencyKey === idempotencyKey);
    expect(calls.map((c) => c.replayed)).toEqual([false, true]);
    expect(standIn.allIntents().length).toBe(intentsBefore + 1);
  });

  it('the same key with other parameters is an idempotency error, not a second intent', async () => {
    const idempotencyKey = key('auth');
    await authorize('pm_card_visa', 1999, idempotencyKey);
    await expect(authorize('pm_card_visa', 2999, idempotencyKey)).rejects.toThrow(IdempotencyKeyReusedError);
  });

  it('a 500 from the stand-in is GatewayUnavailableError; the retry with the same key succeeds', async () => {
    const idempotencyKey = key('auth');
    standIn.failNext(1, { status: 500 });
    await expect(authorize('pm_card_visa', 1999, idempotencyKey)).rejects.toThrow(GatewayUnavailableError);
    expect(await authorize('pm_card_visa', 1999, idempotencyKey)).toMatchObject({ ok: true });
  });

  it('capture whose reply is lost (timeout after success): lookup sees it, the retry replays it, one capture', async () => {
    const ref = refOf(await authorize());
    const idempotencyKey = key('cap');
    standIn.hangNext(1, { ms: 1000, after: true });
    await expect(gw.capture({ idempotencyKey, ref, amountCents: 1999 })).rejects.toThrow(GatewayUnavailableError);
    expect(standIn.intent(ref)).toMatchObject({ status: 'succeeded', amount_received: 1999 });
    expect(await gw.lookup(idempotencyKey)).toEqual({ ok: true, ref, amountCents: 1999 });
    expect(await gw.capture({ idempotencyKey, ref, amountCents: 1999 })).toEqual({ ok: true, ref, amountCents: 1999 });
    const captures = standIn.calls.filter((c) => c.idempotencyKey === idempotencyKey);
    expect(captures.map((c) => c.replayed)).toEqual([false, true]);
  });

  it('lookup: null for a key never sent or a capture not yet applied; throws for a lost create', async () => {
    expect(await gw.lookup('never-sent')).toBeNull();

    const ref = refOf(await authorize());
    const capKey = key('cap');
    standIn.failNext(1, { status: 503 }); // lost before the API: nothing captured
    await expect(gw.capture({ idempotencyKey: capKey, ref, amountCents: 1999 })).rejects.toThrow(GatewayUnavailableError);
    expect(await gw.lookup(capKey)).toBeNull();

    const authKey = key('auth');
    standIn.failNext(1, { status: 500, after: true });
    await expect(authorize('pm_card_visa', 1999, authKey)).rejects.toThrow(GatewayUnavailableError);
    await expect(gw.lookup(authKey)).rejects.toThrow(GatewayUnavailableError);
    // The prescribed reconciliation: retry the original call with the same key.
    expect(await authorize('pm_card_visa', 1999, authKey)).toMatchObject({ ok: true });
    expect(standIn.calls.filter((c) => c.idempotencyKey === authKey).map((c) => c.replayed)).toEqual([false, true]);
  });
});
