/**
 * A STAND-IN FOR STRIPE'S API — a test double for a service the test suite cannot reach. It is
 * not Stripe and proves nothing about Stripe itself; it speaks just enough of the v1 wire format
 * for `StripeGateway` to be exercised through the real `stripe` package:
 *
 *   POST /v1/payment_intents              GET  /v1/payment_intents/:id   (expand[]=latest_charge)
 *   POST /v1/payment_intents/:id/capture  POST /v1/payment_intents/:id/cancel
 *   GET  /v1/payment_intents/search       (one `metadata['k']:'v'` clause, always up to date)
 *   POST /v1/refunds                      (payment_intent, amount)
 *
 * A succeeded intent has a charge (`latest_charge`) that keeps the refunded amount, as Stripe's do.
 * Requests arrive form-encoded the way stripe-node's `queryStringifyRequestData` writes them
 * (`metadata[k]=v`, `payment_method_types[0]=card`, brackets left unescaped), with the key in the
 * `Idempotency-Key` header. Responses are Stripe-shaped JSON; errors are `{error: {type, code,
 * decline_code, message, payment_intent}}` with the status stripe-node maps to its error classes
 * (402 → StripeCardError, 400/404 → StripeInvalidRequestError, 5xx → StripeAPIError).
 *
 * Idempotency follows Stripe's documented rules: a replay of a key returns the first status and
 * body (with `Idempotent-Replayed: true`); the same key with other parameters is a 400
 * `idempotency_error`. Injected faults (`failNext`, `hangNext`) model trouble in front of the API,
 * so a fault "before" stores nothing for the key; a fault "after" has done the work first.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

/** One request the stand-in received. */
export interface StandInCall {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  body: Record<string, unknown>;
  status: number;
  /** True when the answer was a replay of an earlier one under the same key. */
  replayed: boolean;
}

/** The stand-in's PaymentIntent (the fields the adapter reads, plus a few for realism). */
export interface StandInIntent {
  id: string;
  object: 'payment_intent';
  amount: number;
  amount_capturable: number;
  amount_received: number;
  currency: string;
  capture_method: 'manual' | 'automatic';
  status: 'requires_payment_method' | 'requires_capture' | 'succeeded' | 'canceled';
  cancellation_reason: string | null;
  payment_method: string | null;
  /** The charge of a succeeded intent (an id; the object with `expand[]=latest_charge`). */
  latest_charge: string | null;
  metadata: Record<string, string>;
  created: number;
  livemode: false;
}

/** The stand-in's Charge: what was taken and how much of it was given back. */
export interface StandInCharge {
  id: string;
  object: 'charge';
  amount: number;
  amount_captured: number;
  amount_refunded: number;
  refunded: boolean;
  payment_intent: string;
  currency: string;
  status: 'succeeded';
}

/** The stand-in's Refund. */
export interface StandInRefund {
  id: string;
  object: 'refund';
  amount: number;
  charge: string;
  payment_intent: string;
  currency: string;
  status: 'succeeded';
  created: number;
}

type Reply = { status: number; body: unknown };
type Fault = { kind: 'fail'; status: number; after: boolean } | { kind: 'hang'; ms: number; after: boolean };

/** Test payment methods and tokens, by how Stripe's test mode treats them. */
const CARDS: Record<string, 'ok' | 'generic_decline' | 'insufficient_funds'> = {
  pm_card_visa: 'ok',
  tok_visa: 'ok',
  pm_card_chargeDeclined: 'generic_decline',
  tok_chargeDeclined: 'generic_decline',
  pm_card_chargeDeclinedInsufficientFunds: 'insufficient_funds',
  tok_chargeDeclinedInsufficientFunds: 'insufficient_funds',
};

/** Decodes stripe-node's form encoding into nested objects (arrays stay index-keyed objects). */
export function decodeForm(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const path = [...key.matchAll(/[^[\]]+/g)].map((m) => m[0]);
    let node = out;
    path.forEach((part, i) => {
      if (i === path.length - 1) node[part] = value;
      else node = (node[part] ??= {}) as Record<string, unknown>;
    });
  }
  return out;
}

const apiError = (status: number, error: Record<string, unknown>): Reply => ({ status, body: { error } });
const missing = (id: string) =>
  apiError(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'intent', message: `No such payment_intent: '${id}'` });
