/**
 * Our proof-of-work hashes with node:crypto for speed; these tests hold it to the ALTCHA v1
 * format as altcha-lib implements it, both ways, so the browser widget keeps working.
 */
import { createChallenge, extractParams, solveChallenge as altchaSolve, verifySolution } from 'altcha-lib/v1';
import { describe, expect, it } from 'vitest';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { ProofOfWork, solveChallenge } from '../../src/defence/proof-of-work.js';

const HMAC_KEY = 'interop-key';
const pow = () => new ProofOfWork({ hmacKey: HMAC_KEY, engine: new MemoryEngine() });

describe('proof-of-work interoperates with altcha-lib v1', () => {
  it("our challenges carry their parameters where altcha-lib's extractParams finds them", async () => {
    const c = (await pow().challenge('sale-1', 2))!;
    const params = extractParams(c);
    expect(params.sale).toBe('sale-1');
    expect(Number(params.expires)).toBeGreaterThan(Date.now() / 1000);
    expect(Number(params.issued)).toBeLessThanOrEqual(Date.now());
  });

  it('altcha-lib verifies a solution to our challenge', async () => {
    const c = (await pow().challenge('sale-1', 2))!;
    expect(await verifySolution(await solveChallenge(c), HMAC_KEY)).toBe(true);
  });

  it("we accept what altcha-lib's solver (the widget's algorithm) finds for our challenge", async () => {
    const p = pow();
    const c = (await p.challenge('sale-1', 1))!;
    const found = await altchaSolve(c.challenge, c.salt, c.algorithm, c.maxnumber).promise;
    expect(found).not.toBeNull();
    const payload = btoa(JSON.stringify({ algorithm: c.algorithm, challenge: c.challenge, number: found!.number, salt: c.salt, signature: c.signature }));
    await expect(p.verify('sale-1', payload)).resolves.toBeDefined();
  });

  it('we accept a challenge altcha-lib made with our key and parameters', async () => {
    const c = await createChallenge({
      hmacKey: HMAC_KEY,
      maxnumber: 5_000,
      expires: new Date(Date.now() + 60_000),
      params: { sale: 'sale-1', issued: String(Date.now()) },
    });
    const payload = await solveChallenge({ ...c, algorithm: 'SHA-256', maxnumber: 5_000 });
    await expect(pow().verify('sale-1', payload)).resolves.toBeDefined();
  });
});
