/**
 * The payment gateway port: the one seam between the payment tier and whoever moves the money
 * (the in-process sandbox, or Stripe). The checkout tier only ever talks to this interface.
 *
 * Two kinds of "no": a refusal is a value (`{ok: false, reason}`) because declines are business
 * as usual in a flash sale; not knowing is an exception (`GatewayUnavailableError`) because the
 * caller must then retry with the same idempotency key or reconcile through `retrieve` (by the
 * stored reference) or `lookup` (by key, for a call whose reply never named a reference).
 */
import { StampedeError } from '../errors.js';

/** Why the gateway said no. */
export type RefusalReason =
  /** The card was refused (or the token is unknown / unusable). */
  | 'declined'
  /** The card was refused for lack of funds (the sandbox's `tok_insufficientFunds` fails at capture). */
  | 'insufficient_funds'
  /** The authorisation lapsed (card networks drop holds after ~7 days); nothing is held any more. */
  | 'expired'
  /** No authorisation with that ref. */
  | 'not_found'
  /** The authorisation is no longer open: already captured, voided or failed (for a refund: nothing captured is left to give back). */
  | 'already_ended';

/** The answer to one gateway call. `ref` is the gateway's own id (authorisation / charge id). */
export type GatewayOutcome = { ok: true; ref: string; amountCents: number } | { ok: false; reason: RefusalReason; message: string };

/**
 * The gateway did not answer (timeout, 5xx, network, local pacing gave up). The operation may or
 * may not have happened: retry with the same idempotency key, or ask `lookup`.
 */
export class GatewayUnavailableError extends Error {
  constructor(message = 'The payment gateway did not answer', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayUnavailableError';
  }
}

/**
 * An idempotency key was reused for a different operation or different parameters. A bug in the
 * caller, never a business outcome: the gateway refuses rather than guess which request was meant.
 */
export class IdempotencyKeyReusedError extends Error {
  constructor(key: string) {
    super(`Idempotency key "${key}" was already used with other parameters`);
    this.name = 'IdempotencyKeyReusedError';
  }
}

/** Authorise (hold) an amount on a card, or charge it outright. */
export interface PaymentRequest {
  idempotencyKey: string;
  /** A gateway token (`tok_visa`, `pm_…`) or, for the sandbox only, a test card number. */
  paymentToken: string;
  amountCents: number;
  /** ISO 4217, lower case (`eur`). */
  currency: string;
  metadata?: Record<string, string>;
}

/** Capture part or all of an authorisation; the rest is released. */
export interface CaptureRequest {
  idempotencyKey: string;
  ref: string;
  amountCents: number;
  /** Kept on the payment at the gateway (`order`: the order it pays), so `retrieve` can tell whose capture it was. */
  metadata?: Record<string, string>;
}

/** Release an authorisation without taking any money. */
export interface VoidRequest {
  idempotencyKey: string;
  ref: string;
}

/** Give back captured money (part or all of what was captured and not yet refunded). */
export interface RefundRequest {
  idempotencyKey: string;
  /** The captured authorisation's or charge's ref. */
  ref: string;
  amountCents: number;
}

/** Where a payment stands at the gateway. A lapsed authorisation is `voided`, a declined one `failed`. */
export type GatewayPaymentState = 'authorized' | 'captured' | 'voided' | 'refunded' | 'failed';

/**
 * What the gateway says about a reference now: the answer that survives a crash, because the
 * reference is stored in the ledger while an idempotency key's reply lives only in the process
 * that sent it. `refunded` means everything captured was given back; a partial refund stays
 * `captured` with `refundedCents` > 0.
 */
export interface GatewayPayment {
  ref: string;
  state: GatewayPaymentState;
  /** Authorised (or charged) amount. */
  amountCents: number;
  capturedCents: number;
  refundedCents: number;
  /** What was sent with the authorisation/charge and its capture (`order`, `payment`, `sale` ...). */
  metadata: Record<string, string>;
}

