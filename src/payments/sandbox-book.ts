/**
 * The sandbox card network's book: every authorisation and charge it made, and the answer it
 * gave under each idempotency key. `SandboxGateway` plays the network (test cards, latency, lost
 * replies); the book is the network's memory, and it lives where the deployment says:
 *
 * - `MemorySandboxBook` (the default): this process's memory. A new book knows no reference and
 *   no key, as if the processor had forgotten everything.
 * - `RedisSandboxBook` (redis-sandbox-book.ts): the engine's Redis, so every node and worker
 *   process talks to the same network, as they would to Stripe.
 *
 * Both apply a step at most once per idempotency key, atomically with the key's record: the same
 * key with the same request answers what it answered first; with another request it throws
 * `IdempotencyKeyReusedError`. A step that throws (a capture of more than was authorised) leaves
 * the key unused.
 */
import { IdempotencyKeyReusedError, type GatewayOutcome, type RefusalReason } from './gateway.js';

/** How a test card behaves. `insufficient_funds` authorises fine and fails at capture (SPEC §5). */
export type CardBehaviour = 'ok' | 'declined' | 'insufficient_funds';

/** The sandbox's record of one authorisation. */
export interface SandboxAuthorization {
  ref: string;
  amountCents: number;
  capturedCents: number;
  currency: string;
  status: 'authorized' | 'captured' | 'voided' | 'declined' | 'expired' | 'refunded';
  refundedCents: number;
  /** Successful captures: more than one would be a double charge. */
  captures: number;
  voids: number;
  refunds: number;
  createdAt: number;
  expiresAt: number;
  metadata: Record<string, string>;
}

/** The sandbox's record of one direct charge. */
export interface SandboxCharge {
  ref: string;
  amountCents: number;
  currency: string;
  status: 'succeeded' | 'declined' | 'refunded';
  refundedCents: number;
  createdAt: number;
  metadata: Record<string, string>;
}

/** A new authorisation or charge: what the card said, and the reference the network gives it. */
export interface SandboxOpening {
  op: 'authorize' | 'charge';
  /** The new payment's ref; a key already used keeps the payment its first request made. */
  ref: string;
  amountCents: number;
  currency: string;
  behaviour: CardBehaviour;
  createdAt: number;
  /** When an authorisation lapses (a charge ignores it). */
  expiresAt: number;
  metadata: Record<string, string>;
}

/** One money-moving step, as the book applies it. `now` is the network's clock, which lapses authorisations. */
export type SandboxStep =
  | SandboxOpening
  | { op: 'capture'; ref: string; amountCents: number; metadata: Record<string, string>; now: number }
  | { op: 'void'; ref: string; now: number }
  | { op: 'refund'; ref: string; amountCents: number; /** The refund's own id. */ refundRef: string };

/** What the book holds under a reference. */
export type SandboxRecord = { kind: 'authorization'; record: SandboxAuthorization } | { kind: 'charge'; record: SandboxCharge };

/** Where the sandbox keeps its book. */
export interface SandboxBook {
  /** True when every process on the same store sees this book (Redis); false when it is this process's. */
  readonly shared: boolean;
  /** Applies `step` under an idempotency key (see the module comment); `fingerprint` names the request. */
  apply(key: string, fingerprint: string, step: SandboxStep): Promise<GatewayOutcome>;
  /** The authorisation or charge under `ref` (a lapsed authorisation shows as `expired`), or null. */
  payment(ref: string, now: number): Promise<SandboxRecord | null>;
  /** The answer given under an idempotency key, or null when no step under it was applied. */
  lookup(key: string): Promise<GatewayOutcome | null>;
  /** Every authorisation, oldest first. */
  authorizations(now: number): Promise<SandboxAuthorization[]>;
  /** Every direct charge, oldest first. */
  charges(): Promise<SandboxCharge[]>;
}

/** The status a new payment starts in. */
export const openingStatus = (o: SandboxOpening): 'authorized' | 'succeeded' | 'declined' =>
  o.op === 'authorize' ? (o.behaviour === 'declined' ? 'declined' : 'authorized') : o.behaviour === 'ok' ? 'succeeded' : 'declined';

/** The answer to a new payment: the card alone decides it (insufficient funds fail a charge at once, an authorisation at capture). */
export function openingOutcome(o: SandboxOpening): GatewayOutcome {
  if (o.behaviour === 'declined') return refusal('declined', 'Your card was declined');
  if (o.behaviour === 'insufficient_funds' && o.op === 'charge') return refusal('insufficient_funds', 'Your card has insufficient funds');
  return { ok: true, ref: o.ref, amountCents: o.amountCents };
}

/** Capturing more than was authorised: a caller bug, not a decline. */
export const overCapture = (amountCents: number, authorised: number) => new RangeError(`Cannot capture ${amountCents} of an authorisation of ${authorised}`);

const refusal = (reason: RefusalReason, message: string): GatewayOutcome => ({ ok: false, reason, message });

interface Auth extends SandboxAuthorization {
  behaviour: CardBehaviour;
}

/** The book in this process's memory: each step is one synchronous turn, so nothing interleaves. */
export class MemorySandboxBook implements SandboxBook {
  readonly shared = false;
  private readonly auths = new Map<string, Auth>();
  private readonly chargeBook = new Map<string, SandboxCharge>();
  /** The first outcome under each key, with the fingerprint of the request it answered. */
  private readonly byKey = new Map<string, { fingerprint: string; outcome: GatewayOutcome }>();

