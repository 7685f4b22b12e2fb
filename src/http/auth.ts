/**
 * Who is calling. Shoppers carry a JWT from the shop's login (HS256 with a shared secret, or a
 * public key); the admin carries the admin token. Verified user tokens are remembered briefly,
 * because a waiting shopper sends the same token many times and a signature check is the
 * dearest thing on the hot path.
 */
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { SignJWT, importSPKI, jwtVerify, type CryptoKey, type KeyObject } from 'jose';
import { StampedeError } from '../errors.js';

const bearer = (header: string | undefined): string | null => {
  if (!header || !header.startsWith('Bearer ')) return null;
  return header.slice(7).trim() || null;
};

const digest = (token: string) => createHash('sha256').update(token).digest();
/** Compares digests, so neither the length nor the content of a token leaks through timing. */
const matches = (token: string | null, expected: Buffer) => token !== null && timingSafeEqual(digest(token), expected);

export class Auth {
  private readonly secret: Uint8Array;
  private publicKey: CryptoKey | KeyObject | null = null;
  private readonly adminDigest: Buffer;
  private readonly metricsDigest: Buffer;
  /** Two generations of verified tokens: the young one fills, then becomes the old one. */
  private verified = new Map<string, { sub: string; exp: number }>();
  private previous = new Map<string, { sub: string; exp: number }>();

  constructor(private readonly opts: { adminToken: string; userJwtSecret: string; userJwtPublicKey: string | null; metricsToken?: string | null }) {
    this.secret = new TextEncoder().encode(opts.userJwtSecret);
    this.adminDigest = digest(opts.adminToken);
    this.metricsDigest = digest(opts.metricsToken || opts.adminToken);
  }

  async init(): Promise<void> {
    if (this.opts.userJwtPublicKey)
      this.publicKey = await importSPKI(this.opts.userJwtPublicKey, 'RS256').catch(() => importSPKI(this.opts.userJwtPublicKey!, 'ES256'));
  }

  /** Throws UNAUTHENTICATED unless the header carries the admin token. */
  requireAdmin(header: string | undefined): void {
    if (!matches(bearer(header), this.adminDigest)) throw new StampedeError('UNAUTHENTICATED', 'The admin token is required');
  }

  /** Throws UNAUTHENTICATED unless the header carries the metrics token (the admin token when none is set). */
  requireMetrics(header: string | undefined): void {
    if (!matches(bearer(header), this.metricsDigest)) throw new StampedeError('UNAUTHENTICATED', 'The metrics token is required');
  }

  /**
   * The user id of a token verified before and not yet expired, without a promise; undefined
   * when it has to be verified (with {@link user}).
   */
  knownUser(header: string | undefined): string | undefined {
    const token = bearer(header);
    return token ? this.remembered(token, Math.floor(Date.now() / 1000)) : undefined;
  }

  /** The user of a token verified before, while it has not expired at `now` (seconds). */
  private remembered(token: string, now: number): string | undefined {
    const hit = this.verified.get(token) ?? this.previous.get(token);
    return hit && hit.exp > now ? hit.sub : undefined;
  }

  /** The user id (`sub`) of a valid user token. Throws UNAUTHENTICATED. */
  async user(header: string | undefined): Promise<string> {
    const token = bearer(header);
    if (!token) throw new StampedeError('UNAUTHENTICATED');
    const now = Math.floor(Date.now() / 1000);
    const known = this.remembered(token, now);
    if (known !== undefined) return known;
    try {
      const payload = this.publicKey ? (await jwtVerify(token, this.publicKey)).payload : this.verifyHs256(token, now);
      if (typeof payload.sub !== 'string' || !payload.sub) throw new Error('no sub');
      if (this.verified.size >= 100_000) {
        this.previous = this.verified;
        this.verified = new Map();
      }
      this.verified.set(token, { sub: payload.sub, exp: payload.exp ?? now + 300 });
      return payload.sub;
    } catch {
      throw new StampedeError('UNAUTHENTICATED', 'The bearer token is not valid');
    }
  }

  /**
   * HS256 with node:crypto: ~5 µs against ~100 µs through jose's WebCrypto path, and every
   * shopper's first request pays it. Only `alg: HS256` is accepted (no `none`, no confusion).
   */
  private verifyHs256(token: string, now: number): { sub?: string; exp?: number; nbf?: number } {
    const parts = token.split('.');
    if (parts.length !== 3) throw new Error('not a JWT');
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    if (header.alg !== 'HS256') throw new Error('unexpected alg');
    const expected = createHmac('sha256', this.secret).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2], 'base64url');
    // Only the canonical spelling (lenient base64url would let one token come in endless spellings, each cached).
    if (given.length !== expected.length || given.toString('base64url') !== parts[2] || !timingSafeEqual(given, expected)) throw new Error('bad signature');
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    if (typeof payload.exp === 'number' && payload.exp <= now) throw new Error('expired');
    if (typeof payload.nbf === 'number' && payload.nbf > now + 60) throw new Error('not yet valid');
    return payload;
  }

  /** A user token as the shop's login would issue it (demo guests, tests, the rehearsal). */
  async issue(sub: string = `guest-${randomUUID()}`, ttlSec = 86_400): Promise<{ token: string; sub: string }> {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime(`${ttlSec}s`).sign(this.secret);
    return { token, sub };
  }
}
