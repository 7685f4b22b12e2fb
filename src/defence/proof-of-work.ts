/**
 * Proof-of-work for entering a sale's queue, in the ALTCHA v1 format (that of `altcha-lib/v1`),
 * so the stock ALTCHA widget in a browser and the ALTCHA solver libraries work with it unchanged.
 *
 * A challenge is `SHA-256(salt + n)` for a secret `n` in `1..maxnumber`; the client finds `n`
 * by brute force and sends back `{algorithm, challenge, number, salt, signature}` as base64 JSON.
 * The salt carries our parameters (`sale`, `issued`, `expires`), and the HMAC signature over the
 * challenge covers them, so a client can neither move a challenge to another sale nor extend it.
 *
 * Difficulty mapping (a sale's `bot_protection.pow_difficulty`):
 *   0            → off: `challenge()` returns null and the sale asks for no proof of work.
 *   d in 1..16   → maxnumber = 5,000 × 2^(d−1); the expected work is half of that.
 *                  d=1: 5,000 (≈2,500 hashes), d=4 (the default): 40,000 (≈20,000 hashes),
 *                  d=8: 640,000. Each step doubles the work.
 * A browser with Web Crypto (the widget solves in workers) does 40,000 hashes in well under
 * 1–2 s; a bot farm pays the same price per entry, which is the point.
 *
 * Why not call altcha-lib's `createChallenge` / `verifySolution` directly: they go through Web
 * Crypto, importing the HMAC key on every call, and manage about 4,000 challenges and 10,000
 * verifications a second per process — a 100,000-user spike would queue for half a minute at the
 * door. The same computation with `node:crypto` (SHA-256 of `salt + number`, HMAC-SHA-256 of the
 * challenge's hex) does about 150,000 a second. `proof-of-work.altcha.test.ts` proves the two
 * interoperate both ways, so the format cannot drift from altcha-lib's unnoticed.
 */
import { createHash, createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Engine } from '../engine/engine.js';
import { StampedeError } from '../errors.js';

/** An ALTCHA v1 challenge, as `GET /api/flash-sales/{id}/challenge` returns it. */
export interface PowChallenge {
  algorithm: 'SHA-256';
  challenge: string;
  maxnumber: number;
  salt: string;
  signature: string;
}

/** What a client sends back (base64-encoded JSON in the widget's form field). */
export interface PowSolution {
  algorithm: 'SHA-256';
  challenge: string;
  number: number;
  salt: string;
  signature: string;
}

/** What a good solution tells the caller. */
export interface PowVerified {
  /** When the challenge was issued (epoch ms, this node's clock): the bot signals use it. */
  issuedAt: number;
}

/** Beyond this a phone would take minutes; the sale validator should refuse more. */
export const MAX_POW_DIFFICULTY = 16;
const BASE_MAX_NUMBER = 5_000;
// Clocks of two API nodes may differ a little; keep the used-mark a bit past the expiry.
const REPLAY_MARGIN_MS = 60_000;

/** maxnumber for a difficulty (see the file header); 0 for difficulty 0 (off). */
export function maxNumberFor(difficulty: number): number {
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > MAX_POW_DIFFICULTY) {
    throw new RangeError(`pow difficulty must be an integer 0..${MAX_POW_DIFFICULTY}, got ${difficulty}`);
  }
  return difficulty === 0 ? 0 : BASE_MAX_NUMBER * 2 ** (difficulty - 1);
}

/** Options of {@link ProofOfWork}. */
export interface ProofOfWorkOptions {
  /** Secret that signs challenges; every API node of a deployment needs the same one. */
  hmacKey: string;
  /** Where used solutions are remembered (shared by all nodes when it is Redis). */
  engine: Pick<Engine, 'useOnce'>;
  /** How long a challenge stays solvable, in seconds. */
  ttlSec?: number;
}

/** Issues and checks the proof-of-work challenges that gate entering a sale's queue. */
export class ProofOfWork {
  private readonly hmacKey: string;
  private readonly engine: Pick<Engine, 'useOnce'>;
  private readonly ttlMs: number;

  constructor({ hmacKey, engine, ttlSec = 300 }: ProofOfWorkOptions) {
    if (!hmacKey) throw new Error('ProofOfWork needs an hmacKey');
    this.hmacKey = hmacKey;
    this.engine = engine;
    this.ttlMs = ttlSec * 1000;
  }

  /**
   * A fresh challenge bound to `saleId`, expiring after `ttlSec`. Returns null when `difficulty`
   * is 0: the sale has proof-of-work turned off and `verify` should not be called for it.
   */
  async challenge(saleId: string, difficulty: number): Promise<PowChallenge | null> {
    const maxnumber = maxNumberFor(difficulty);
    if (maxnumber === 0) return null;
    const now = Date.now();
    // The salt layout is altcha-lib's: random hex, `?`, the parameters, and a closing `&` that
    // stops a client from splicing digits of the number onto the last parameter.
    const params = new URLSearchParams({ sale: saleId, issued: String(now) });
    // `expires` has whole seconds; `issued` gives the bot signals the issue time to the ms.
    params.set('expires', String(Math.floor((now + this.ttlMs) / 1000)));
    const salt = `${randomBytes(12).toString('hex')}?${params.toString()}&`;
    const challenge = sha256(salt + randomInt(1, maxnumber + 1));
    return { algorithm: 'SHA-256', challenge, maxnumber, salt, signature: this.sign(challenge) };
  }