  async apply(key: string, fingerprint: string, step: SandboxStep): Promise<GatewayOutcome> {
    let seen = this.byKey.get(key);
    if (seen && seen.fingerprint !== fingerprint) throw new IdempotencyKeyReusedError(key);
    if (!seen) {
      seen = { fingerprint, outcome: this.perform(step) };
      this.byKey.set(key, seen);
    }
    return seen.outcome;
  }

  async payment(ref: string, now: number): Promise<SandboxRecord | null> {
    const auth = this.auths.get(ref);
    if (auth) return { kind: 'authorization', record: this.snapshot(auth, now) };
    const charge = this.chargeBook.get(ref);
    return charge ? { kind: 'charge', record: chargeSnapshot(charge) } : null;
  }

  async lookup(key: string): Promise<GatewayOutcome | null> {
    return this.byKey.get(key)?.outcome ?? null;
  }

  async authorizations(now: number): Promise<SandboxAuthorization[]> {
    return this.authorizationsNow(now);
  }

  async charges(): Promise<SandboxCharge[]> {
    return this.chargesNow();
  }

  /** {@link authorizations} without waiting: only a book in memory can answer at once. */
  authorizationsNow(now: number): SandboxAuthorization[] {
    return [...this.auths.values()].map((a) => this.snapshot(a, now));
  }

  /** {@link charges} without waiting. */
  chargesNow(): SandboxCharge[] {
    return [...this.chargeBook.values()].map(chargeSnapshot);
  }

  private perform(step: SandboxStep): GatewayOutcome {
    switch (step.op) {
      case 'authorize':
      case 'charge':
        return this.open(step);
      case 'capture': {
        const auth = this.capturable(step.ref, step.now);
        if (!('ref' in auth)) return auth;
        if (step.amountCents > auth.amountCents) throw overCapture(step.amountCents, auth.amountCents);
        if (auth.behaviour === 'insufficient_funds') {
          // The hold fails at settlement; nothing stays held, so the authorisation ends here.
          auth.status = 'declined';
          return refusal('insufficient_funds', 'Your card has insufficient funds');
        }
        auth.status = 'captured';
        auth.capturedCents = step.amountCents;
        auth.captures += 1;
        Object.assign(auth.metadata, step.metadata);
        return { ok: true, ref: auth.ref, amountCents: step.amountCents };
      }
      case 'void': {
        const auth = this.capturable(step.ref, step.now);
        if (!('ref' in auth)) return auth;
        auth.status = 'voided';
        auth.voids += 1;
        return { ok: true, ref: auth.ref, amountCents: auth.amountCents };
      }
      case 'refund':
        return this.refund(step);
    }
  }

  private open(o: SandboxOpening): GatewayOutcome {
    const { behaviour, createdAt, ref, amountCents, currency } = o;
    const metadata = { ...o.metadata };
    if (o.op === 'authorize') {
      const status = openingStatus(o) as 'authorized' | 'declined';
      this.auths.set(ref, {
        ref,
        amountCents,
        capturedCents: 0,
        currency,
        status,
        refundedCents: 0,
        captures: 0,
        voids: 0,
        refunds: 0,
        createdAt,
        expiresAt: o.expiresAt,
        metadata,
        behaviour,
      });
    } else {
      const status = openingStatus(o) as 'succeeded' | 'declined';
      this.chargeBook.set(ref, { ref, amountCents, currency, status, refundedCents: 0, createdAt, metadata });
    }
    return openingOutcome(o);
  }

  private refund(step: Extract<SandboxStep, { op: 'refund' }>): GatewayOutcome {
    const { ref } = step;
    const auth = this.auths.get(ref);
    const charge = auth ? undefined : this.chargeBook.get(ref);
    let record: Auth | SandboxCharge;
    let captured: number;
    if (auth) {
      if (auth.status !== 'captured') return refusal('already_ended', `Authorisation ${ref} is ${auth.status}: nothing to refund`);
      [record, captured] = [auth, auth.capturedCents];
    } else if (charge) {
      if (charge.status !== 'succeeded') return refusal('already_ended', `Charge ${ref} is ${charge.status}: nothing to refund`);
      [record, captured] = [charge, charge.amountCents];
    } else {
      return refusal('not_found', `No payment ${ref}`);
    }
    const left = captured - record.refundedCents;
    if (step.amountCents > left) return refusal('already_ended', `Only ${left} of ${captured} captured on ${ref} is left to refund`);
    record.refundedCents += step.amountCents;
    if (record.refundedCents === captured) record.status = 'refunded';
    if (auth) auth.refunds += 1;
    return { ok: true, ref: step.refundRef, amountCents: step.amountCents };
  }

  /** The authorisation if it can still be captured or voided, or the refusal saying why not. */
  private capturable(ref: string, now: number): Auth | Extract<GatewayOutcome, { ok: false }> {
    const auth = this.auths.get(ref);
    if (!auth) return { ok: false, reason: 'not_found', message: `No authorisation ${ref}` };
    settle(auth, now);
    if (auth.status === 'expired') return { ok: false, reason: 'expired', message: `Authorisation ${ref} has expired` };
    if (auth.status !== 'authorized') return { ok: false, reason: 'already_ended', message: `Authorisation ${ref} is ${auth.status}` };
    return auth;
  }

  private snapshot(auth: Auth, now: number): SandboxAuthorization {
    settle(auth, now);
    const { behaviour: _behaviour, ...record } = auth;
    return { ...record, metadata: { ...record.metadata } };
  }
}

/** Lapses are noticed lazily, when someone looks: no timers to leak in tests. */
function settle(auth: Auth, now: number): void {
  if (auth.status === 'authorized' && now >= auth.expiresAt) auth.status = 'expired';
}

function chargeSnapshot(c: SandboxCharge): SandboxCharge {
  return { ...c, metadata: { ...c.metadata } };
}