const unexpectedState = (pi: StandInIntent, action: string) =>
  apiError(400, {
    type: 'invalid_request_error',
    code: 'payment_intent_unexpected_state',
    message: `This PaymentIntent could not be ${action} because it has a status of ${pi.status}.`,
    payment_intent: { ...pi },
  });

/** The stand-in server; `start()` it, point `StripeGateway` at `host`/`port`, `stop()` it. */
export class StripeStandIn {
  /** Every request, in arrival order. */
  readonly calls: StandInCall[] = [];
  private readonly intents = new Map<string, StandInIntent>();
  private readonly charges = new Map<string, StandInCharge>();
  private readonly refunds: StandInRefund[] = [];
  private readonly replies = new Map<string, { fingerprint: string; reply: Reply }>();
  private readonly faults: Fault[] = [];
  private readonly hanging = new Set<ReturnType<typeof setTimeout>>();
  private server: Server | undefined;
  port = 0;
  readonly host = '127.0.0.1';

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, this.host, resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const t of this.hanging) clearTimeout(t);
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The next `n` requests get `status` (500 by default); `after` does the work first (a lost reply). */
  failNext(n = 1, opts: { status?: number; after?: boolean } = {}): void {
    for (let i = 0; i < n; i++) this.faults.push({ kind: 'fail', status: opts.status ?? 500, after: opts.after ?? false });
  }

  /** The next `n` requests answer only after `ms` (to trip the client's timeout); `after` as above. */
  hangNext(n = 1, opts: { ms: number; after?: boolean }): void {
    for (let i = 0; i < n; i++) this.faults.push({ kind: 'hang', ms: opts.ms, after: opts.after ?? false });
  }

  /** A PaymentIntent as the stand-in holds it now. */
  intent(id: string): StandInIntent | undefined {
    const pi = this.intents.get(id);
    return pi && { ...pi, metadata: { ...pi.metadata } };
  }

  /** All PaymentIntents created, oldest first. */
  allIntents(): StandInIntent[] {
    return [...this.intents.keys()].map((id) => this.intent(id)!);
  }

  /** The charge of a succeeded intent, as the stand-in holds it now. */
  chargeOf(intentId: string): StandInCharge | undefined {
    const id = this.intents.get(intentId)?.latest_charge;
    const charge = id ? this.charges.get(id) : undefined;
    return charge && { ...charge };
  }

  /** Every refund made, oldest first. */
  allRefunds(): StandInRefund[] {
    return this.refunds.map((r) => ({ ...r }));
  }

  /** Lapse an authorisation the way Stripe does after its validity window (test hook). */
  expire(id: string): void {
    const pi = this.intents.get(id);
    if (pi?.status === 'requires_capture') Object.assign(pi, { status: 'canceled', cancellation_reason: 'automatic', amount_capturable: 0 });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += chunk;
    const method = req.method ?? 'GET';
    const [path, query = ''] = (req.url ?? '/').split('?');
    // A GET's parameters come in the query string, encoded the same way.
    const body = decodeForm(method === 'GET' ? query : text);
    const key = req.headers['idempotency-key'] as string | undefined;
    const call: StandInCall = { method, path, idempotencyKey: key, body, status: 0, replayed: false };
    this.calls.push(call);

    const send = (reply: Reply, replayed = false) => {
      call.status = reply.status;
      call.replayed = replayed;
      if (res.destroyed) return;
      res.writeHead(reply.status, {
        'content-type': 'application/json',
        'request-id': `req_${randomBytes(7).toString('hex')}`,
        ...(key ? { 'idempotency-key': key } : {}),
        ...(replayed ? { 'idempotent-replayed': 'true' } : {}),
      });
      res.end(JSON.stringify(reply.body));
    };

    if (!String(req.headers.authorization ?? '').startsWith('Bearer sk_test_')) {
      return send(apiError(401, { type: 'invalid_request_error', message: 'Invalid API Key provided' }));
    }
    const fault = this.faults.shift();
    const failure: Reply = { status: fault?.kind === 'fail' ? fault.status : 500, body: { error: { type: 'api_error', message: 'Stand-in fault injected' } } };
    if (fault && !fault.after) return this.deliver(fault, failure, send);

    let reply: Reply;
    let replayed = false;
    const fingerprint = JSON.stringify([method, path, body]);
    const stored = method === 'POST' && key ? this.replies.get(key) : undefined;
    if (stored && stored.fingerprint !== fingerprint) {
      reply = apiError(400, {
        type: 'idempotency_error',
        message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
      });
    } else if (stored) {
      ({ reply } = stored);
      replayed = true;
    } else {
      // A snapshot: the intent mutates later, but a replay must repeat the first answer.
      reply = JSON.parse(JSON.stringify(this.route(method, path, body))) as Reply;
      if (method === 'POST' && key) this.replies.set(key, { fingerprint, reply });
    }
    if (fault) return this.deliver(fault, fault.kind === 'fail' ? failure : reply, send, replayed);
    send(reply, replayed);
  }

  private deliver(fault: Fault, reply: Reply, send: (r: Reply, replayed?: boolean) => void, replayed = false): void {
    if (fault.kind === 'fail') return send(reply, replayed);
    const t = setTimeout(() => {
      this.hanging.delete(t);
      send(reply, replayed);
    }, fault.ms);
    this.hanging.add(t);
  }

  private route(method: string, path: string, body: Record<string, unknown>): Reply {
    if (method === 'GET' && path === '/v1/payment_intents/search') return this.search(body);
    if (method === 'POST' && path === '/v1/refunds') return this.refund(body);
    const m = /^\/v1\/payment_intents(?:\/([^/]+))?(?:\/(capture|cancel))?$/.exec(path);
    if (!m) return apiError(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path})` });
    const [, id, action] = m;
    if (method === 'POST' && !id) return this.create(body);
    const pi = id ? this.intents.get(id) : undefined;
    if (!pi) return missing(id ?? '');
    if (method === 'GET' && !action) return { status: 200, body: this.expanded(pi, body) };
    if (method === 'POST' && action === 'capture') return this.capture(pi, body);
    if (method === 'POST' && action === 'cancel') return this.cancel(pi, body);
    return apiError(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path})` });
  }

  private create(body: Record<string, unknown>): Reply {
    const amount = Number(body.amount);
    if (!Number.isInteger(amount) || amount <= 0 || typeof body.currency !== 'string') {
      return apiError(400, { type: 'invalid_request_error', code: 'parameter_invalid_integer', param: 'amount', message: 'Invalid amount or currency' });
    }
    const card = body.payment_method_data as { card?: { token?: string } } | undefined;
    const method = (body.payment_method as string | undefined) ?? card?.card?.token;
    const behaviour = method ? CARDS[method] : undefined;
    if (!method || !behaviour) {
      return apiError(400, { type: 'invalid_request_error', code: 'resource_missing', param: 'payment_method', message: `No such PaymentMethod: '${method}'` });
    }
    const pi: StandInIntent = {
      id: `pi_${randomBytes(12).toString('hex')}`,
      object: 'payment_intent',
      amount,
      amount_capturable: 0,
      amount_received: 0,
      currency: body.currency,
      capture_method: body.capture_method === 'manual' ? 'manual' : 'automatic',
      status: 'requires_payment_method',
      cancellation_reason: null,
      payment_method: method.startsWith('pm_') ? method : `pm_${randomBytes(12).toString('hex')}`,
      latest_charge: null,
      metadata: { ...(body.metadata as Record<string, string> | undefined) },
      created: Math.floor(Date.now() / 1000),
      livemode: false,
    };
    this.intents.set(pi.id, pi);
    if (body.confirm !== 'true') return { status: 200, body: pi };
    if (behaviour !== 'ok') {
      // Stripe keeps the declined PaymentIntent (status requires_payment_method) and attaches it.
      return apiError(402, {
        type: 'card_error',
        code: 'card_declined',
        decline_code: behaviour,
        message: behaviour === 'insufficient_funds' ? 'Your card has insufficient funds.' : 'Your card was declined.',
        payment_intent: { ...pi },
      });
    }
    if (pi.capture_method === 'manual') Object.assign(pi, { status: 'requires_capture', amount_capturable: amount });
    else this.succeed(pi, amount);
    return { status: 200, body: pi };
  }

  private capture(pi: StandInIntent, body: Record<string, unknown>): Reply {
    if (pi.status !== 'requires_capture') return unexpectedState(pi, 'captured');
    const amount = body.amount_to_capture === undefined ? pi.amount_capturable : Number(body.amount_to_capture);
    if (!Number.isInteger(amount) || amount <= 0 || amount > pi.amount_capturable) {
      return apiError(400, { type: 'invalid_request_error', code: 'amount_too_large', param: 'amount_to_capture', message: 'Invalid amount_to_capture' });
    }
    // Capturing less releases the remainder, as Stripe does; the capture's metadata is merged in.
    Object.assign(pi.metadata, body.metadata as Record<string, string> | undefined);
    this.succeed(pi, amount);
    return { status: 200, body: pi };
  }

  /** The money is taken: the intent succeeds with a charge for `amount`. */
  private succeed(pi: StandInIntent, amount: number): void {
    const charge: StandInCharge = {
      id: `ch_${randomBytes(12).toString('hex')}`,
      object: 'charge',
      amount,
      amount_captured: amount,
      amount_refunded: 0,
      refunded: false,
      payment_intent: pi.id,
      currency: pi.currency,
      status: 'succeeded',
    };
    this.charges.set(charge.id, charge);
    Object.assign(pi, { status: 'succeeded', amount_received: amount, amount_capturable: 0, latest_charge: charge.id });
  }

  /** The intent with `latest_charge` as an object when the request asked for it. */
  private expanded(pi: StandInIntent, params: Record<string, unknown>): unknown {
    const expand = Object.values((params.expand as Record<string, string> | undefined) ?? {});
    if (!expand.includes('latest_charge') || !pi.latest_charge) return pi;
    return { ...pi, latest_charge: this.charges.get(pi.latest_charge) };
  }

  /** `metadata['k']:'v'`, the one query form the adapter sends. Unlike Stripe's, this index is never behind. */
  private search(params: Record<string, unknown>): Reply {
    const m = /^metadata\['([^']+)'\]:'((?:[^'\\]|\\.)*)'$/.exec(String(params.query ?? ''));
    if (!m)
      return apiError(400, { type: 'invalid_request_error', code: 'parameter_invalid', param: 'query', message: `Unsupported query: ${String(params.query)}` });
    const [, field, value] = m;
    const wanted = value.replace(/\\(.)/g, '$1');
    const data = [...this.intents.values()].filter((pi) => pi.metadata[field] === wanted);
    return { status: 200, body: { object: 'search_result', url: '/v1/payment_intents/search', has_more: false, next_page: null, data } };
  }

  private refund(body: Record<string, unknown>): Reply {
    const id = String(body.payment_intent ?? '');
    const pi = this.intents.get(id);
    if (!pi) return missing(id);
    // Stripe refunds only a succeeded intent's charge.
    if (pi.status !== 'succeeded' || !pi.latest_charge) return unexpectedState(pi, 'refunded');
    const charge = this.charges.get(pi.latest_charge)!;
    const left = charge.amount_captured - charge.amount_refunded;
    if (left === 0) {
      return apiError(400, { type: 'invalid_request_error', code: 'charge_already_refunded', message: `Charge ${charge.id} has already been refunded.` });
    }
    const amount = body.amount === undefined ? left : Number(body.amount);
    if (!Number.isInteger(amount) || amount <= 0) {
      return apiError(400, { type: 'invalid_request_error', code: 'parameter_invalid_integer', param: 'amount', message: 'Invalid positive integer' });
    }
    if (amount > left) {
      return apiError(400, {
        type: 'invalid_request_error',
        code: 'amount_too_large',
        param: 'amount',
        message: `Refund amount (${amount}) is greater than unrefunded amount on charge (${left})`,
      });
    }
    charge.amount_refunded += amount;
    charge.refunded = charge.amount_refunded === charge.amount_captured;
    const refund: StandInRefund = {
      id: `re_${randomBytes(12).toString('hex')}`,
      object: 'refund',
      amount,
      charge: charge.id,
      payment_intent: pi.id,
      currency: pi.currency,
      status: 'succeeded',
      created: Math.floor(Date.now() / 1000),
    };
    this.refunds.push(refund);
    return { status: 200, body: refund };
  }

  private cancel(pi: StandInIntent, body: Record<string, unknown>): Reply {
    if (pi.status === 'succeeded' || pi.status === 'canceled') return unexpectedState(pi, 'canceled');
    Object.assign(pi, { status: 'canceled', amount_capturable: 0, cancellation_reason: (body.cancellation_reason as string) ?? null });
    return { status: 200, body: pi };
  }
}
