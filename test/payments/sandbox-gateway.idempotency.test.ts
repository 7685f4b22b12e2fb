import { expect, it } from 'vitest';
import type { SandboxGatewayOptions } from '../../src/payments/sandbox-gateway.js';
import { GatewayUnavailableError, IdempotencyKeyReusedError, type GatewayOutcome } from '../../src/payments/gateway.js';
import { describeBooks } from '../support/sandbox-books.js';

const refOf = (o: GatewayOutcome) => {
  if (!o.ok) throw new Error(`expected ok, got ${o.reason}`);
  return o.ref;
};

/** What a careful caller does: on "no answer", retry with the same key until there is one. */
let unanswered = 0;
async function untilAnswered<T>(attempt: () => Promise<T>, tries = 50): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof GatewayUnavailableError) || i >= tries) throw err;
      unanswered += 1;
    }
  }
}

/** A seeded generator, so a failing storm can be replayed. */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describeBooks('sandbox gateway: one answer per idempotency key', (books) => {
  const fast = (opts: SandboxGatewayOptions = {}) => books.gateway({ latencyMs: 0, jitterMs: 0, timeoutMs: 5, ...opts });

  it('the same authorise key twice makes one authorisation and returns the first outcome', async () => {
    const gw = fast();
    const req = { idempotencyKey: 'pre-auth:t1', paymentToken: 'tok_visa', amountCents: 1999, currency: 'eur' };
    const first = await gw.authorize(req);
    const second = await gw.authorize(req);
    expect(second).toEqual(first);
    expect(await gw.listAuthorizations()).toHaveLength(1);
  });

  it('the same capture key twice captures once, and both answers are the success', async () => {
    const gw = fast();
    const ref = refOf(await gw.authorize({ idempotencyKey: 'a1', paymentToken: 'tok_visa', amountCents: 1999, currency: 'eur' }));
    const cap = { idempotencyKey: 'cap:o1', ref, amountCents: 1999 };
    const [x, y] = await Promise.all([gw.capture(cap), gw.capture(cap)]);
    expect(x).toEqual({ ok: true, ref, amountCents: 1999 });
    expect(y).toEqual(x);
    expect(await gw.listAuthorizations()).toMatchObject([{ captures: 1, status: 'captured' }]);
  });

  it('a declined answer is replayed too', async () => {
    const gw = fast();
    const req = { idempotencyKey: 'd1', paymentToken: 'tok_chargeDeclined', amountCents: 100, currency: 'eur' };
    expect(await gw.authorize(req)).toMatchObject({ ok: false, reason: 'declined' });
    expect(await gw.authorize({ ...req })).toMatchObject({ ok: false, reason: 'declined' });
    expect(await gw.listAuthorizations()).toHaveLength(1);
  });

  it('reusing a key with other parameters is refused', async () => {
    const gw = fast();
    await gw.authorize({ idempotencyKey: 'k', paymentToken: 'tok_visa', amountCents: 100, currency: 'eur' });
    await expect(gw.authorize({ idempotencyKey: 'k', paymentToken: 'tok_visa', amountCents: 200, currency: 'eur' })).rejects.toThrow(IdempotencyKeyReusedError);
    expect(await gw.listAuthorizations()).toHaveLength(1);
  });

  it('capture times out after succeeding; the retry with the same key captures exactly once', async () => {
    const gw = fast();
    const ref = refOf(await gw.authorize({ idempotencyKey: 'a2', paymentToken: 'tok_visa', amountCents: 1999, currency: 'eur' }));
    gw.inject({ captureTimeoutsNext: 1 });
    const cap = { idempotencyKey: 'cap:o2', ref, amountCents: 1999 };
    await expect(gw.capture(cap)).rejects.toThrow(GatewayUnavailableError);
    // The money moved although the caller heard nothing; lookup and a retry both say so.
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'captured', captures: 1 }]);
    expect(await gw.lookup('cap:o2')).toEqual({ ok: true, ref, amountCents: 1999 });
    expect(await gw.capture(cap)).toEqual({ ok: true, ref, amountCents: 1999 });
    expect(await gw.listAuthorizations()).toMatchObject([{ captures: 1 }]);
  });

  it('a failure before the processor leaves the key unseen: lookup is null and the retry performs it', async () => {
    const gw = fast();
    const ref = refOf(await gw.authorize({ idempotencyKey: 'a3', paymentToken: 'tok_visa', amountCents: 500, currency: 'eur' }));
    gw.inject({ voidFailuresNext: 1 });
    await expect(gw.void({ idempotencyKey: 'void:a3', ref })).rejects.toThrow(GatewayUnavailableError);
    expect(await gw.lookup('void:a3')).toBeNull();
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'authorized' }]);
    expect(await gw.void({ idempotencyKey: 'void:a3', ref })).toMatchObject({ ok: true });
    expect(await gw.listAuthorizations()).toMatchObject([{ status: 'voided', voids: 1 }]);
  });

  it('faults can be switched on and off at runtime', async () => {
    const gw = fast();
    gw.faults = { failureRate: 1 };
    await expect(gw.charge({ idempotencyKey: 'c1', paymentToken: 'tok_visa', amountCents: 100, currency: 'eur' })).rejects.toThrow(GatewayUnavailableError);
    gw.faults = { failureRate: 0 };
    expect(await gw.charge({ idempotencyKey: 'c1', paymentToken: 'tok_visa', amountCents: 100, currency: 'eur' })).toMatchObject({ ok: true });
    expect((await gw.listCharges()).filter((c) => c.status === 'succeeded')).toHaveLength(1);
  });

  it('under a storm of lost answers, every authorisation ends and none is captured twice', async () => {
    const gw = fast({ random: mulberry32(7), failureRate: 0.3, timeoutRate: 0.1 });
    unanswered = 0;
    const buyers = Array.from({ length: 200 }, (_, i) => i);
    await Promise.all(
      buyers.map(async (i) => {
        const a = await untilAnswered(() => gw.authorize({ idempotencyKey: `auth:${i}`, paymentToken: 'tok_visa', amountCents: 1000, currency: 'eur' }));
        const ref = refOf(a);
        // Winners (even) are captured, losers voided; each retried with its one key, several times
        // over to mimic a client that also retries on success.
        for (let r = 0; r < 3; r++) {
          const o =
            i % 2 === 0
              ? await untilAnswered(() => gw.capture({ idempotencyKey: `cap:${i}`, ref, amountCents: 1000 }))
              : await untilAnswered(() => gw.void({ idempotencyKey: `void:${i}`, ref }));
          expect(o).toMatchObject({ ok: true, ref });
        }
      }),
    );
    expect(unanswered).toBeGreaterThan(100); // the storm really blew
    const auths = await gw.listAuthorizations();
    expect(auths).toHaveLength(200);
    expect(auths.filter((a) => a.status === 'authorized')).toEqual([]);
    expect(auths.filter((a) => a.captures > 1 || a.voids > 1 || a.captures + a.voids !== 1)).toEqual([]);
    expect(auths.filter((a) => a.status === 'captured')).toHaveLength(100);
  });
});
