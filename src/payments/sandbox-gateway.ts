/**
 * The sandbox gateway: an in-process stand-in for a card processor, and the default. It follows
 * the familiar test cards (SPEC §5), keeps a book of every authorisation so tests can prove that
 * each one ended and none was captured twice, and can be told to lose answers — the failure that
 * makes payment code hard: the processor did the work but the reply never arrived.
 *
 * Where its book lives is the deployment's choice (sandbox-book.ts). By default it is this
 * process's memory: a new SandboxGateway knows no reference and no key, as if the processor had
 * forgotten everything, and tests of a restart keep the same instance (the processor outlives
 * the node) or take a fresh one to prove the ledger's own rows are enough. On Redis the runtime
 * gives it a book in the engine's Redis, shared by every node and worker process as Stripe's
 * would be; latency and faults stay each instance's own (they are the network between this
 * process and the processor).
 */
import { randomBytes } from 'node:crypto';
import {
  assertAmount,
  GatewayUnavailableError,
  type CaptureRequest,
  type GatewayOperation,
  type GatewayOutcome,
  type GatewayPayment,
  type PaymentGateway,
  type PaymentRequest,
  type RefundRequest,
  type VoidRequest,
} from './gateway.js';
import { MemorySandboxBook, type CardBehaviour, type SandboxAuthorization, type SandboxBook, type SandboxCharge, type SandboxStep } from './sandbox-book.js';

export type { SandboxAuthorization, SandboxBook, SandboxCharge } from './sandbox-book.js';

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
  /** Where the network keeps its book: this process's memory by default (see sandbox-book.ts). */
  book?: SandboxBook;
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

interface Fault {
  kind: 'fail' | 'timeout';
  /** True when the operation is performed before the error: the reply is what got lost. */
  after: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const newRef = (prefix: string) => `${prefix}_sbx_${randomBytes(9).toString('hex')}`;

/** How a retrieved record reads in the port's terms. */
const PAYMENT_STATE = {
  authorized: 'authorized',
  captured: 'captured',
  refunded: 'refunded',
  voided: 'voided',
  expired: 'voided',
  declined: 'failed',
  succeeded: 'captured',
} as const;

/** The in-process payment gateway (`name: 'sandbox'`). See the module comment. */
export class SandboxGateway implements PaymentGateway {
  readonly name = 'sandbox';
  /** Where this network keeps its authorisations, charges and idempotency keys. */
  readonly book: SandboxBook;
  private readonly latencyMs: number;
  private readonly jitterMs: number;
  private readonly random: () => number;
  private readonly authTtlMs: number;
  private readonly now: () => number;
  private faultRates: SandboxFaults;
  private readonly injected = new Map<string, number>();

  constructor(opts: SandboxGatewayOptions = {}) {
    this.latencyMs = opts.latencyMs ?? 25;
    this.jitterMs = opts.jitterMs ?? 10;
    this.random = opts.random ?? Math.random;
    this.authTtlMs = opts.authTtlMs ?? 7 * 24 * 3600_000;
    this.now = opts.now ?? Date.now;
    this.faultRates = { failureRate: opts.failureRate ?? 0, timeoutRate: opts.timeoutRate ?? 0, timeoutMs: opts.timeoutMs ?? 1000 };
    this.book = opts.book ?? new MemorySandboxBook();
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

  /**
   * A snapshot of every authorisation, oldest first, with lapsed ones shown as `expired`. At once,
   * so only for a book in memory (the default); {@link listAuthorizations} reads any book.
   */
  authorizations(): SandboxAuthorization[] {
    return this.memoryBook('authorizations').authorizationsNow(this.now());
  }

  /** A snapshot of every direct charge, oldest first (a book in memory only; {@link listCharges} reads any). */
  charges(): SandboxCharge[] {
    return this.memoryBook('charges').chargesNow();
  }

  /** Every authorisation in the book, oldest first, lapsed ones as `expired` (on Redis: a SCAN of the deployment's prefix). */
  listAuthorizations(): Promise<SandboxAuthorization[]> {
    return this.book.authorizations(this.now());
  }

  /** Every direct charge in the book, oldest first. */
  listCharges(): Promise<SandboxCharge[]> {
    return this.book.charges();
  }

  authorize(req: PaymentRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    return this.run('authorize', req, () => this.opening('authorize', 'auth', req));
  }

  capture(req: CaptureRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    return this.run('capture', req, () => ({ op: 'capture', ref: req.ref, amountCents: req.amountCents, metadata: { ...req.metadata }, now: this.now() }));
  }

  void(req: VoidRequest): Promise<GatewayOutcome> {
    return this.run('void', req, () => ({ op: 'void', ref: req.ref, now: this.now() }));
  }

  charge(req: PaymentRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    return this.run('charge', req, () => this.opening('charge', 'ch', req));
  }

  refund(req: RefundRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    return this.run('refund', req, () => ({ op: 'refund', ref: req.ref, amountCents: req.amountCents, refundRef: newRef('re') }));
  }

  async retrieve(ref: string): Promise<GatewayPayment | null> {
    await this.read('retrieve');
    const found = await this.book.payment(ref, this.now());
    if (!found) return null;
    const { record } = found;
    const captured = found.kind === 'authorization' ? found.record.capturedCents : found.record.status === 'declined' ? 0 : found.record.amountCents;
    return {
      ref,
      state: PAYMENT_STATE[record.status],
      amountCents: record.amountCents,
      capturedCents: captured,
      refundedCents: record.refundedCents,
      metadata: { ...record.metadata },
    };
  }

  async lookup(idempotencyKey: string): Promise<GatewayOutcome | null> {
    await this.read('lookup');
    return this.book.lookup(idempotencyKey);
  }

  private opening(op: 'authorize' | 'charge', refPrefix: string, req: PaymentRequest): SandboxStep {
    const createdAt = this.now();
    return {
      op,
      ref: newRef(refPrefix),
      amountCents: req.amountCents,
      currency: req.currency,
      behaviour: cardBehaviour(req.paymentToken),
      createdAt,
      expiresAt: createdAt + this.authTtlMs,
      metadata: { ...req.metadata },
    };
  }

  private memoryBook(helper: string): MemorySandboxBook {
    if (this.book instanceof MemorySandboxBook) return this.book;
    throw new Error(`SandboxGateway.${helper}() reads a book in memory; this one is shared (await list${helper[0].toUpperCase()}${helper.slice(1)}())`);
  }

  /** A read is a network call too, so it can fail — but it changes nothing, so whatever the fault, nothing was done. */
  private async read(op: 'lookup' | 'retrieve'): Promise<void> {
    const fault = this.drawFault(op);
    await this.travel();
    if (fault) await this.raise(fault);
  }

  /**
   * Latency, faults and idempotency around one operation. The book applies the step at most once
   * per key; a fault "before" leaves the key unseen, so a retry performs it; a fault "after" has
   * recorded the outcome, so a retry gets the same answer and moves no more money.
   */
  private async run(op: MoneyOp, req: { idempotencyKey: string }, step: () => SandboxStep): Promise<GatewayOutcome> {
    const fault = this.drawFault(op);
    await this.travel();
    if (fault && !fault.after) await this.raise(fault);
    const { idempotencyKey: key, ...params } = req;
    const outcome = await this.book.apply(key, JSON.stringify([op, params]), step());
    if (fault) await this.raise(fault);
    return outcome;
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
