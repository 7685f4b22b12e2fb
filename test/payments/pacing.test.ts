import { afterEach, describe, expect, it, vi } from 'vitest';
import { PacedGateway, TokenBucket } from '../../src/payments/pacing.js';
import { SandboxGateway } from '../../src/payments/sandbox-gateway.js';
import { GatewayUnavailableError } from '../../src/payments/gateway.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('TokenBucket', () => {
  it('50 calls through 100/s with burst 10: the burst goes at once, the rest in FIFO order over 0.4 s (fake clock)', async () => {
    vi.useFakeTimers();
    const bucket = new TokenBucket({ ratePerSec: 100, burst: 10, now: () => Date.now() });
    const start = Date.now();
    const served: Array<{ i: number; at: number }> = [];
    const all = Array.from({ length: 50 }, (_, i) => bucket.take().then(() => served.push({ i, at: Date.now() - start })));
    await vi.advanceTimersByTimeAsync(0);
    expect(served.map((s) => s.i)).toEqual([...Array(10).keys()]);
    expect(bucket.queueLength).toBe(40);
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all(all);
    expect(served.map((s) => s.i)).toEqual([...Array(50).keys()]);
    // 40 tokens short at 100/s: the last one is due at 400 ms (timers round up to whole ms).
    expect(served.at(-1)!.at).toBeGreaterThanOrEqual(400);
    expect(served.at(-1)!.at).toBeLessThan(450);
    expect({ calls: bucket.calls, waited: bucket.waited, queueLength: bucket.queueLength }).toEqual({ calls: 50, waited: 40, queueLength: 0 });
  });

  it('a newcomer does not jump the line even when a token has just arrived', async () => {
    vi.useFakeTimers();
    const bucket = new TokenBucket({ ratePerSec: 10, burst: 1, now: () => Date.now() });
    const order: string[] = [];
    await bucket.take();
    const waiting = bucket.take().then(() => order.push('queued'));
    await vi.advanceTimersByTimeAsync(99); // almost a token...
    const late = bucket.take().then(() => order.push('newcomer'));
    await vi.advanceTimersByTimeAsync(300);
    await Promise.all([waiting, late]);
    expect(order).toEqual(['queued', 'newcomer']);
  });

  it('refuses at once, with GatewayUnavailableError, a wait longer than maxWaitMs', async () => {
    vi.useFakeTimers();
    const bucket = new TokenBucket({ ratePerSec: 10, burst: 2, maxWaitMs: 250, now: () => Date.now() });
    const ok = [bucket.take(), bucket.take(), bucket.take(), bucket.take()]; // 2 now, then 100 ms, 200 ms
    await expect(bucket.take()).rejects.toThrow(GatewayUnavailableError); // would be 300 ms
    expect(bucket.rejected).toBe(1);
    await vi.advanceTimersByTimeAsync(300);
    await Promise.all(ok);
  });

  it('real clock: 50 calls at 100/s, burst 10, all succeed in order and take at least ~0.35 s', async () => {
    const bucket = new TokenBucket({ ratePerSec: 100, burst: 10 });
    const order: number[] = [];
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 50 }, (_, i) => bucket.take().then(() => order.push(i))));
    const elapsed = performance.now() - t0;
    expect(order).toEqual([...Array(50).keys()]);
    // A floor, not a ceiling: the bucket must make callers wait; how fast a busy machine is, is the bench's business.
    expect(elapsed).toBeGreaterThanOrEqual(350);
  });
});

describe('PacedGateway', () => {
  it('paces every call through its bucket and forwards to the gateway it wraps', async () => {
    const inner = new SandboxGateway({ latencyMs: 0, jitterMs: 0 });
    const gw = new PacedGateway(inner, {
      shared: { ratePerSec: 1000, burst: 5 },
      perOperation: { capture: { ratePerSec: 100, burst: 10 } },
    });
    expect(gw.name).toBe('sandbox');
    const auths = await Promise.all(
      Array.from({ length: 50 }, (_, i) => gw.authorize({ idempotencyKey: `a${i}`, paymentToken: 'tok_visa', amountCents: 100, currency: 'eur' })),
    );
    const caps = await Promise.all(
      auths.map((a, i) => (a.ok ? gw.capture({ idempotencyKey: `c${i}`, ref: a.ref, amountCents: 100 }) : Promise.reject(new Error('declined')))),
    );
    expect(caps.every((c) => c.ok)).toBe(true);
    expect(inner.authorizations().every((a) => a.status === 'captured' && a.captures === 1)).toBe(true);
    const stats = gw.stats();
    expect(stats.authorize).toMatchObject({ calls: 50, waited: 45, queueLength: 0 });
    expect(stats.capture).toMatchObject({ calls: 50, waited: 40, queueLength: 0 });
    expect(gw.bucket('void')).toBe(gw.bucket('authorize')); // shared unless given its own
  });
});
