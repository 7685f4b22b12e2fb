import { describe, expect, it } from 'vitest';
import { LocalWindow } from '../../src/defence/rate-limits.js';
import { TicketSigner } from '../../src/queue/ticket.js';
import { StampedeError } from '../../src/errors.js';

describe('LocalWindow (per-node limits without a timer per key)', () => {
  it('gives each key its points per window, tells how long until the window ends, and starts afresh after it', () => {
    const w = new LocalWindow({ points: 3, durationSec: 1 });
    const t0 = 1_000_000;
    expect([w.take('a', t0), w.take('a', t0 + 10), w.take('a', t0 + 20)]).toEqual([0, 0, 0]);
    expect(w.take('a', t0 + 300)).toBe(700);
    // Another key has its own budget.
    expect(w.take('b', t0 + 300)).toBe(0);
    // A refusal spends nothing: the key is free again exactly when its window ends.
    expect(w.take('a', t0 + 999)).toBe(1);
    expect(w.take('a', t0 + 1000)).toBe(0);
  });

  it('keeps counting a key across a rotation of its generations (a key is never let off early)', () => {
    const w = new LocalWindow({ points: 2, durationSec: 10 });
    const t0 = 5_000_000;
    w.take('other', t0); // the first call sets the rotation 10 s ahead
    // 'a' starts its window just before the rotation; the rotation must not forget it.
    expect(w.take('a', t0 + 9_990)).toBe(0);
    expect(w.take('a', t0 + 10_005)).toBe(0);
    expect(w.take('a', t0 + 10_010)).toBe(9_980);
    // Two rotations later everything is forgotten, and it ended anyway.
    expect(w.take('a', t0 + 40_000)).toBe(0);
  });
});

describe('TicketSigner remembers verified tickets', () => {
  const signer = new TicketSigner('a-ticket-secret-of-enough-length-0123');
  const now = Date.now();
  const ticket = signer.sign({ saleId: 's1', userId: 'u1', place: 7, epoch: 'e1', shadow: false, expiresAt: now + 60_000 });

  it('a remembered ticket is still checked against the sale, the user and the time on every call', () => {
    expect(signer.verify(ticket, 's1', now, 'u1').place).toBe(7);
    const code = (fn: () => unknown) => {
      try {
        fn();
        return 'accepted';
      } catch (err) {
        return (err as StampedeError).code;
      }
    };
    expect(code(() => signer.verify(ticket, 's2', now))).toBe('TICKET_WRONG_SALE');
    expect(code(() => signer.verify(ticket, 's1', now, 'u2'))).toBe('TICKET_WRONG_USER');
    expect(code(() => signer.verify(ticket, 's1', now + 61_000))).toBe('TICKET_EXPIRED');
    // A one-character change to a remembered ticket is a different text: its MAC is checked, and fails.
    const [payload, mac] = ticket.split('.');
    const flipped = `${payload}.${mac.slice(0, -2)}${mac.at(-2) === 'A' ? 'B' : 'A'}${mac.at(-1)}`;
    expect(code(() => signer.verify(flipped, 's1', now))).toBe('TICKET_INVALID');
    // Other spellings of the same MAC bytes (base64url decoding skips stray characters and the last
    // character's spare bits) are refused: one ticket must not come in endless cache entries.
    expect(code(() => signer.verify(`${ticket}😀😀`, 's1', now))).toBe('TICKET_INVALID');
    expect(code(() => signer.verify(`${ticket}=`, 's1', now))).toBe('TICKET_INVALID');
    const last = mac.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sameBits = [...alphabet].find((ch) => ch !== last && Buffer.from(`${mac.slice(0, -1)}${ch}`, 'base64url').equals(Buffer.from(mac, 'base64url')))!;
    expect(sameBits).toBeDefined();
    expect(code(() => signer.verify(`${payload}.${mac.slice(0, -1)}${sameBits}`, 's1', now))).toBe('TICKET_INVALID');
    expect(signer.verify(ticket, 's1', now).userId).toBe('u1');
  });

  it('a shadow ticket stays a shadow ticket when it is answered from memory', () => {
    const shadow = signer.sign({ saleId: 's1', userId: 'bot', place: 9, epoch: 'e1', shadow: true, expiresAt: now + 60_000 });
    expect(signer.verify(shadow, 's1', now).shadow).toBe(true);
    expect(signer.verify(shadow, 's1', now).shadow).toBe(true);
  });
});
