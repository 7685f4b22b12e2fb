/**
 * The chaos buyers: people who enter the queue, wait their turn (polling status every 2 s, or an
 * event stream), and then buy one unit in one of three ways — pay at once (a card authorised
 * while they waited, captured by the purchase), pay later (a reservation, then `/pay` a little
 * before it lapses), or never (a reservation they abandon, so its units come back). Anyone told
 * "sold out" keeps watching and buys when units come back, so demand outlasts every lapse.
 *
 * Like the shop's page, a buyer retries what says "later" — a 503 after its `Retry-After`, a
 * request with no answer, an idempotency key still "in progress" — with the same key, within a
 * bounded budget; a request with no answer on one of two nodes goes to the other (a balancer).
 */
import { now, type Reply } from '../rehearsal/client.js';
import type { Identities } from '../rehearsal/identities.js';
import type { RecordingClient } from './answers.js';

/** How a buyer pays: with a card authorised while waiting, a little after reserving, or never. */
export type PayKind = 'now' | 'later' | 'never';

export type BuyerOutcome =
  | 'pending'
  /** Paid: the order is confirmed. */
  | 'bought'
  /** Reserved and walked away (the "never" buyers). */
  | 'abandoned'
  /** Paid too late: `/pay` said the window passed. */
  | 'lapsed'
  /** Watched until the end of the run and never got a unit. */
  | 'sold_out'
  /** Retried for the whole budget without a final answer. */
  | 'gave_up'
  | 'error';

export interface Buyer {
  n: number;
  kind: PayKind;
  /** The node this buyer talks to (a balancer's sticky choice); moves when that node stops answering. */
  node: number;
  channel: 'poll' | 'sse';
  address: string;
  arriveAt: number;
  userId?: string;
  outcome: BuyerOutcome;
  /** Orders answered to this buyer (201 or 200). */
  orders: string[];
  /** Purchase rounds tried (a new Idempotency-Key each). */
  rounds: number;
  error?: string;
}

export interface BuyerContext {
  clients: RecordingClient[];
  ids: Identities;
  saleId: string;
  sku: string;
  reservationMs: number;
  /** How long one request is retried with the same key before the buyer gives up (ms). */
  retryBudgetMs: number;
  stopped: boolean;
  onStop: Promise<void>;
}

type Turn = 'admitted' | 'purchased' | 'ended' | 'restarted' | 'stopped';
type Round = 'bought' | 'abandoned' | 'lapsed' | 'sold_out' | 'declined' | 'restarted' | 'not_admitted' | 'ended' | 'gave_up' | 'error';

const POLL_MS = 2000;
/** Purchase rounds (each a new key: after sold out, a decline, a restarted queue) before a buyer stops. */
const MAX_ROUNDS = 12;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const jitter = (ms: number) => ms * (0.8 + Math.random() * 0.4);
const code = (r: Reply): string | undefined => r.body?.error?.code;
/**
 * What a page retries with the same key: no answer, any 5xx, 429, a key still in progress — and a
 * sale it was just showing that is suddenly "not found" (the page reloads; the check reports it).
 */
const retryable = (r: Reply) =>
  r.status === 0 ||
  r.status >= 500 ||
  r.status === 429 ||
  (r.status === 409 && code(r) === 'REQUEST_IN_PROGRESS') ||
  (r.status === 404 && code(r) === 'SALE_NOT_FOUND');

/** Sleeps, waking early when the run stops. */
async function pause(ctx: BuyerContext, ms: number): Promise<void> {
  await Promise.race([sleep(ms), ctx.onStop]);
}

