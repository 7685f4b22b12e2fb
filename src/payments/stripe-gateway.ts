/**
 * The Stripe gateway: the port on PaymentIntents through the official `stripe` package. An
 * authorisation is a PaymentIntent confirmed with `capture_method: 'manual'` (status
 * `requires_capture`); capture and void are its capture and cancel; a charge confirms with
 * automatic capture. Our idempotency key goes to Stripe as its `Idempotency-Key`, so a retry under
 * the same key is replayed by Stripe and never moves money twice.
 */
import Stripe from 'stripe';
import {
  assertAmount,
  GatewayUnavailableError,
  IdempotencyKeyReusedError,
  type CaptureRequest,
  type GatewayOperation,
  type GatewayOutcome,
  type PaymentGateway,
  type PaymentRequest,
  type VoidRequest,
} from './gateway.js';

/** Options for {@link StripeGateway}. `host`/`port`/`protocol` let tests aim it at a stand-in. */
export interface StripeGatewayOptions {
  apiKey: string;
  host?: string;
  port?: number;
  protocol?: 'http' | 'https';
  /** Per request, default 10 s: a checkout must answer long before Stripe's own 80 s default. */
  timeoutMs?: number;
  /** How many idempotency keys `lookup` remembers (oldest forgotten first), default 100,000. */
  rememberKeys?: number;
}

/** What this process knows about a key it sent: the intent it touched and, if a reply came, the answer. */
interface KeyRecord {
  op: GatewayOperation;
  ref?: string;
  outcome?: GatewayOutcome;
}

type Refusal = Extract<GatewayOutcome, { ok: false }>;

/** The Stripe-backed payment gateway (`name: 'stripe'`). See the module comment. */
export class StripeGateway implements PaymentGateway {
  readonly name = 'stripe';
  private readonly stripe: Stripe;
  private readonly keys = new Map<string, KeyRecord>();
  private readonly rememberKeys: number;

  constructor(opts: StripeGatewayOptions) {
    this.stripe = new Stripe(opts.apiKey, {
      host: opts.host,
      port: opts.port,
      protocol: opts.protocol,
      // Retries are the caller's decision, made with the same idempotency key. (stripe-node still
      // retries a connection closed before any reply once, with that same key, which is safe.)
      maxNetworkRetries: 0,
      timeout: opts.timeoutMs ?? 10_000,
      telemetry: false,
    });
    this.rememberKeys = opts.rememberKeys ?? 100_000;
  }

  authorize(req: PaymentRequest): Promise<GatewayOutcome> {
    return this.confirm('authorize', req, 'manual');
  }

  charge(req: PaymentRequest): Promise<GatewayOutcome> {
    return this.confirm('charge', req, 'automatic');
  }

  capture(req: CaptureRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    return this.call('capture', req.idempotencyKey, req.ref, () =>
      this.stripe.paymentIntents.capture(req.ref, { amount_to_capture: req.amountCents }, { idempotencyKey: req.idempotencyKey }),
    );
  }

  void(req: VoidRequest): Promise<GatewayOutcome> {
    return this.call('void', req.idempotencyKey, req.ref, () => this.stripe.paymentIntents.cancel(req.ref, {}, { idempotencyKey: req.idempotencyKey }));
  }

  /**
   * Stripe cannot be asked "what happened under idempotency key K" — keys are write-side only, and
   * search is eventually consistent, so useless right after a timeout. The reliable reconciliation
   * is to retry the original call with the same key: Stripe replays its first answer (for 24 h).
   *
   * This lookup therefore works from an in-memory map of the keys this process sent: a key whose
   * reply arrived returns that reply; a capture or void whose reply was lost is judged from the
   * intent's current state (`paymentIntents.retrieve`), `null` meaning "not applied, retry with the
   * same key". An authorise or charge whose reply was lost names no intent, so lookup throws
   * GatewayUnavailableError: retry the original call. Keys from before a restart are unknown (null).
   */
  async lookup(idempotencyKey: string): Promise<GatewayOutcome | null> {
    const known = this.keys.get(idempotencyKey);
    if (!known) return null;
    if (known.outcome) return known.outcome;
    if (!known.ref) {
      throw new GatewayUnavailableError(
        `The reply to ${known.op} under key ${idempotencyKey} was lost and Stripe cannot be searched by key; retry the original call with the same key`,
      );
    }
    let pi: Stripe.PaymentIntent;
    try {
      pi = await this.stripe.paymentIntents.retrieve(known.ref);
    } catch (err) {
      return this.refusal('lookup', idempotencyKey, err);
    }
    const outcome = judge(known.op, pi);
    if (outcome) this.remember(idempotencyKey, { ...known, outcome });
    return outcome;
  }

