/**
 * The sandbox gateway: an in-process stand-in for a card processor, and the default. It follows
 * the familiar test cards (SPEC §5), keeps its own book of every authorisation so tests can prove
 * that each one ended and none was captured twice, and can be told to lose answers — the failure
 * that makes payment code hard: the processor did the work but the reply never arrived.
 *
 * Its book is this process's memory: a new SandboxGateway knows no reference and no key, as if
 * the processor had forgotten everything. Tests of a restart keep the same instance (the
 * processor outlives the node) or take a fresh one to prove the ledger's own rows are enough.
 */
import { randomBytes } from 'node:crypto';
import {
  assertAmount,
  GatewayUnavailableError,
  IdempotencyKeyReusedError,
  type CaptureRequest,
  type GatewayOperation,
  type GatewayOutcome,
  type GatewayPayment,
  type PaymentGateway,
  type PaymentRequest,
  type RefundRequest,
  type VoidRequest,
} from './gateway.js';

/** How a test card behaves. `insufficient_funds` authorises fine and fails at capture (SPEC §5). */
type CardBehaviour = 'ok' | 'declined' | 'insufficient_funds';

const TEST_CARDS: Record<string, CardBehaviour> = {
  tok_visa: 'ok',
  tok_mastercard: 'ok',
  pm_card_visa: 'ok',
  '4242424242424242': 'ok',
  '5555555555554444': 'ok',
  tok_chargeDeclined: 'declined',
  pm_card_chargeDeclined: 'declined',
  '4000000000000002': 'declined',
  tok_insufficientFunds: 'insufficient_funds',
  '4000000000009995': 'insufficient_funds',
};

/** Unknown tokens are declined, as a real processor would refuse a token it never issued. */
const cardBehaviour = (token: string): CardBehaviour => TEST_CARDS[token.replace(/[\s-]/g, '')] ?? 'declined';

/** Rates of injected trouble; change them at runtime through `gateway.faults = {...}`. */
export interface SandboxFaults {
  /** 0..1: the call throws GatewayUnavailableError — half the time after doing the work (a lost reply). */
  failureRate: number;
  /** 0..1: the call hangs `timeoutMs`, then throws GatewayUnavailableError (work done half the time). */
  timeoutRate: number;
  timeoutMs: number;
}

/** Options for {@link SandboxGateway}. */
export interface SandboxGatewayOptions extends Partial<SandboxFaults> {
  /** Simulated round trip, default 25 ms. */
  latencyMs?: number;
  /** Up to this much extra latency, uniformly drawn, default 10 ms. */
  jitterMs?: number;
  /** Draws fault decisions (not latency), so tests can make injection deterministic. */
  random?: () => number;
  /** How long an authorisation holds before it lapses, default 7 days. */
  authTtlMs?: number;
  /** The clock authorisations expire by (epoch ms). */
  now?: () => number;
}

/** Operations that move money (and so can be lost after doing their work); the others only read. */
type MoneyOp = Exclude<GatewayOperation, 'lookup' | 'retrieve'>;

/**
 * One-shot faults for the next N calls of an operation. `captureTimeoutsNext: 1` makes the next
 * capture happen and then time out ("timeout after success"); `captureFailuresNext: 1` makes the
 * next capture fail before it reaches the processor. For `lookup` and `retrieve`, which change
 * nothing, either kind just fails the read.
 */
export type SandboxInjection = Partial<Record<`${GatewayOperation}TimeoutsNext` | `${GatewayOperation}FailuresNext`, number>>;

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

interface Fault {
  kind: 'fail' | 'timeout';
  /** True when the operation is performed before the error: the reply is what got lost. */
  after: boolean;
}

interface Auth extends SandboxAuthorization {
  behaviour: CardBehaviour;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const newRef = (prefix: string) => `${prefix}_sbx_${randomBytes(9).toString('hex')}`;

/** The in-process payment gateway (`name: 'sandbox'`). See the module comment. */
export class SandboxGateway implements PaymentGateway {
  readonly name = 'sandbox';
  private readonly latencyMs: number;
  private readonly jitterMs: number;
  private readonly random: () => number;
  private readonly authTtlMs: number;
  private readonly now: () => number;
  private faultRates: SandboxFaults;
  private readonly injected = new Map<string, number>();
  private readonly auths = new Map<string, Auth>();
  private readonly chargeBook: SandboxCharge[] = [];
  /** Idempotency: the first outcome under each key, with a fingerprint of the request it answered. */
  private readonly byKey = new Map<string, { fingerprint: string; outcome: GatewayOutcome }>();

  constructor(opts: SandboxGatewayOptions = {}) {
    this.latencyMs = opts.latencyMs ?? 25;
    this.jitterMs = opts.jitterMs ?? 10;
    this.random = opts.random ?? Math.random;
    this.authTtlMs = opts.authTtlMs ?? 7 * 24 * 3600_000;
    this.now = opts.now ?? Date.now;
    this.faultRates = { failureRate: opts.failureRate ?? 0, timeoutRate: opts.timeoutRate ?? 0, timeoutMs: opts.timeoutMs ?? 1000 };
  }