export async function buyer(ctx: BuyerContext, b: Buyer): Promise<void> {
  try {
    await pause(ctx, b.arriveAt - now());
    if (ctx.stopped) return;
    const id = await ctx.ids.issue('human', b.n, ctx.clients[b.node].agent(b.address, 2));
    b.userId = id.userId;
    const headers = { authorization: `Bearer ${id.token}` };
    let ticket = await enter(ctx, b, headers);
    if (!ticket) return;
    let authorised: Promise<boolean> | null = b.kind === 'now' ? preAuthorise(ctx, b, headers, ticket) : null;
    let notAdmitted = 0;
    while (!ctx.stopped) {
      const turn = await waitTurn(ctx, b, ticket);
      if (turn === 'restarted') {
        // The queue was rebuilt: enter again, as the page does, and authorise again.
        ticket = await enter(ctx, b, headers);
        if (!ticket) return;
        if (b.kind === 'now') authorised = preAuthorise(ctx, b, headers, ticket);
        continue;
      }
      if (turn === 'stopped') break;
      if (turn !== 'admitted') {
        // 'purchased' (a live order from an answer that never reached us) or 'ended'.
        b.outcome = turn === 'purchased' ? 'bought' : 'sold_out';
        return;
      }
      if (b.rounds >= MAX_ROUNDS) return void fail(b, `${MAX_ROUNDS} purchase rounds without an end`);
      const card = authorised ? await authorised : false;
      const round = await buyOnce(ctx, b, headers, ticket, card);
      if (round === 'restarted') {
        ticket = await enter(ctx, b, headers);
        if (!ticket) return;
        if (b.kind === 'now') authorised = preAuthorise(ctx, b, headers, ticket);
        continue;
      }
      if (round === 'declined') {
        // A card refused (or an authorisation a restarted node no longer knows): pay with the card directly next time.
        authorised = null;
        continue;
      }
      if (round === 'not_admitted') {
        if (++notAdmitted > 10) return void fail(b, 'purchase: NOT_ADMITTED ten times after status said admitted');
        await pause(ctx, 1000);
        continue;
      }
      // Those who never meant to pay leave at "sold out"; the others watch for units coming back.
      if (round === 'sold_out' && b.kind === 'never') break;
      if (round === 'sold_out') continue;
      if (round === 'ended') break;
      b.outcome = round;
      return;
    }
    if (b.outcome === 'pending') b.outcome = 'sold_out';
  } catch (err) {
    fail(b, (err as Error).message);
  }
}

function fail(b: Buyer, why: string): void {
  b.outcome = 'error';
  b.error ??= why;
}

/**
 * One request, retried as a page would: after `Retry-After` (else 500 ms), at most 2 s apart, on
 * the other node when this one gave no answer, until it answers something final or the budget ends.
 */
async function persist(
  ctx: BuyerContext,
  b: Buyer,
  label: string,
  method: 'GET' | 'POST',
  path: string,
  opts: { headers?: Record<string, string>; json?: unknown; key?: string },
): Promise<Reply> {
  const first = now();
  for (;;) {
    const client = ctx.clients[b.node];
    const r = await client.ask(
      label,
      method,
      path,
      { agent: client.agent(b.address, 2), headers: opts.headers, json: opts.json },
      { userId: b.userId, key: opts.key },
    );
    if (!retryable(r) || ctx.stopped || now() - first > ctx.retryBudgetMs) return r;
    if (r.status === 0 && ctx.clients.length > 1) b.node = (b.node + 1) % ctx.clients.length;
    await pause(ctx, Math.min(2000, r.retryAfterMs ?? 500));
  }
}

async function enter(ctx: BuyerContext, b: Buyer, headers: Record<string, string>): Promise<string | null> {
  const r = await persist(ctx, b, 'enter', 'POST', `/api/flash-sales/${ctx.saleId}/enter-queue`, { headers, json: { fingerprint: `chaos-${b.n}` } });
  if (r.status === 200 && typeof r.body?.queue_ticket === 'string') return r.body.queue_ticket;
  if (retryable(r)) b.outcome = 'gave_up';
  else if (!ctx.stopped) fail(b, `enter-queue ${r.status} ${code(r) ?? r.error ?? ''}`);
  return null;
}

/** Authorises the card while waiting; false when that did not work (the purchase then pays with the card). */
async function preAuthorise(ctx: BuyerContext, b: Buyer, headers: Record<string, string>, ticket: string): Promise<boolean> {
  const r = await persist(ctx, b, 'pre_auth', 'POST', `/api/flash-sales/${ctx.saleId}/pre-auth`, { headers, json: { ticket, payment_token: 'tok_visa' } });
  return r.status === 200 || r.status === 201;
}

