import { describe, expect, it } from 'vitest';
import { BotSignals } from '../../src/defence/bot-signals.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('bot signals for the shadow queue', () => {
  it('flags the 6th account from one address, and every one after', () => {
    const signals = new BotSignals();
    const verdicts = Array.from({ length: 8 }, (_, i) => signals.assess({ userId: `u${i}`, ip: '198.51.100.1' }));
    expect(verdicts.slice(0, 5)).toEqual([null, null, null, null, null]);
    expect(verdicts.slice(5)).toEqual([{ reason: 'accounts_per_ip' }, { reason: 'accounts_per_ip' }, { reason: 'accounts_per_ip' }]);
  });

  it('gives an account entering again the verdict it got the first time', () => {
    const signals = new BotSignals();
    for (let i = 0; i < 6; i++) signals.assess({ userId: `u${i}`, ip: '198.51.100.1' });
    expect(signals.assess({ userId: 'u0', ip: '198.51.100.1' })).toBeNull();
    expect(signals.assess({ userId: 'u5', ip: '198.51.100.1' })).toEqual({ reason: 'accounts_per_ip' });
  });

  it('never flags an allowlisted user, nor counts them against the address', () => {
    const signals = new BotSignals();
    for (let i = 0; i < 20; i++) {
      expect(signals.assess({ userId: `staff${i}`, ip: '198.51.100.1', allowlisted: true, failedChecks: 9, challengeIssuedAt: Date.now() })).toBeNull();
    }
    for (let i = 0; i < 5; i++) expect(signals.assess({ userId: `u${i}`, ip: '198.51.100.1' })).toBeNull();
  });

  it('flags the 4th account from one fingerprint across addresses', () => {
    const signals = new BotSignals();
    const verdicts = Array.from({ length: 4 }, (_, i) => signals.assess({ userId: `u${i}`, ip: `203.0.113.${i}`, fingerprint: 'fp-1' }));
    expect(verdicts).toEqual([null, null, null, { reason: 'accounts_per_fingerprint' }]);
  });

  it('forgets accounts after the window', () => {
    const c = clock();
    const signals = new BotSignals({ windowMs: 60_000, now: c.now });
    for (let i = 0; i < 5; i++) signals.assess({ userId: `u${i}`, ip: '198.51.100.1' });
    c.advance(61_000);
    expect(signals.assess({ userId: 'u5', ip: '198.51.100.1' })).toBeNull();
  });

  it('flags an entry faster than a human after the challenge, not a human-paced one', () => {
    const c = clock();
    const signals = new BotSignals({ now: c.now });
    expect(signals.assess({ userId: 'bot', ip: '1.1.1.1', challengeIssuedAt: c.now() - 120 })).toEqual({ reason: 'fast_entry' });
    expect(signals.assess({ userId: 'human', ip: '1.1.1.2', challengeIssuedAt: c.now() - 2_500 })).toBeNull();
  });

  it('flags repeated failed checks', () => {
    const signals = new BotSignals();
    expect(signals.assess({ userId: 'a', ip: '1.1.1.1', failedChecks: 1 })).toBeNull();
    expect(signals.assess({ userId: 'b', ip: '1.1.1.2', failedChecks: 3 })).toEqual({ reason: 'failed_checks' });
  });

  it('stays within bounded memory under 200,000 distinct clients', () => {
    const signals = new BotSignals({ maxTracked: 50_000 });
    for (let i = 0; i < 200_000; i++) {
      signals.assess({ userId: `u${i}`, ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, fingerprint: `fp${i}` });
    }
    const { ips, fingerprints } = signals.tracked;
    expect(ips).toBeLessThanOrEqual(50_000);
    expect(fingerprints).toBeLessThanOrEqual(50_000);
    // The latest addresses are remembered: their 6th account is still caught.
    const recent = '10.3.13.63'; // client 199,999
    for (let i = 0; i < 4; i++) signals.assess({ userId: `extra${i}`, ip: recent });
    expect(signals.assess({ userId: 'extra5', ip: recent })).toEqual({ reason: 'accounts_per_ip' });
  });

  it('keeps counting a farm of thousands of accounts behind one address in bounded space', () => {
    const signals = new BotSignals();
    let flagged = 0;
    for (let i = 0; i < 5_000; i++) if (signals.assess({ userId: `u${i}`, ip: '198.51.100.9' })) flagged++;
    expect(flagged).toBe(4_995);
  });
});
