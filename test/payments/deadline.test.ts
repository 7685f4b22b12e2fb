/**
 * SPEC §6: a card network that does not answer is given up on at the deadline (503 to the
 * shopper), and the late call's work is found again with the same key.
 */
import { expect, it } from 'vitest';
import { DeadlineGateway } from '../../src/payments/deadline.js';
import { GatewayUnavailableError } from '../../src/payments/gateway.js';
import { describeBooks } from '../support/sandbox-books.js';

describeBooks('a deadline on the card network', (books) => {
  it('a call the network sits on fails as "unavailable" at the deadline; the same key then replays what the network did', async () => {
    const network = books.gateway({ latencyMs: 0, jitterMs: 0, timeoutMs: 2000 });
    const gateway = new DeadlineGateway(network, 50);
    expect(gateway.name).toBe('sandbox');
    // The network does the work, then sits on the answer for 2 s (a "timeout after success").
    network.inject({ authorizeTimeoutsNext: 1 });
    const req = { idempotencyKey: 'authorize:late', paymentToken: 'tok_visa', amountCents: 500, currency: 'eur' };
    const first = gateway.authorize(req);
    await expect(first).rejects.toBeInstanceOf(GatewayUnavailableError);
    await expect(first).rejects.toThrow(/within 50 ms/);
    // Asked again with the key, once the network answers: the authorisation it made, not a second one.
    let again = await gateway.authorize(req).catch(() => null);
    for (let i = 0; i < 100 && !again; i++) {
      await new Promise((r) => setTimeout(r, 50));
      again = await gateway.authorize(req).catch(() => null);
    }
    expect(again).toMatchObject({ ok: true, amountCents: 500 });
    const seen = await gateway.lookup('authorize:late');
    expect(seen).toMatchObject({ ok: true, ref: (again as { ref: string }).ref });
  });

  it('an answer within the deadline passes through untouched, refusals included', async () => {
    const gateway = new DeadlineGateway(books.gateway({ latencyMs: 0, jitterMs: 0 }), 1000);
    expect(await gateway.authorize({ idempotencyKey: 'a1', paymentToken: 'tok_chargeDeclined', amountCents: 100, currency: 'eur' })).toMatchObject({
      ok: false,
      reason: 'declined',
    });
  });
});