/** Waits for the ticket's turn: status every 2 s, or an event stream until it says admitted or sold out. */
async function waitTurn(ctx: BuyerContext, b: Buyer, ticket: string): Promise<Turn> {
  const q = `ticket=${encodeURIComponent(ticket)}`;
  if (b.channel === 'sse') {
    const heard = await listen(ctx, b, `/api/flash-sales/${ctx.saleId}/events?${q}`);
    if (heard !== 'poll') return heard;
  }
  while (!ctx.stopped) {
    const client = ctx.clients[b.node];
    const r = await client.ask('status', 'GET', `/api/flash-sales/${ctx.saleId}/status?${q}`, { agent: client.agent(b.address, 2) }, { userId: b.userId });
    if (r.status === 0 && ctx.clients.length > 1) b.node = (b.node + 1) % ctx.clients.length;
    if (r.status === 409 && code(r) === 'QUEUE_RESTARTED') return 'restarted';
    if (r.status === 200) {
      const s = r.body?.status;
      if (s === 'admitted') return 'admitted';
      if (s === 'purchased') {
        // A live order: ours if it is confirmed; a reserved one we keep watching (it may lapse).
        if (r.body?.order_status === 'confirmed' || b.kind === 'never') return 'purchased';
      }
      if (s === 'ended' || s === 'expired' || (s === 'sold_out' && b.kind === 'never')) return 'ended';
    }
    await pause(ctx, r.retryAfterMs ?? jitter(POLL_MS));
  }
  return 'stopped';
}

/** Listens until admitted ('admitted'), or until polling is the better way to wait ('poll'): sold out, refused, dropped. */
function listen(ctx: BuyerContext, b: Buyer, path: string): Promise<Turn | 'poll'> {
  return new Promise((resolve) => {
    let done = false;
    const client = ctx.clients[b.node];
    const finish = (t: Turn | 'poll') => {
      if (done) return;
      done = true;
      handle.close();
      resolve(t);
    };
    void ctx.onStop.then(() => finish('stopped'));
    const handle = client.listen(
      path,
      client.agent(b.address),
      { userId: b.userId },
      (event, data) => {
        if (event === 'admitted') finish('admitted');
        else if (event === 'sold_out' || event === 'ended' || (event === 'inventory' && data?.sold_out)) finish('poll');
      },
      (why) => {
        if (why !== null && typeof why === 'string' && ctx.clients.length > 1) b.node = (b.node + 1) % ctx.clients.length;
        finish('poll');
      },
    );
  });
}

async function buyOnce(ctx: BuyerContext, b: Buyer, headers: Record<string, string>, ticket: string, authorised: boolean): Promise<Round> {
  const key = `${b.userId}:${b.rounds++}`;
  // Paying at once without an authorisation (it failed, or a restarted node forgot it): the card itself.
  const token = b.kind === 'now' && !authorised ? { payment_token: 'tok_visa' } : {};
  const r = await persist(ctx, b, 'purchase', 'POST', `/api/flash-sales/${ctx.saleId}/purchase`, {
    headers: { ...headers, 'idempotency-key': key },
    json: { ticket, sku: ctx.sku, quantity: 1, ...token },
    key,
  });
  const c = code(r);
  if (r.status === 201) {
    const orderId = String(r.body.order_id);
    if (!b.orders.includes(orderId)) b.orders.push(orderId);
    if (r.body.status === 'confirmed') return 'bought';
    if (b.kind === 'never') return 'abandoned';
    // Pay later: a while into the window; pay at once: the payment is owed now (the authorisation did not settle it).
    if (b.kind === 'later') await pause(ctx, ctx.reservationMs * (0.2 + Math.random() * 0.4));
    return pay(ctx, b, headers, orderId);
  }
  if (r.status === 409 && (c === 'SOLD_OUT' || c === 'INSUFFICIENT_STOCK' || r.body?.status === 'sold_out')) return 'sold_out';
  if (r.status === 409 && c === 'LIMIT_REACHED') return 'bought';
  if (r.status === 409 && c === 'QUEUE_RESTARTED') return 'restarted';
  if (r.status === 403 && c === 'NOT_ADMITTED') return 'not_admitted';
  if (r.status === 402) return 'declined';
  if (r.status === 410) return 'ended';
  if (retryable(r)) return 'gave_up';
  b.error = `purchase ${r.status} ${c ?? r.error ?? ''}`;
  return 'error';
}

async function pay(ctx: BuyerContext, b: Buyer, headers: Record<string, string>, orderId: string): Promise<Round> {
  const r = await persist(ctx, b, 'pay', 'POST', `/api/orders/${orderId}/pay`, { headers, json: { payment_token: 'tok_visa' } });
  if (r.status === 200 && r.body?.status === 'confirmed') return 'bought';
  if (r.status === 410) return 'lapsed';
  if (r.status === 402) return 'declined';
  if (retryable(r)) return 'gave_up';
  b.error = `pay ${r.status} ${code(r) ?? r.error ?? ''}`;
  return 'error';
}