  private confirm(op: 'authorize' | 'charge', req: PaymentRequest, capture: 'manual' | 'automatic'): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    if (/^\d{12,19}$/.test(req.paymentToken.replace(/[\s-]/g, ''))) {
      // A raw card number must never leave for Stripe (it would put us in PCI scope); the client tokenises.
      return Promise.resolve({ ok: false, reason: 'declined', message: 'Card numbers are not accepted; pay with a Stripe token' });
    }
    const params: Stripe.PaymentIntentCreateParams = {
      amount: req.amountCents,
      currency: req.currency.toLowerCase(),
      capture_method: capture,
      confirm: true,
      // Card only: with automatic payment methods a confirm could demand a redirect (return_url).
      // (API 2026-10-28 renamed `payment_method_types` to `allowed_payment_method_types`.)
      allowed_payment_method_types: ['card'],
      // A server-side confirm cannot show a 3-D Secure challenge: fail as a decline instead of
      // leaving an intent parked in requires_action.
      error_on_requires_action: true,
      // The key in metadata lets a human find the intent in the dashboard when a reply was lost.
      metadata: { ...req.metadata, stampede_idempotency_key: req.idempotencyKey },
      ...paymentMethodParams(req.paymentToken),
    };
    return this.call(op, req.idempotencyKey, undefined, () => this.stripe.paymentIntents.create(params, { idempotencyKey: req.idempotencyKey }));
  }

  /** One Stripe call: remember the key before sending, translate the reply or the error after. */
  private async call(op: GatewayOperation, key: string, ref: string | undefined, send: () => Promise<Stripe.PaymentIntent>): Promise<GatewayOutcome> {
    this.remember(key, { op, ref });
    let outcome: GatewayOutcome;
    try {
      const pi = await send();
      outcome = judge(op, pi) ?? { ok: false, reason: 'declined', message: `PaymentIntent ${pi.id} is ${pi.status}` };
      ref = pi.id;
    } catch (err) {
      outcome = this.refusal(op, key, err);
      ref ??= (err as Stripe.errors.StripeError).payment_intent?.id;
    }
    this.remember(key, { op, ref, outcome });
    return outcome;
  }

  /** Stripe's errors in the port's terms: a refusal value, or a thrown "don't know". */
  private refusal(op: GatewayOperation, key: string, err: unknown): Refusal {
    if (!(err instanceof Stripe.errors.StripeError)) throw err;
    switch (err.type) {
      case 'StripeCardError':
        return { ok: false, reason: err.decline_code === 'insufficient_funds' ? 'insufficient_funds' : 'declined', message: err.message };
      case 'StripeInvalidRequestError':
        if (err.code === 'resource_missing') {
          // On create the missing thing is the payment method: an unusable token is a decline.
          return op === 'authorize' || op === 'charge'
            ? { ok: false, reason: 'declined', message: err.message }
            : { ok: false, reason: 'not_found', message: err.message };
        }
        if (err.code === 'payment_intent_unexpected_state') {
          const pi = err.payment_intent;
          return pi?.status === 'canceled' && pi.cancellation_reason === 'automatic'
            ? { ok: false, reason: 'expired', message: err.message }
            : { ok: false, reason: 'already_ended', message: err.message };
        }
        throw err; // anything else is a malformed request: a bug to surface, not a decline
      case 'StripeIdempotencyError':
        throw new IdempotencyKeyReusedError(key);
      case 'StripeConnectionError':
      case 'StripeAPIError': // 5xx, and 409 "a request with this key is still in progress"
      case 'StripeRateLimitError':
        throw new GatewayUnavailableError(`Stripe ${op}: ${err.message}`, { cause: err });
      default:
        throw err; // authentication / permission: configuration, which retrying will not fix
    }
  }

  private remember(key: string, record: KeyRecord): void {
    this.keys.set(key, record);
    if (this.keys.size > this.rememberKeys) this.keys.delete(this.keys.keys().next().value!);
  }
}

/**
 * Tokens (`tok_…`) are not PaymentMethods; Stripe turns one into a PaymentMethod through
 * `payment_method_data[card][token]`. The typings omit `card` there (raw card data is PCI
 * territory), hence the cast. Anything else (`pm_…`) is a PaymentMethod id.
 */
function paymentMethodParams(token: string): Partial<Stripe.PaymentIntentCreateParams> {
  if (!token.startsWith('tok_')) return { payment_method: token };
  return { payment_method_data: { type: 'card', card: { token } } as unknown as Stripe.PaymentIntentCreateParams.PaymentMethodData };
}

/** The outcome an intent's state shows for an operation; null when the operation has not taken effect. */
function judge(op: GatewayOperation, pi: Stripe.PaymentIntent): GatewayOutcome | null {
  const lapsed = pi.status === 'canceled' && pi.cancellation_reason === 'automatic';
  const ended = (): Refusal =>
    lapsed
      ? { ok: false, reason: 'expired', message: `PaymentIntent ${pi.id} lapsed` }
      : { ok: false, reason: 'already_ended', message: `PaymentIntent ${pi.id} is ${pi.status}` };
  switch (op) {
    case 'authorize':
      return pi.status === 'requires_capture' ? { ok: true, ref: pi.id, amountCents: pi.amount_capturable } : null;
    case 'charge':
      return pi.status === 'succeeded' ? { ok: true, ref: pi.id, amountCents: pi.amount_received } : null;
    case 'capture':
      if (pi.status === 'succeeded') return { ok: true, ref: pi.id, amountCents: pi.amount_received };
      return pi.status === 'requires_capture' ? null : ended();
    case 'void':
      if (pi.status === 'canceled' && !lapsed) return { ok: true, ref: pi.id, amountCents: pi.amount };
      return pi.status === 'requires_capture' ? null : ended();
    default:
      return null;
  }
}
