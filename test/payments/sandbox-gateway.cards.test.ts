import { expect, it } from 'vitest';
import type { SandboxGateway, SandboxGatewayOptions } from '../../src/payments/sandbox-gateway.js';
import { paymentRefusal, type GatewayOutcome } from '../../src/payments/gateway.js';
import { describeBooks } from '../support/sandbox-books.js';

let n = 0;
const key = (label: string) => `${label}-${++n}`;
const auth = (gw: SandboxGateway, paymentToken: string, amountCents = 1999) =>
  gw.authorize({ idempotencyKey: key('auth'), paymentToken, amountCents, currency: 'eur' });
const refOf = (o: GatewayOutcome) => {
  if (!o.ok) throw new Error(`expected ok, got ${o.reason}`);
  return o.ref;
};

describeBooks('sandbox gateway: test cards (SPEC §5)', (books) => {
  const fast = (opts: SandboxGatewayOptions = {}) => books.gateway({ latencyMs: 0, jitterMs: 0, ...opts });
  it.each(['tok_visa', '4242424242424242', '4242 4242 4242 4242'])('%s authorises and captures', async (token) => {
    const gw = fast();
    const a = await auth(gw, token);
    expect(a).toMatchObject({ ok: true, amountCents: 1999 });
    const c = await gw.capture({ idempotencyKey: key('cap'), ref: refOf(a), amountCents: 1999 });
    expect(c).toEqual({ ok: true, ref: refOf(a), amountCents: 1999 });
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'captured', captures: 1, capturedCents: 1999 }]);
  });

  it.each(['tok_chargeDeclined', '4000000000000002', 'tok_neverIssued'])('%s is declined at authorisation and at charge', async (token) => {
    const gw = fast();
    expect(await auth(gw, token)).toMatchObject({ ok: false, reason: 'declined' });
    expect(await gw.charge({ idempotencyKey: key('ch'), paymentToken: token, amountCents: 500, currency: 'eur' })).toMatchObject({
      ok: false,
      reason: 'declined',
    });
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'declined', captures: 0 }]);
    expect(await gw.listCharges()).toMatchObject([{ status: 'declined' }]);
  });

  it.each(['tok_insufficientFunds', '4000000000009995'])('%s authorises but fails at capture with insufficient_funds', async (token) => {
    const gw = fast();
    const a = await auth(gw, token);
    expect(a.ok).toBe(true);
    expect(await gw.capture({ idempotencyKey: key('cap'), ref: refOf(a), amountCents: 1999 })).toMatchObject({ ok: false, reason: 'insufficient_funds' });
    // The failed capture ended the authorisation: nothing is held, nothing is left to void.
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'declined', captures: 0 }]);
    expect(await gw.void({ idempotencyKey: key('void'), ref: refOf(a) })).toMatchObject({ ok: false, reason: 'already_ended' });
  });

  it('charge with tok_visa succeeds in one step', async () => {
    const gw = fast();
    const c = await gw.charge({ idempotencyKey: key('ch'), paymentToken: 'tok_visa', amountCents: 4200, currency: 'eur', metadata: { order: 'o1' } });
    expect(c).toMatchObject({ ok: true, amountCents: 4200 });
    expect(await gw.listCharges()).toMatchObject([{ ref: refOf(c), status: 'succeeded', amountCents: 4200, metadata: { order: 'o1' } }]);
  });
});

describeBooks('sandbox gateway: the life of an authorisation', (books) => {
  const fast = (opts: SandboxGatewayOptions = {}) => books.gateway({ latencyMs: 0, jitterMs: 0, ...opts });
  it('a partial capture takes part of the hold and releases the rest', async () => {
    const gw = fast();
    const ref = refOf(await auth(gw, 'tok_visa', 3000));
    expect(await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 1000 })).toEqual({ ok: true, ref, amountCents: 1000 });
    expect(await gw.listAuthorizations()).toMatchObject([{ amountCents: 3000, capturedCents: 1000, status: 'captured' }]);
    // The remainder is gone, not capturable later.
    expect(await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 1000 })).toMatchObject({ ok: false, reason: 'already_ended' });
  });

  it('capturing more than was authorised is a caller bug, not a decline', async () => {
    const gw = fast();
    const ref = refOf(await auth(gw, 'tok_visa', 1000));
    await expect(gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 1001 })).rejects.toThrow(RangeError);
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'authorized', captures: 0 }]);
  });

  it('void after capture is refused with already_ended', async () => {
    const gw = fast();
    const ref = refOf(await auth(gw, 'tok_visa'));
    await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 1999 });
    expect(await gw.void({ idempotencyKey: key('void'), ref })).toMatchObject({ ok: false, reason: 'already_ended' });
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'captured', captures: 1, voids: 0 }]);
  });

  it('capture after void is refused with already_ended', async () => {
    const gw = fast();
    const ref = refOf(await auth(gw, 'tok_visa'));
    expect(await gw.void({ idempotencyKey: key('void'), ref })).toEqual({ ok: true, ref, amountCents: 1999 });
    expect(await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 1999 })).toMatchObject({ ok: false, reason: 'already_ended' });
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'voided', captures: 0, voids: 1 }]);
  });

  it('an unknown ref is not_found', async () => {
    const gw = fast();
    expect(await gw.capture({ idempotencyKey: key('cap'), ref: 'auth_nope', amountCents: 1 })).toMatchObject({ ok: false, reason: 'not_found' });
    expect(await gw.void({ idempotencyKey: key('void'), ref: 'auth_nope' })).toMatchObject({ ok: false, reason: 'not_found' });
  });

  it('an authorisation lapses after authTtlMs: capture says expired', async () => {
    let now = 1_000_000;
    const gw = fast({ authTtlMs: 60_000, now: () => now });
    const ref = refOf(await auth(gw, 'tok_visa'));
    now += 60_000;
    expect(await gw.capture({ idempotencyKey: key('cap'), ref, amountCents: 1999 })).toMatchObject({ ok: false, reason: 'expired' });
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'expired', captures: 0 }]);
  });

  it('a refusal crosses to HTTP as 402 PAYMENT_DECLINED carrying the reason', async () => {
    const gw = fast();
    const o = await auth(gw, 'tok_chargeDeclined');
    if (o.ok) throw new Error('expected a decline');
    const err = paymentRefusal(o);
    expect(err).toMatchObject({ code: 'PAYMENT_DECLINED', status: 402, extra: { reason: 'declined' } });
  });
});
