/**
 * Pacing calls to a payment gateway. Processors rate-limit (Stripe allows about 25 requests a
 * second per endpoint in live mode), and at T=0 a flash sale wants to capture hundreds of cards at
 * once. A refused capture is far worse than a late one, so over budget we wait in line — first
 * come, first served — instead of failing; only a wait longer than `maxWaitMs` gives up.
 */
import {
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

/** Options for {@link TokenBucket}. */
export interface TokenBucketOptions {
  /** Sustained rate: tokens added per second. */
  ratePerSec: number;
  /** Bucket size: how many calls may go at once after a quiet spell. */
  burst: number;
  /**
   * Give up (GatewayUnavailableError) instead of queueing when the wait would be longer than
   * this. Decided on arrival, since the line's speed is known: no point waiting only to fail.
   */
  maxWaitMs?: number;
  /** Monotonic clock in ms; injectable so tests can use fake timers. */
  now?: () => number;
}

/** What a gateway call waits on: a node's own {@link TokenBucket}, or one shared through Redis (shared-pacing.ts). */
export interface Pacer {
  /** Resolves when the caller may go; rejects with GatewayUnavailableError when the wait would be too long. */
  take(): Promise<void>;
  readonly calls: number;
  readonly waited: number;
  readonly rejected: number;
  readonly queueLength: number;
}

interface Waiter {
  resolve: () => void;
}

/** A token bucket whose over-budget callers wait in FIFO order. */
export class TokenBucket implements Pacer {
  private readonly ratePerSec: number;
  private readonly burst: number;
  private readonly maxWaitMs: number;
  private readonly now: () => number;
  private tokens: number;
  private refilledAt: number;
  private readonly line: Waiter[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private counters = { calls: 0, waited: 0, rejected: 0 };

  constructor(opts: TokenBucketOptions) {
    if (!(opts.ratePerSec > 0) || !(opts.burst >= 1)) throw new RangeError('TokenBucket needs ratePerSec > 0 and burst >= 1');
    this.ratePerSec = opts.ratePerSec;
    this.burst = opts.burst;
    this.maxWaitMs = opts.maxWaitMs ?? Infinity;
    this.now = opts.now ?? (() => performance.now());
    this.tokens = opts.burst;
    this.refilledAt = this.now();
  }

  /** Calls to `take` so far. */
  get calls(): number {
    return this.counters.calls;
  }

  /** Calls that had to wait in line. */
  get waited(): number {
    return this.counters.waited;
  }

  /** Calls refused because the wait would have passed `maxWaitMs`. */
  get rejected(): number {
    return this.counters.rejected;
  }

  /** Callers waiting right now. */
  get queueLength(): number {
    return this.line.length;
  }

  /** Resolves when the caller may go; waits its turn behind earlier callers. */
  take(): Promise<void> {
    this.counters.calls += 1;
    this.refill();
    // Only jump straight in when nobody is waiting: otherwise a newcomer could steal the token
    // a queued caller was about to get, and FIFO would be a lie.
    if (this.line.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    const tokensShort = this.line.length + 1 - this.tokens;
    const waitMs = (tokensShort / this.ratePerSec) * 1000;
    if (waitMs > this.maxWaitMs) {
      this.counters.rejected += 1;
      return Promise.reject(new GatewayUnavailableError(`Payment gateway pacing: wait of ${Math.ceil(waitMs)} ms exceeds ${this.maxWaitMs} ms`));
    }
    this.counters.waited += 1;
    return new Promise<void>((resolve) => {
      this.line.push({ resolve });
      this.pump();
    });
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.ratePerSec);
    this.refilledAt = now;
  }

  /** Hands out tokens to the head of the line, then sleeps until the next one is due. */
  private pump(): void {
    if (this.timer) return;
    this.refill();
    while (this.line.length > 0 && this.tokens >= 1) {
      this.tokens -= 1;
      this.line.shift()!.resolve();
    }
    if (this.line.length === 0) return;
    // Round up so we never wake a hair early and spin on a fraction of a token.
    const dueMs = Math.max(1, Math.ceil(((1 - this.tokens) / this.ratePerSec) * 1000));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, dueMs);
  }
}

/** A bucket (or another pacer), or the options to make a node's own bucket. */
export type BucketSpec = Pacer | TokenBucketOptions;

/** Options for {@link PacedGateway}. */
export interface PacedGatewayOptions {
  /** The bucket every operation shares unless it has its own. */
  shared: BucketSpec;
  /** Separate budgets per operation (Stripe limits each endpoint on its own). */
  perOperation?: Partial<Record<GatewayOperation, BucketSpec>>;
}

const OPERATIONS: GatewayOperation[] = ['authorize', 'capture', 'void', 'charge', 'refund', 'lookup', 'retrieve'];
const toBucket = (spec: BucketSpec): Pacer => ('take' in spec ? spec : new TokenBucket(spec));

/** A gateway decorator that takes a token before each call to the gateway it wraps. */
export class PacedGateway implements PaymentGateway {
  readonly name: string;
  readonly lookupLagMs?: number;
  private readonly buckets: Record<GatewayOperation, Pacer>;

  constructor(
    private readonly inner: PaymentGateway,
    opts: PacedGatewayOptions,
  ) {
    this.name = inner.name;
    this.lookupLagMs = inner.lookupLagMs;
    const shared = toBucket(opts.shared);
    this.buckets = Object.fromEntries(OPERATIONS.map((op) => [op, opts.perOperation?.[op] ? toBucket(opts.perOperation[op]) : shared])) as Record<
      GatewayOperation,
      Pacer
    >;
  }

  /** The bucket an operation draws from (several operations may share one). */
  bucket(op: GatewayOperation): Pacer {
    return this.buckets[op];
  }

  /** Counters per operation's bucket: calls, waited, rejected and the current line. */
  stats(): Record<GatewayOperation, { calls: number; waited: number; rejected: number; queueLength: number }> {
    const out = {} as ReturnType<PacedGateway['stats']>;
    for (const op of OPERATIONS) {
      const b = this.buckets[op];
      out[op] = { calls: b.calls, waited: b.waited, rejected: b.rejected, queueLength: b.queueLength };
    }
    return out;
  }

  async authorize(req: PaymentRequest): Promise<GatewayOutcome> {
    await this.buckets.authorize.take();
    return this.inner.authorize(req);
  }

  async capture(req: CaptureRequest): Promise<GatewayOutcome> {
    await this.buckets.capture.take();
    return this.inner.capture(req);
  }

  async void(req: VoidRequest): Promise<GatewayOutcome> {
    await this.buckets.void.take();
    return this.inner.void(req);
  }

  async charge(req: PaymentRequest): Promise<GatewayOutcome> {
    await this.buckets.charge.take();
    return this.inner.charge(req);
  }

  async refund(req: RefundRequest): Promise<GatewayOutcome> {
    await this.buckets.refund.take();
    return this.inner.refund(req);
  }

  async retrieve(ref: string): Promise<GatewayPayment | null> {
    await this.buckets.retrieve.take();
    return this.inner.retrieve(ref);
  }

  async lookup(idempotencyKey: string): Promise<GatewayOutcome | null> {
    await this.buckets.lookup.take();
    return this.inner.lookup(idempotencyKey);
  }
}
