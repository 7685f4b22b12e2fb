import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { maxNumberFor, ProofOfWork, solveChallenge, type PowChallenge } from '../../src/defence/proof-of-work.js';
import { DEFAULT_POW_DIFFICULTY } from '../../src/sales/sale-schema.js';
import { redisTestEngine } from '../support/redis.js';

const HMAC_KEY = 'test-pow-key';
const decode = (payload: string) => JSON.parse(Buffer.from(payload, 'base64').toString('utf8'));
const encode = (solution: object) => Buffer.from(JSON.stringify(solution)).toString('base64');

function setup(ttlSec?: number) {
  const engine = new MemoryEngine();
  return { engine, pow: new ProofOfWork({ hmacKey: HMAC_KEY, engine, ttlSec }) };
}

async function solved(pow: ProofOfWork, saleId: string, difficulty = 1): Promise<{ challenge: PowChallenge; payload: string }> {
  const challenge = (await pow.challenge(saleId, difficulty))!;
  return { challenge, payload: await solveChallenge(challenge) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('proof-of-work challenges', () => {
  it('issues an ALTCHA-shaped challenge bound to the sale, expiring', async () => {
    const { pow } = setup();
    const c = (await pow.challenge('sale-1', 4))!;
    expect(Object.keys(c).sort()).toEqual(['algorithm', 'challenge', 'maxnumber', 'salt', 'signature']);
    expect(c.algorithm).toBe('SHA-256');
    expect(c.maxnumber).toBe(40_000);
    const params = new URLSearchParams(c.salt.split('?')[1]);
    expect(params.get('sale')).toBe('sale-1');
    expect(Number(params.get('expires')) * 1000).toBeGreaterThan(Date.now() + 290_000);
  });

  it('maps difficulty to maxnumber: 5,000 at 1, doubling per step; 0 is off', async () => {
    expect([1, 2, 3, 4, 8].map(maxNumberFor)).toEqual([5_000, 10_000, 20_000, 40_000, 640_000]);
    expect(maxNumberFor(0)).toBe(0);
    expect(() => maxNumberFor(-1)).toThrow(RangeError);
    expect(() => maxNumberFor(1.5)).toThrow(RangeError);
    expect(() => maxNumberFor(17)).toThrow(RangeError);
    const { pow } = setup();
    expect(await pow.challenge('sale-1', 0)).toBeNull();
  });

  it('accepts a solution once and tells when the challenge was issued', async () => {
    const { pow } = setup();
    const before = Date.now();
    const { payload } = await solved(pow, 'sale-1');
    const { issuedAt } = await pow.verify('sale-1', payload);
    expect(issuedAt).toBeGreaterThanOrEqual(before);
    expect(issuedAt).toBeLessThanOrEqual(Date.now());
  });

  it('accepts the solution as an object and as plain JSON too', async () => {
    const { pow } = setup();
    const a = await solved(pow, 'sale-1');
    await expect(pow.verify('sale-1', decode(a.payload))).resolves.toBeDefined();
    const b = await solved(pow, 'sale-1');
    await expect(pow.verify('sale-1', JSON.stringify(decode(b.payload)))).resolves.toBeDefined();
  });

  it('refuses the same solution a second time, on this node or another sharing the engine', async () => {
    const { engine, pow } = setup();
    const { payload } = await solved(pow, 'sale-1');
    await pow.verify('sale-1', payload);
    await expect(pow.verify('sale-1', payload)).rejects.toMatchObject({ code: 'POW_INVALID' });
    const otherNode = new ProofOfWork({ hmacKey: HMAC_KEY, engine });
    await expect(otherNode.verify('sale-1', payload)).rejects.toMatchObject({ code: 'POW_INVALID' });
  });

  it('refuses many parallel submissions of one solution but one', async () => {
    const { pow } = setup();
    const { payload } = await solved(pow, 'sale-1');
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => pow.verify('sale-1', payload)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('refuses a tampered signature, number, challenge or algorithm', async () => {
    const { pow } = setup();
    const { payload } = await solved(pow, 'sale-1');
    const s = decode(payload);
    const flip = (hex: string) => (hex[0] === '0' ? '1' : '0') + hex.slice(1);
    for (const forged of [
      { ...s, signature: flip(s.signature) },
      { ...s, number: s.number + 1 },
      { ...s, challenge: flip(s.challenge) },
      { ...s, algorithm: 'SHA-1' },
    ]) {
      await expect(pow.verify('sale-1', encode(forged))).rejects.toMatchObject({ code: 'POW_INVALID' });
    }
    // None of the forgeries spent the genuine solution.
    await expect(pow.verify('sale-1', payload)).resolves.toBeDefined();
  });

  it('refuses a challenge signed with another key', async () => {
    const { engine } = setup();
    const stranger = new ProofOfWork({ hmacKey: 'someone-else', engine });
    const { payload } = await solved(stranger, 'sale-1');
    const { pow } = setup();
    await expect(pow.verify('sale-1', payload)).rejects.toMatchObject({ code: 'POW_INVALID' });
  });

  it("refuses another sale's challenge, also with the salt edited to name this sale", async () => {
    const { pow } = setup();
    const { payload } = await solved(pow, 'sale-A');
    await expect(pow.verify('sale-B', payload)).rejects.toMatchObject({ code: 'POW_INVALID' });
    const s = decode(payload);
    const moved = { ...s, salt: s.salt.replace('sale=sale-A', 'sale=sale-B') };
    await expect(pow.verify('sale-B', encode(moved))).rejects.toMatchObject({ code: 'POW_INVALID' });
    // Still good where it belongs.
    await expect(pow.verify('sale-A', payload)).resolves.toBeDefined();
  });

  it('refuses an expired challenge, and one whose expiry was pushed out by editing the salt', async () => {
    const { pow } = setup(300);
    const { payload } = await solved(pow, 'sale-1');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 301_000);
    await expect(pow.verify('sale-1', payload)).rejects.toMatchObject({ code: 'POW_INVALID' });
    const s = decode(payload);
    const later = Math.floor(Date.now() / 1000) + 600;
    const extended = { ...s, salt: s.salt.replace(/expires=\d+/, `expires=${later}`) };
    await expect(pow.verify('sale-1', encode(extended))).rejects.toMatchObject({ code: 'POW_INVALID' });
  });

  it('asks for a solution when none is sent, and refuses junk', async () => {
    const { pow } = setup();
    for (const missing of [undefined, null, '']) {
      await expect(pow.verify('sale-1', missing)).rejects.toMatchObject({ code: 'POW_REQUIRED' });
    }
    for (const junk of ['not base64 json', encode({}), encode([1, 2]), '{"algorithm":"SHA-256"}', 'x'.repeat(10_000), {}]) {
      await expect(pow.verify('sale-1', junk)).rejects.toMatchObject({ code: 'POW_INVALID' });
    }
  });

  // How long solving takes is the bench's and the rehearsal's to report, not a test's to time.
  it('solves the default difficulty in Node, and the solution verifies', async () => {
    const { pow } = setup();
    const challenge = (await pow.challenge('sale-1', DEFAULT_POW_DIFFICULTY))!;
    const payload = await solveChallenge(challenge);
    await expect(pow.verify('sale-1', payload)).resolves.toBeDefined();
  });
});

// The single-use mark must hold across API nodes, so it is tried on the shared store as well.
const shared = await redisTestEngine();
afterAll(() => shared?.cleanup());

describe.skipIf(!shared)('proof-of-work replay on the Redis engine', () => {
  it('refuses a solution already used on another node sharing Redis', async () => {
    const nodeA = new ProofOfWork({ hmacKey: HMAC_KEY, engine: shared!.engine });
    const nodeB = new ProofOfWork({ hmacKey: HMAC_KEY, engine: shared!.engine });
    const { payload } = await solved(nodeA, 'sale-1');
    const results = await Promise.allSettled([nodeA.verify('sale-1', payload), nodeB.verify('sale-1', payload)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    await expect(nodeB.verify('sale-1', payload)).rejects.toMatchObject({ code: 'POW_INVALID' });
  });
});
