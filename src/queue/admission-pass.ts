/**
 * The admission pass: a JWT (ES256) a ticket receives once admitted. It is signed with an
 * asymmetric key published at `/.well-known/jwks.json`, so the shop's own edge or checkout can
 * check admission without calling us. Every node derives the same key from the ticket secret,
 * so passes verify whichever node issued them.
 */
import { createECDH, createHash, createHmac, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SignJWT, exportJWK, type JWK } from 'jose';

export interface AdmissionClaims {
  saleId: string;
  userId: string;
  place: number;
  /** When the admission lapses (epoch ms). */
  expiresAt: number;
}

export class AdmissionPassSigner {
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  readonly kid: string;
  private readonly cache = new Map<string, string>();

  constructor(secret: string) {
    // A P-256 scalar from the secret: HMAC output is below the curve order with overwhelming odds.
    const d = createHmac('sha256', secret).update('stampede admission pass key v1').digest();
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(d);
    const pub = ecdh.getPublicKey();
    const jwk = {
      kty: 'EC',
      crv: 'P-256',
      d: d.toString('base64url'),
      x: pub.subarray(1, 33).toString('base64url'),
      y: pub.subarray(33).toString('base64url'),
    };
    this.privateKey = createPrivateKey({ key: jwk, format: 'jwk' });
    this.publicKey = createPublicKey(this.privateKey);
    this.kid = createHash('sha256').update(pub).digest('base64url').slice(0, 16);
  }

  /** Signs (once per ticket and expiry; cached) the pass for an admitted ticket. */
  async sign(c: AdmissionClaims): Promise<string> {
    const key = `${c.saleId}|${c.userId}|${c.place}|${c.expiresAt}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const jwt = await new SignJWT({ sale: c.saleId, place: c.place, scope: 'checkout' })
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'JWT' })
      .setSubject(c.userId)
      .setIssuer('stampede')
      .setAudience(`sale:${c.saleId}`)
      .setIssuedAt()
      .setExpirationTime(Math.floor(c.expiresAt / 1000))
      .sign(this.privateKey);
    if (this.cache.size >= 20_000) this.cache.clear();
    this.cache.set(key, jwt);
    return jwt;
  }

  async jwks(): Promise<{ keys: JWK[] }> {
    const jwk = await exportJWK(this.publicKey);
    return { keys: [{ ...jwk, kid: this.kid, alg: 'ES256', use: 'sig' }] };
  }
}
