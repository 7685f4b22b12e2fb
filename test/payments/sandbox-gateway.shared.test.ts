/**
 * The sandbox's book in Redis is one card network for every process: two SandboxGateway
 * instances, each on its own connection (as two nodes, or two worker processes, would have), on
 * one key prefix. What one process authorised the other captures; every transition is atomic
 * across them — one authorisation per idempotency key, one capture per authorisation, however
 * the calls race.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedis, untilReady } from '../../src/engine/redis/redis-engine.js';
import { GatewayUnavailableError, IdempotencyKeyReusedError, type GatewayOutcome } from '../../src/payments/gateway.js';
import { RedisSandboxBook, SANDBOX_RECORD_TTL_MS } from '../../src/payments/redis-sandbox-book.js';
import { SandboxGateway } from '../../src/payments/sandbox-gateway.js';
import { redisTestEngine, type RedisTestEngine } from '../support/redis.js';

const ROUNDS = 40;
let n = 0;
const key = (label: string) => `${label}-${++n}`;
const refOf = (o: GatewayOutcome) => {
  if (!o.ok) throw new Error(`expected ok, got ${o.reason}: ${o.message}`);
  return o.ref;
};
/** Cluster's rule: the part between the first `{` and the first `}` after it, if not empty. */
const hashTag = (k: string) => /\{([^}]+)\}/.exec(k)?.[1];

