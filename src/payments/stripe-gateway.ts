/**
 * The Stripe gateway: the port on PaymentIntents through the official `stripe` package. An
 * authorisation is a PaymentIntent confirmed with `capture_method: 'manual'` (status
 * `requires_capture`); capture and void are its capture and cancel; a charge confirms with
 * automatic capture; a refund is a Refund on the intent. Our idempotency key goes to Stripe as its
 * `Idempotency-Key`, so a retry under the same key is replayed by Stripe and never moves money twice.
 *
 * After a crash the payment tier settles by the stored reference: `retrieve` reads the intent
 * (with its latest charge, for the refunded amount) — strongly consistent, and needing nothing the
 * dead process knew.
 */
import Stripe from 'stripe';
import {
  assertAmount,
  GatewayUnavailableError,
  IdempotencyKeyReusedError,
  type CaptureRequest,
  type GatewayOperation,
  type GatewayOutcome,
  type GatewayPayment,
  type GatewayPaymentState,
  type PaymentGateway,
  type PaymentRequest,
  type RefundRequest,
  type VoidRequest,
} from './gateway.js';

/** The metadata key that carries our idempotency key on every intent we create (see `lookup`). */
const KEY_METADATA = 'stampede_idempotency_key';

/** Options for {@link StripeGateway}. `host`/`port`/`protocol` let tests aim it at a stand-in. */
export interface StripeGatewayOptions {
  apiKey: string;
  host?: string;
  port?: number;
  protocol?: 'http' | 'https';
  /**
   * Per request, default 1.5 s: a checkout answers within 2 s even when Stripe does not (SPEC §6),
   * 503 PAYMENT_UNAVAILABLE, and the retry with the same keys replays whatever Stripe did.
   */
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
  /** Search is "usually under a minute" behind Stripe's writes: a miss is final only after this long. */
  readonly lookupLagMs = 120_000;
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
      timeout: opts.timeoutMs ?? 1_500,
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
    // The capture's metadata (the order it pays) is merged into the intent's, for `retrieve` to show.
    const params: Stripe.PaymentIntentCaptureParams = { amount_to_capture: req.amountCents, ...(req.metadata ? { metadata: req.metadata } : {}) };
    return this.call('capture', req.idempotencyKey, req.ref, () => this.stripe.paymentIntents.capture(req.ref, params, { idempotencyKey: req.idempotencyKey }));
  }

  void(req: VoidRequest): Promise<GatewayOutcome> {
    return this.call('void', req.idempotencyKey, req.ref, () => this.stripe.paymentIntents.cancel(req.ref, {}, { idempotencyKey: req.idempotencyKey }));
  }

  /** A full or partial refund of a succeeded intent; `ref` of the answer is the Refund's id. */
  async refund(req: RefundRequest): Promise<GatewayOutcome> {
    assertAmount(req.amountCents);
    const key = req.idempotencyKey;
    this.remember(key, { op: 'refund', ref: req.ref });
    let outcome: GatewayOutcome;
    try {
      const refund = await this.stripe.refunds.create({ payment_intent: req.ref, amount: req.amountCents }, { idempotencyKey: key });
      // `pending` is money on its way back (some cards settle refunds later); only failed/canceled is a no.
      outcome =
        refund.status === 'failed' || refund.status === 'canceled'
          ? { ok: false, reason: 'declined', message: `Refund ${refund.id} is ${refund.status}` }
          : { ok: true, ref: refund.id, amountCents: refund.amount };
    } catch (err) {
      outcome = this.refusal('refund', key, err);
    }
    this.remember(key, { op: 'refund', ref: req.ref, outcome });
    return outcome;
  }

  /** The intent as Stripe holds it now, with its latest charge expanded for the refunded amount; null when Stripe has no such intent. */
  async retrieve(ref: string): Promise<GatewayPayment | null> {
    try {
      return paymentOf(await this.stripe.paymentIntents.retrieve(ref, { expand: ['latest_charge'] }));
    } catch (err) {
      if (err instanceof Stripe.errors.StripeInvalidRequestError && err.code === 'resource_missing') return null;
      this.refusal('retrieve', ref, err);
      throw err;
    }
  }

  /**
   * Stripe cannot be asked "what happened under idempotency key K": keys are write-side only.
   * Within this process a map of the keys it sent answers: a key whose reply arrived returns that
   * reply; a capture, void or refund whose reply was lost is judged from the intent's current state
   * (`paymentIntents.retrieve`), `null` meaning "not applied, retry with the same key". An
   * authorise or charge whose reply was lost names no intent, so lookup throws
   * GatewayUnavailableError: retry the original call with the same key (Stripe replays it for 24 h).
   *
   * A key this process never sent (it was sent before a restart) is searched for: every intent we
   * create carries its key in metadata, so `paymentIntents.search` finds the intent of a pending
   * authorisation whose reply died with the process. We chose search over the alternatives because
   * retrying the create needs the card token, which we do not keep, and creating the intent
   * unconfirmed first (to store its id before money moves) would double the calls on the
   * authorise endpoint Stripe limits hardest. Search is eventually consistent (usually under a
   * minute), so a miss is final only for an old enough key: the payment tier asks again for rows
   * younger than `lookupLagMs`. Everything else settles by the stored reference (`retrieve`).
   */
  async lookup(idempotencyKey: string): Promise<GatewayOutcome | null> {
    const known = this.keys.get(idempotencyKey);
    if (!known) return this.search(idempotencyKey);
    if (known.outcome) return known.outcome;
    if (!known.ref) {
      throw new GatewayUnavailableError(
        `The reply to ${known.op} under key ${idempotencyKey} was lost and Stripe cannot be searched by key; retry the original call with the same key`,
      );
    }
    if (known.op === 'refund') {
      const now = await this.retrieve(known.ref);
      return now && now.refundedCents > 0 ? { ok: true, ref: known.ref, amountCents: now.refundedCents } : null;
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

  /** The intent created under a key another process sent, found by the key in its metadata. */
  private async search(idempotencyKey: string): Promise<GatewayOutcome | null> {
    const quoted = idempotencyKey.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
    let found: Stripe.PaymentIntent | undefined;
    try {
      const page = await this.stripe.paymentIntents.search({ query: `metadata['${KEY_METADATA}']:'${quoted}'`, limit: 1 });
      found = page.data[0];
    } catch (err) {
      return this.refusal('lookup', idempotencyKey, err);
    }
    if (!found) return null;
    // Declined at confirmation: Stripe keeps the intent waiting for another payment method.
    if (found.status === 'requires_payment_method') return { ok: false, reason: 'declined', message: `PaymentIntent ${found.id} was declined` };
    // An authorisation happened if the intent got past confirmation, whatever became of it since.
    if (found.capture_method === 'manual') return { ok: true, ref: found.id, amountCents: found.amount };
    return judge('charge', found);
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
      // The key in metadata lets `lookup` (and a human, in the dashboard) find the intent when a reply was lost.
      metadata: { ...req.metadata, [KEY_METADATA]: req.idempotencyKey },
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
        // Nothing captured is left to give back: refunded already, or more asked than remains.
        if (op === 'refund' && (err.code === 'charge_already_refunded' || err.code === 'amount_too_large')) {
          return { ok: false, reason: 'already_ended', message: err.message };
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

/** An intent (its latest charge expanded) in the port's terms. */
function paymentOf(pi: Stripe.PaymentIntent): GatewayPayment {
  const charge = pi.latest_charge && typeof pi.latest_charge === 'object' ? pi.latest_charge : null;
  const capturedCents = pi.status === 'succeeded' ? pi.amount_received : 0;
  const refundedCents = charge?.amount_refunded ?? 0;
  let state: GatewayPaymentState;
  switch (pi.status) {
    case 'requires_capture':
      state = 'authorized';
      break;
    case 'succeeded':
      state = capturedCents > 0 && refundedCents >= capturedCents ? 'refunded' : 'captured';
      break;
    case 'canceled':
      state = 'voided';
      break;
    case 'processing':
      // Money may be moving right now: "don't know yet", never "not captured".
      throw new GatewayUnavailableError(`PaymentIntent ${pi.id} is still processing`);
    default:
      state = 'failed'; // requires_payment_method (declined), requires_action, requires_confirmation
  }
  return { ref: pi.id, state, amountCents: pi.amount, capturedCents, refundedCents, metadata: { ...pi.metadata } };
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