  /**
   * Accepts a solution once. Throws `POW_REQUIRED` when there is none, and `POW_INVALID` when it
   * is malformed, forged, expired, for another sale, or was used before.
   */
  async verify(saleId: string, payload: string | object | null | undefined): Promise<PowVerified> {
    if (payload === null || payload === undefined || payload === '') throw new StampedeError('POW_REQUIRED');
    const solution = parseSolution(payload);
    if (!solution) throw invalid('malformed');

    // Cheap checks first: a bot spraying junk should not cost us a hash.
    const params = new URLSearchParams(solution.salt.split('?')[1] ?? '');
    if (params.get('sale') !== saleId) throw invalid('for another sale');
    const expiresMs = Number(params.get('expires')) * 1000;
    const issuedAt = Number(params.get('issued'));
    if (!params.has('expires') || !Number.isFinite(expiresMs) || !Number.isFinite(issuedAt)) throw invalid('not one of ours');
    if (expiresMs < Date.now()) throw invalid('expired');

    // The number must hash to the challenge, and the challenge (whose salt carries the sale and
    // the expiry) must carry our signature.
    if (sha256(solution.salt + solution.number) !== solution.challenge) throw invalid('wrong');
    const expected = Buffer.from(this.sign(solution.challenge), 'hex');
    const given = Buffer.from(solution.signature, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid('not signed by us');

    // Single use, marked only after the signature held so forgeries cannot fill the store. The
    // mark need only outlive the challenge: afterwards the expiry refuses it anyway.
    const ttl = expiresMs - Date.now() + REPLAY_MARGIN_MS;
    if (!(await this.engine.useOnce(`pow:${solution.signature}`, ttl))) throw invalid('already used');
    return { issuedAt };
  }

  private sign(challenge: string): string {
    return createHmac('sha256', this.hmacKey).update(challenge).digest('hex');
  }
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const invalid = (why: string) => new StampedeError('POW_INVALID', `The proof-of-work solution is ${why}`);

const HEX = /^[0-9a-f]{64}$/;

/** Reads the widget's base64 JSON (or plain JSON, or an object) into a checked solution. */
function parseSolution(payload: string | object): PowSolution | null {
  let raw: unknown = payload;
  if (typeof payload === 'string') {
    if (payload.length > 4096) return null;
    try {
      const text = payload.trimStart().startsWith('{') ? payload : Buffer.from(payload, 'base64').toString('utf8');
      raw = JSON.parse(text);
    } catch {
      return null;
    }
  }
  if (typeof raw !== 'object' || raw === null) return null;
  const s = raw as Record<string, unknown>;
  // Only SHA-256: we never issue another algorithm, so another one is a forgery attempt.
  if (s.algorithm !== 'SHA-256') return null;
  if (typeof s.challenge !== 'string' || !HEX.test(s.challenge)) return null;
  if (typeof s.signature !== 'string' || !HEX.test(s.signature)) return null;
  if (typeof s.salt !== 'string' || s.salt.length > 1024) return null;
  if (typeof s.number !== 'number' || !Number.isSafeInteger(s.number) || s.number < 0) return null;
  return { algorithm: s.algorithm, challenge: s.challenge, number: s.number, salt: s.salt, signature: s.signature };
}

/**
 * Solves a challenge the way a client would and returns the payload to send (base64 JSON, as
 * the ALTCHA widget sends it). For tests, the rehearsal tool's simulated users and bots.
 *
 * It hashes with `node:crypto` rather than altcha-lib's `solveChallenge`: that one awaits Web
 * Crypto once per candidate, about 45× slower in Node (at the default difficulty ≈0.9 s on
 * average against ≈20 ms), which would make a rehearsal with thousands of users measure our
 * solver instead of the server. It yields to the event loop every few thousand hashes so a process solving
 * many challenges at once still answers its sockets.
 */
export async function solveChallenge(challenge: PowChallenge): Promise<string> {
  const { salt, maxnumber } = challenge;
  for (let n = 0; n <= maxnumber; n++) {
    if (sha256(salt + n) === challenge.challenge) {
      const solution: PowSolution = {
        algorithm: challenge.algorithm,
        challenge: challenge.challenge,
        number: n,
        salt,
        signature: challenge.signature,
      };
      return Buffer.from(JSON.stringify(solution)).toString('base64');
    }
    if (n % 5_000 === 4_999) await yieldToLoop();
  }
  throw new Error('challenge has no solution within maxnumber');
}