  /** The current fault rates. */
  get faults(): SandboxFaults {
    return { ...this.faultRates };
  }

  /** Turn fault injection up, down or off while a test runs; unspecified rates keep their value. */
  set faults(next: Partial<SandboxFaults>) {
    this.faultRates = { ...this.faultRates, ...next };
  }

  /** Queue one-shot faults (they add to any already queued). */
  inject(faults: SandboxInjection): void {
    for (const [name, n] of Object.entries(faults)) this.injected.set(name, (this.injected.get(name) ?? 0) + (n ?? 0));
  }

  /** A snapshot of every authorisation, oldest first, with lapsed ones shown as `expired`. */
  authorizations(): SandboxAuthorization[] {
    return [...this.auths.values()].map((a) => {
      this.settle(a);
      const { behaviour: _behaviour, ...record } = a;
      return { ...record, metadata: { ...record.metadata } };
    });
  }

  /** A snapshot of every direct charge, oldest first. */
  charges(): SandboxCharge[] {
    return this.chargeBook.map((c) => ({ ...c, metadata: { ...c.metadata } }));
  }

  authorize(req: PaymentRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    return this.run('authorize', req.idempotencyKey, req, () => {
      const behaviour = cardBehaviour(req.paymentToken);
      const createdAt = this.now();
      const auth: Auth = {
        ref: newRef('auth'),
        amountCents: req.amountCents,
        capturedCents: 0,
        currency: req.currency,
        status: behaviour === 'declined' ? 'declined' : 'authorized',
        refundedCents: 0,
        captures: 0,
        voids: 0,
        refunds: 0,
        createdAt,
        expiresAt: createdAt + this.authTtlMs,
        metadata: { ...req.metadata },
        behaviour,
      };
      this.auths.set(auth.ref, auth);
      if (auth.status === 'declined') return { ok: false, reason: 'declined', message: 'Your card was declined' };
      return { ok: true, ref: auth.ref, amountCents: auth.amountCents };
    });
  }

  capture(req: CaptureRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    return this.run('capture', req.idempotencyKey, req, () => {
      const auth = this.open(req.ref);
      if (!('ref' in auth)) return auth;
      if (req.amountCents > auth.amountCents) {
        throw new RangeError(`Cannot capture ${req.amountCents} of an authorisation of ${auth.amountCents}`);
      }
      if (auth.behaviour === 'insufficient_funds') {
        // The hold fails at settlement; nothing stays held, so the authorisation ends here.
        auth.status = 'declined';
        return { ok: false, reason: 'insufficient_funds', message: 'Your card has insufficient funds' };
      }
      auth.status = 'captured';
      auth.capturedCents = req.amountCents;
      auth.captures += 1;
      Object.assign(auth.metadata, req.metadata);
      return { ok: true, ref: auth.ref, amountCents: req.amountCents };
    });
  }

  void(req: VoidRequest): Promise<GatewayOutcome> {
    return this.run('void', req.idempotencyKey, req, () => {
      const auth = this.open(req.ref);
      if (!('ref' in auth)) return auth;
      auth.status = 'voided';
      auth.voids += 1;
      return { ok: true, ref: auth.ref, amountCents: auth.amountCents };
    });
  }

  charge(req: PaymentRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    return this.run('charge', req.idempotencyKey, req, () => {
      const behaviour = cardBehaviour(req.paymentToken);
      const record: SandboxCharge = {
        ref: newRef('ch'),
        amountCents: req.amountCents,
        currency: req.currency,
        status: behaviour === 'ok' ? 'succeeded' : 'declined',
        refundedCents: 0,
        createdAt: this.now(),
        metadata: { ...req.metadata },
      };
      this.chargeBook.push(record);
      if (behaviour === 'declined') return { ok: false, reason: 'declined', message: 'Your card was declined' };
      if (behaviour === 'insufficient_funds') return { ok: false, reason: 'insufficient_funds', message: 'Your card has insufficient funds' };
      return { ok: true, ref: record.ref, amountCents: record.amountCents };
    });
  }

  refund(req: RefundRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    return this.run('refund', req.idempotencyKey, req, () => {
      const paid = this.refundable(req.ref);
      if (!('ref' in paid)) return paid;
      const left = paid.captured - paid.record.refundedCents;
      if (req.amountCents > left) {
        return { ok: false, reason: 'already_ended', message: `Only ${left} of ${paid.captured} captured on ${req.ref} is left to refund` };
      }
      paid.record.refundedCents += req.amountCents;
      if (paid.record.refundedCents === paid.captured) paid.record.status = 'refunded';
      if ('refunds' in paid.record) paid.record.refunds += 1;
      return { ok: true, ref: newRef('re'), amountCents: req.amountCents };
    });
  }

