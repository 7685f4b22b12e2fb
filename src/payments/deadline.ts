/**
 * A deadline on every call to the card network (SPEC §6): a call without an answer after
 * `ms` fails as `GatewayUnavailableError` (503 PAYMENT_UNAVAILABLE to a shopper, "try again
 * next pass" to a sweeper), while the call itself runs on. Every call carries an idempotency
 * key, so the retry replays whatever the late call did; a reference it created is found by
 * `lookup` or `retrieve`.
 */
import { withDeadline } from '../async-limits.js';
import {
  GatewayUnavailableError,
  type CaptureRequest,
  type GatewayOutcome,
  type GatewayPayment,
  type PaymentGateway,
  type PaymentRequest,
  type RefundRequest,
  type VoidRequest,
} from './gateway.js';

/** A card network answers in well under a second; past this the shopper is told to retry. */
export const GATEWAY_DEADLINE_MS = 1500;

export class DeadlineGateway implements PaymentGateway {
  readonly name: string;
  readonly lookupLagMs?: number;

  constructor(
    private readonly inner: PaymentGateway,
    private readonly ms = GATEWAY_DEADLINE_MS,
  ) {
    this.name = inner.name;
    if (inner.lookupLagMs !== undefined) this.lookupLagMs = inner.lookupLagMs;
  }

  authorize(req: PaymentRequest): Promise<GatewayOutcome> {
    return this.within('authorize', this.inner.authorize(req));
  }
  capture(req: CaptureRequest): Promise<GatewayOutcome> {
    return this.within('capture', this.inner.capture(req));
  }
  void(req: VoidRequest): Promise<GatewayOutcome> {
    return this.within('void', this.inner.void(req));
  }
  charge(req: PaymentRequest): Promise<GatewayOutcome> {
    return this.within('charge', this.inner.charge(req));
  }
  refund(req: RefundRequest): Promise<GatewayOutcome> {
    return this.within('refund', this.inner.refund(req));
  }
  retrieve(ref: string): Promise<GatewayPayment | null> {
    return this.within('retrieve', this.inner.retrieve(ref));
  }
  lookup(idempotencyKey: string): Promise<GatewayOutcome | null> {
    return this.within('lookup', this.inner.lookup(idempotencyKey));
  }

  private within<T>(op: string, call: Promise<T>): Promise<T> {
    return withDeadline(call, this.ms, () => new GatewayUnavailableError(`The payment gateway did not answer ${op} within ${this.ms} ms`));
  }
}