/** The operations a gateway offers; used to name pacing buckets, fault injection and records. */
export type GatewayOperation = 'authorize' | 'capture' | 'void' | 'charge' | 'refund' | 'lookup' | 'retrieve';

/**
 * A payment gateway. Every method is idempotent per `idempotencyKey`: the same key returns the
 * first outcome and never moves money twice. Reusing a key with other parameters throws
 * `IdempotencyKeyReusedError`.
 */
export interface PaymentGateway {
  /** `'sandbox'` or `'stripe'`. */
  readonly name: string;
  authorize(req: PaymentRequest): Promise<GatewayOutcome>;
  /** Partial capture is allowed (amount ≤ authorised); the remainder is released. */
  capture(req: CaptureRequest): Promise<GatewayOutcome>;
  void(req: VoidRequest): Promise<GatewayOutcome>;
  /** Authorise and capture in one step. */
  charge(req: PaymentRequest): Promise<GatewayOutcome>;
  /**
   * Give back captured money. `ok` carries the refund's own id as `ref` and the amount it gave
   * back; `already_ended` when nothing captured is left to refund, `not_found` for an unknown ref.
   */
  refund(req: RefundRequest): Promise<GatewayOutcome>;
  /**
   * What the gateway says about a stored reference now (`null`: it does not know the ref). The
   * way to settle after a crash: it needs nothing from the process that made the payment.
   */
  retrieve(ref: string): Promise<GatewayPayment | null>;
  /**
   * What the gateway did under an idempotency key (for reconciliation after a timeout). `null` if
   * it never saw the key — or, for a capture/void, has not applied it yet — so retrying the
   * original call with the same key is safe. Only for a call whose reply never named a
   * reference (an authorisation or charge whose answer was lost); may be eventually consistent
   * for keys another process sent (Stripe answers it by search): see `lookupLagMs`.
   */
  lookup(idempotencyKey: string): Promise<GatewayOutcome | null>;
  /**
   * How long after a call a `null` from `lookup` may still turn into an answer; absent or 0 when
   * lookup is exact at once. A payment row younger than this whose key lookup does not know is
   * asked about again on a later pass rather than written off.
   */
  readonly lookupLagMs?: number;
}

/** Throws a RangeError for amounts no gateway would accept: a caller bug, not a decline. */
export function assertAmount(amountCents: number): void {
  if (!Number.isSafeInteger(amountCents) || amountCents <= 0) {
    throw new RangeError(`amountCents must be a positive integer, got ${amountCents}`);
  }
}

/**
 * The HTTP face of a gateway refusal (402 PAYMENT_DECLINED). The reason travels in the body so a
 * client can tell "card declined" from "authorisation expired".
 */
export function paymentRefusal(outcome: Extract<GatewayOutcome, { ok: false }>): StampedeError {
  return new StampedeError('PAYMENT_DECLINED', outcome.message, { extra: { reason: outcome.reason } });
}

/** The HTTP face of a gateway that did not answer (503 PAYMENT_UNAVAILABLE, retry shortly). */
export function paymentUnavailable(retryAfterSec = 1): StampedeError {
  return new StampedeError('PAYMENT_UNAVAILABLE', undefined, { retryAfter: retryAfterSec });
}

/**
 * One gateway call in the payment tier's terms: no answer is 503 PAYMENT_UNAVAILABLE (retry
 * shortly, same keys); a key reused with other parameters is a request still being settled —
 * a pending authorisation retried with another card, whose first attempt holds the key.
 */
export async function askGateway<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof GatewayUnavailableError) throw paymentUnavailable();
    if (err instanceof IdempotencyKeyReusedError)
      throw new StampedeError('REQUEST_IN_PROGRESS', 'An earlier authorisation is still being settled; retry in a moment', { retryAfter: 2 });
    throw err;
  }
}