  async retrieve(ref: string): Promise<GatewayPayment | null> {
    await this.read('retrieve');
    const auth = this.auths.get(ref);
    if (auth) {
      this.settle(auth);
      const state = (
        { authorized: 'authorized', captured: 'captured', refunded: 'refunded', voided: 'voided', expired: 'voided', declined: 'failed' } as const
      )[auth.status];
      return {
        ref,
        state,
        amountCents: auth.amountCents,
        capturedCents: auth.capturedCents,
        refundedCents: auth.refundedCents,
        metadata: { ...auth.metadata },
      };
    }
    const charge = this.chargeBook.find((c) => c.ref === ref);
    if (!charge) return null;
    return {
      ref,
      state: charge.status === 'declined' ? 'failed' : charge.status === 'refunded' ? 'refunded' : 'captured',
      amountCents: charge.amountCents,
      capturedCents: charge.status === 'declined' ? 0 : charge.amountCents,
      refundedCents: charge.refundedCents,
      metadata: { ...charge.metadata },
    };
  }

  async lookup(idempotencyKey: string): Promise<GatewayOutcome | null> {
    await this.read('lookup');
    return this.byKey.get(idempotencyKey)?.outcome ?? null;
  }

  /** A read is a network call too, so it can fail — but it changes nothing, so whatever the fault, nothing was done. */
  private async read(op: 'lookup' | 'retrieve'): Promise<void> {
    const fault = this.drawFault(op);
    await this.travel();
    if (fault) await this.raise(fault);
  }

  /** A captured authorisation or a succeeded charge, with what it took; or the refusal saying why there is nothing to refund. */
  private refundable(ref: string): { ref: string; record: Auth | SandboxCharge; captured: number } | Extract<GatewayOutcome, { ok: false }> {
    const auth = this.auths.get(ref);
    if (auth) {
      return auth.status === 'captured'
        ? { ref, record: auth, captured: auth.capturedCents }
        : { ok: false, reason: 'already_ended', message: `Authorisation ${ref} is ${auth.status}: nothing to refund` };
    }
    const charge = this.chargeBook.find((c) => c.ref === ref);
    if (!charge) return { ok: false, reason: 'not_found', message: `No payment ${ref}` };
    return charge.status === 'succeeded'
      ? { ref, record: charge, captured: charge.amountCents }
      : { ok: false, reason: 'already_ended', message: `Charge ${ref} is ${charge.status}: nothing to refund` };
  }

  /** The authorisation if it can still be captured or voided, or the refusal saying why not. */
  private open(ref: string): Auth | Extract<GatewayOutcome, { ok: false }> {
    const auth = this.auths.get(ref);
    if (!auth) return { ok: false, reason: 'not_found', message: `No authorisation ${ref}` };
    this.settle(auth);
    if (auth.status === 'expired') return { ok: false, reason: 'expired', message: `Authorisation ${ref} has expired` };
    if (auth.status !== 'authorized') return { ok: false, reason: 'already_ended', message: `Authorisation ${ref} is ${auth.status}` };
    return auth;
  }

  /** Lapses are noticed lazily, when someone looks: no timers to leak in tests. */
  private settle(auth: Auth): void {
    if (auth.status === 'authorized' && this.now() >= auth.expiresAt) auth.status = 'expired';
  }

  /**
   * Latency, faults and idempotency around one operation. `perform` runs at most once per key;
   * a fault "before" leaves the key unseen, so a retry performs it; a fault "after" has recorded
   * the outcome, so a retry gets the same answer and moves no more money.
   */
  private async run(op: MoneyOp, key: string, req: object, perform: () => GatewayOutcome): Promise<GatewayOutcome> {
    const fault = this.drawFault(op);
    await this.travel();
    if (fault && !fault.after) await this.raise(fault);
    const { idempotencyKey: _key, ...params } = req as { idempotencyKey?: string };
    const fingerprint = JSON.stringify([op, params]);
    let seen = this.byKey.get(key);
    if (seen && seen.fingerprint !== fingerprint) throw new IdempotencyKeyReusedError(key);
    if (!seen) {
      seen = { fingerprint, outcome: perform() };
      this.byKey.set(key, seen);
    }
    if (fault) await this.raise(fault);
    return seen.outcome;
  }

  private drawFault(op: GatewayOperation): Fault | null {
    for (const [suffix, fault] of [
      ['TimeoutsNext', { kind: 'timeout', after: true }],
      ['FailuresNext', { kind: 'fail', after: false }],
    ] as const) {
      const left = this.injected.get(op + suffix) ?? 0;
      if (left > 0) {
        this.injected.set(op + suffix, left - 1);
        return fault;
      }
    }
    const { failureRate, timeoutRate } = this.faultRates;
    if (failureRate <= 0 && timeoutRate <= 0) return null;
    const r = this.random();
    if (r >= failureRate + timeoutRate) return null;
    return { kind: r < failureRate ? 'fail' : 'timeout', after: this.random() < 0.5 };
  }

  private async raise(fault: Fault): Promise<never> {
    if (fault.kind === 'timeout') {
      await sleep(this.faultRates.timeoutMs);
      throw new GatewayUnavailableError(`Sandbox gateway timed out after ${this.faultRates.timeoutMs} ms`);
    }
    throw new GatewayUnavailableError('Sandbox gateway connection failed');
  }

  private async travel(): Promise<void> {
    const ms = this.latencyMs + Math.random() * this.jitterMs;
    if (ms > 0) await sleep(ms);
  }
}