describe('the sandbox book in Redis, shared by two processes', () => {
  let redis: RedisTestEngine | null = null;
  const clients: Redis[] = [];
  let a: SandboxGateway;
  let b: SandboxGateway;
  let prefix: string;

  beforeAll(async () => {
    redis = await redisTestEngine();
    if (!redis) return;
    prefix = `${redis.prefix}:shared`;
    for (let i = 0; i < 2; i++) {
      const client = createRedis({ url: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' }) as Redis;
      await untilReady(client);
      clients.push(client);
    }
    // A little jitter, so the two processes' calls interleave differently from round to round.
    [a, b] = clients.map((client) => new SandboxGateway({ latencyMs: 0, jitterMs: 2, timeoutMs: 5, book: new RedisSandboxBook(client, { prefix }) }));
  });
  beforeEach((ctx) => {
    if (!redis) ctx.skip();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit()));
    await redis?.cleanup();
  });

  const authorize = (gw: SandboxGateway, idempotencyKey = key('auth'), metadata: Record<string, string> = {}) =>
    gw.authorize({ idempotencyKey, paymentToken: 'tok_visa', amountCents: 2500, currency: 'eur', metadata });
  const mine = async (gw: SandboxGateway, round: string) => (await gw.listAuthorizations()).filter((x) => x.metadata.round === round);

  it('authorised through one, captured through the other; each sees the other’s work', async () => {
    const authKey = key('auth');
    const ref = refOf(await authorize(a, authKey, { payment: 'p-1' }));
    expect(await b.capture({ idempotencyKey: key('cap'), ref, amountCents: 2500, metadata: { order: 'o-1' } })).toEqual({ ok: true, ref, amountCents: 2500 });
    expect(await a.retrieve(ref)).toEqual({
      ref,
      state: 'captured',
      amountCents: 2500,
      capturedCents: 2500,
      refundedCents: 0,
      metadata: { payment: 'p-1', order: 'o-1' },
    });
    // The answer A was given under its key, B can look up (a reply lost on the way to A).
    expect(await b.lookup(authKey)).toEqual({ ok: true, ref, amountCents: 2500 });
    expect((await b.listAuthorizations()).find((x) => x.ref === ref)).toMatchObject({ status: 'captured', captures: 1, capturedCents: 2500 });
    // And the money goes back through either.
    expect(await a.refund({ idempotencyKey: key('refund'), ref, amountCents: 2500 })).toMatchObject({ ok: true, amountCents: 2500 });
    expect((await b.retrieve(ref))?.state).toBe('refunded');
  });

  it('the book lists what both made, oldest first; the helpers that answer at once are for a book in memory', async () => {
    const round = key('round');
    const refs = [];
    for (const gw of [a, b, a, b]) refs.push(refOf(await authorize(gw, key('auth'), { round })));
    expect((await a.listAuthorizations()).filter((x) => x.metadata.round === round).map((x) => x.ref)).toEqual(refs);
    expect(() => a.authorizations()).toThrow(/listAuthorizations/);
    expect(() => b.charges()).toThrow(/listCharges/);
  });

  it('voided through one, a capture through the other is refused', async () => {
    const ref = refOf(await authorize(a));
    expect(await a.void({ idempotencyKey: key('void'), ref })).toEqual({ ok: true, ref, amountCents: 2500 });
    expect(await b.capture({ idempotencyKey: key('cap'), ref, amountCents: 2500 })).toMatchObject({ ok: false, reason: 'already_ended' });
    expect((await b.listAuthorizations()).find((x) => x.ref === ref)).toMatchObject({ status: 'voided', voids: 1, captures: 0 });
  });

  it(`the same idempotency key sent to both at once makes one authorisation (${ROUNDS} rounds)`, async () => {
    for (let r = 0; r < ROUNDS; r++) {
      const round = key('round');
      const req = { idempotencyKey: key('auth'), paymentToken: 'tok_visa', amountCents: 1000 + r, currency: 'eur', metadata: { round } };
      const [x, y] = await Promise.all([a.authorize(req), b.authorize({ ...req })]);
      expect(x).toMatchObject({ ok: true, amountCents: 1000 + r });
      expect(y).toEqual(x);
      expect(await mine(a, round)).toMatchObject([{ ref: refOf(x), status: 'authorized' }]);
    }
  });

  it(`a capture raced from both captures once: with one key, and with two (${ROUNDS} rounds)`, async () => {
    for (let r = 0; r < ROUNDS; r++) {
      const round = key('round');
      const ref = refOf(await authorize(r % 2 ? a : b, key('auth'), { round }));
      const sameKey = r % 2 === 0;
      const capA = { idempotencyKey: key('cap'), ref, amountCents: 2500 };
      const capB = sameKey ? capA : { ...capA, idempotencyKey: key('cap') };
      const answers = await Promise.all([a.capture(capA), b.capture(capB)]);
      if (sameKey) {
        expect(answers).toEqual([
          { ok: true, ref, amountCents: 2500 },
          { ok: true, ref, amountCents: 2500 },
        ]);
      } else {
        expect(answers.filter((o) => o.ok)).toHaveLength(1);
        expect(answers.filter((o) => !o.ok)).toMatchObject([{ ok: false, reason: 'already_ended' }]);
      }
      expect(await mine(b, round)).toMatchObject([{ status: 'captured', captures: 1, voids: 0 }]);
    }
  });

  it(`a capture raced against a void: exactly one ends the authorisation (${ROUNDS} rounds)`, async () => {
    for (let r = 0; r < ROUNDS; r++) {
      const round = key('round');
      const ref = refOf(await authorize(a, key('auth'), { round }));
      const [captured, voided] = await Promise.all([
        a.capture({ idempotencyKey: key('cap'), ref, amountCents: 2500 }),
        b.void({ idempotencyKey: key('void'), ref }),
      ]);
      expect([captured.ok, voided.ok].filter(Boolean)).toHaveLength(1);
      const [auth] = await mine(a, round);
      expect(auth.captures + auth.voids).toBe(1);
      expect(auth.status).toBe(captured.ok ? 'captured' : 'voided');
    }
  });

  it('a refund raced from both with two keys gives the money back once', async () => {
    const ref = refOf(await authorize(a));
    await a.capture({ idempotencyKey: key('cap'), ref, amountCents: 2500 });
    const answers = await Promise.all([
      a.refund({ idempotencyKey: key('refund'), ref, amountCents: 2500 }),
      b.refund({ idempotencyKey: key('refund'), ref, amountCents: 2500 }),
    ]);
    expect(answers.filter((o) => o.ok)).toHaveLength(1);
    expect((await a.listAuthorizations()).find((x) => x.ref === ref)).toMatchObject({ status: 'refunded', refunds: 1, refundedCents: 2500 });
  });

  it('a key reused with other parameters through the other process is refused; a lost reply is replayed there', async () => {
    const authKey = key('auth');
    await authorize(a, authKey);
    await expect(b.authorize({ idempotencyKey: authKey, paymentToken: 'tok_visa', amountCents: 1, currency: 'eur' })).rejects.toThrow(
      IdempotencyKeyReusedError,
    );
    const ref = refOf(await authorize(a));
    a.inject({ captureTimeoutsNext: 1 });
    const cap = { idempotencyKey: key('cap'), ref, amountCents: 2500 };
    await expect(a.capture(cap)).rejects.toThrow(GatewayUnavailableError);
    expect(await b.capture(cap)).toEqual({ ok: true, ref, amountCents: 2500 });
    expect((await b.listAuthorizations()).find((x) => x.ref === ref)).toMatchObject({ captures: 1 });
  });

  it('keys: under the prefix, one hash tag per payment, each with a TTL', async () => {
    const authKey = key('auth');
    const ref = refOf(await authorize(a, authKey));
    await b.capture({ idempotencyKey: key('cap'), ref, amountCents: 2500 });
    const keys = [`${prefix}:sandbox:{${ref}}`, `${prefix}:sandbox:{${ref}}:answers`, `${prefix}:sandbox:key:${authKey}`];
    for (const k of keys) {
      const ttl = await redis!.redis.pttl(k);
      expect(ttl, k).toBeGreaterThan(SANDBOX_RECORD_TTL_MS - 60_000);
      expect(ttl, k).toBeLessThanOrEqual(SANDBOX_RECORD_TTL_MS);
    }
    // A step's two keys share a slot on Redis Cluster.
    expect(hashTag(keys[0])).toBe(ref);
    expect(hashTag(keys[1])).toBe(ref);
  });

  it('Redis not answering is the card network not answering', async () => {
    const gone = createRedis({ url: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' }) as Redis;
    await untilReady(gone);
    const gw = new SandboxGateway({ latencyMs: 0, jitterMs: 0, book: new RedisSandboxBook(gone, { prefix }) });
    gone.disconnect();
    await expect(authorize(gw)).rejects.toThrow(GatewayUnavailableError);
    await expect(gw.retrieve('auth_sbx_x')).rejects.toThrow(GatewayUnavailableError);
    await expect(gw.lookup('k')).rejects.toThrow(GatewayUnavailableError);
  });
});
