/**
 * A simulated person does what the shop's page does: load the challenge and solve it, think a
 * moment, enter the queue, pre-authorise a card while waiting, wait (an event stream, or
 * polling status every 2 s), buy when admitted with an Idempotency-Key (retrying 503s and
 * in-progress answers with the same key), pay if the order is only reserved, and stop.
 */
import { randomUUID } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { now, type Reply } from './client.js';
import type { DropContext, ShopperRecord } from './shopper.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const jitter = (ms: number) => ms * (0.8 + Math.random() * 0.4);
const isSoldOut = (r: Reply) =>
  r.status === 409 && (r.body?.status === 'sold_out' || r.body?.error?.code === 'SOLD_OUT' || r.body?.error?.code === 'INSUFFICIENT_STOCK');
const retryable = (r: Reply) => r.status === 0 || r.status === 503 || r.status === 429 || (r.status === 409 && r.body?.error?.code === 'REQUEST_IN_PROGRESS');

type Waited = 'admitted' | 'sold_out' | 'ended' | 'expired' | 'purchased' | 'stopped';

/** Sleeps until `at` (local ms) or until the run stops; false when it stopped. */
export async function until(ctx: DropContext, at: number): Promise<boolean> {
  const wait = at - now();
  if (wait > 0) await Promise.race([sleep(wait), ctx.onStop]);
  return !ctx.stopped;
}

/** Fetches and solves the sale's challenge; null when the sale asks for none. */
export async function proofOfWork(ctx: DropContext, label: string, agent: Dispatcher): Promise<string | null> {
  if (!ctx.sale.pow) return null;
  return ctx.solver.solve(async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = await ctx.client.call(label, 'GET', `/api/flash-sales/${ctx.sale.id}/challenge`, { agent });
      if (r.status === 200) return r.body?.challenge !== null && r.body?.salt ? r.body : null;
      await sleep(r.retryAfterMs ?? 500);
    }
    throw new Error('no challenge');
  });
}

/** Enters the queue (retrying refusals that say "later"); the reply of the last try. */
export async function enterQueue(
  ctx: DropContext,
  rec: ShopperRecord,
  label: string,
  agent: Dispatcher,
  headers: Record<string, string>,
  body: Record<string, unknown>,
): Promise<Reply> {
  let r!: Reply;
  for (let attempt = 0; attempt < 8 && !ctx.stopped; attempt++) {
    // The first send counts: a retry after a lost answer gets the place of the first attempt.
    rec.enterSentAt ??= now();
    r = await ctx.client.call(label, 'POST', `/api/flash-sales/${ctx.sale.id}/enter-queue`, { agent, headers, json: body });
    rec.enterDoneAt = now();
    if (r.status === 200 || !retryable(r)) return r;
    await sleep(r.retryAfterMs ?? 300 * (attempt + 1));
  }
  return r;
}

export async function person(ctx: DropContext, rec: ShopperRecord): Promise<void> {
  try {
    if (!(await until(ctx, rec.arriveAt))) {
      rec.outcome = 'stopped';
      return;
    }
    const agent = ctx.agent(rec);
    const id = await ctx.ids.issue('human', rec.n, agent);
    rec.userId = id.userId;
    const headers = { authorization: `Bearer ${id.token}` };
    const pow = await proofOfWork(ctx, 'challenge', agent);
    // People read the page and press the button; the server treats entries within 300 ms of the challenge as scripted.
    await sleep(ctx.opts.thinkMs[0] + Math.random() * (ctx.opts.thinkMs[1] - ctx.opts.thinkMs[0]));
    const entered = await enterQueue(ctx, rec, 'enter', agent, headers, { ...(pow ? { altcha: pow } : {}), fingerprint: `fp-${ctx.tag}-h${rec.n}` });
    if (entered.status !== 200) return fail(rec, `enter-queue ${entered.status} ${entered.body?.error?.code ?? entered.error ?? ''}`);
    const ticket: string = entered.body.queue_ticket;
    rec.place = entered.body.place ?? 0;
    const preAuth = ctx.client.call('pre_auth', 'POST', `/api/flash-sales/${ctx.sale.id}/pre-auth`, {
      agent,
      headers,
      json: { ticket, payment_token: 'tok_visa' },
    });

    let waited: Waited = firstState(ctx, rec, entered.body, 'enter');
    if (waited === 'stopped') {
      waited =
        rec.channel === 'sse' && ctx.streamsOpen < ctx.opts.maxStreams
          ? await listen(ctx, rec, ticket, ctx.streamAgent(rec))
          : await poll(ctx, rec, ticket, agent);
    }
    if (waited === 'admitted') {
      await preAuth;
      if (rec.serverAdmittedAt === undefined) void admissionStamp(ctx, rec, ticket, agent);
      await checkout(ctx, rec, ticket, agent, headers);
      return;
    }
    rec.outcome = waited === 'purchased' ? 'bought' : waited;
  } catch (err) {
    fail(rec, (err as Error).message);
  }
}

function fail(rec: ShopperRecord, why: string): void {
  rec.outcome = 'error';
  rec.error = why;
}

/** What a ticket view says; 'stopped' (meaning "keep waiting") while the ticket is waiting. */
function firstState(ctx: DropContext, rec: ShopperRecord, view: any, via: 'enter' | 'poll' | 'sse'): Waited | 'stopped' {
  const at = now();
  if (view.place && !rec.place) rec.place = view.place;
  stepCheck(rec, view);
  switch (view.status) {
    case 'admitted':
      rec.admittedAt ??= at;
      rec.admitWatermark ??= view.watermark;
      if (typeof view.admission_expires_at === 'string') rec.serverAdmittedAt ??= Date.parse(view.admission_expires_at) - ctx.sale.admittedTtlSec * 1000;
      if (view.watermark !== undefined && rec.place && rec.place > view.watermark) rec.admittedAbove = true;
      return 'admitted';
    case 'sold_out':
      toldSoldOut(rec, via === 'enter' ? 'enter' : via);
      return 'sold_out';
    case 'waiting':
      if (rec.place && view.watermark >= rec.place) rec.heldBack = true;
      return 'stopped';
    default:
      return view.status as Waited;
  }
}

/** Notes the watermark shown, and a view worse than one shown before (the server promises none). */
function stepCheck(rec: ShopperRecord, view: any): void {
  if (view.status === 'waiting' && rec.admittedAt !== undefined) rec.steppedBack ??= 'waiting after admitted';
  if (view.status === 'waiting' && typeof view.position === 'number') {
    if (rec.lastPosition !== undefined && view.position > rec.lastPosition) rec.steppedBack ??= `position ${view.position} after ${rec.lastPosition}`;
    rec.lastPosition = view.position;
  }
  if (Number.isSafeInteger(view.watermark) && !(view.watermark <= rec.seen!)) rec.seen = view.watermark;
}

/** A ticket's query: the ticket, and the highest watermark shown so far (a lagging node reads afresh). */
const ticketQuery = (rec: ShopperRecord, ticket: string) => `?ticket=${encodeURIComponent(ticket)}${rec.seen === undefined ? '' : `&seen=${rec.seen}`}`;

function toldSoldOut(rec: ShopperRecord, via: NonNullable<ShopperRecord['soldOutVia']>): void {
  if (rec.soldOutAt !== undefined) return;
  rec.soldOutAt = now();
  rec.soldOutVia = via;
  rec.waitingWhenSoldOut = rec.admittedAt === undefined && via !== 'enter';
}

/** Waits on an event stream, reconnecting like EventSource (after the server's `retry`). */
function listen(ctx: DropContext, rec: ShopperRecord, ticket: string, agent: Dispatcher): Promise<Waited> {
  ctx.streamsOpen++;
  return new Promise<Waited>((resolve) => {
    let handle: { close(): void } | null = null;
    let done = false;
    const finish = (w: Waited) => {
      if (done) return;
      done = true;
      ctx.streamsOpen--;
      handle?.close();
      resolve(w);
    };
    void ctx.onStop.then(() => finish('stopped'));
    const open = () => {
      if (done) return;
      handle = ctx.client.stream(
        'events',
        `/api/flash-sales/${ctx.sale.id}/events${ticketQuery(rec, ticket)}`,
        agent,
        (event, data) => {
          if (event === 'position' || event === 'admitted') {
            const w = firstState(ctx, rec, { ...data, status: event === 'admitted' ? 'admitted' : 'waiting' }, 'sse');
            if (w !== 'stopped') finish(w);
          } else if (event === 'sold_out' || (event === 'inventory' && data?.sold_out)) {
            toldSoldOut(rec, 'sse');
            finish('sold_out');
          } else if (event === 'ended') {
            finish('ended');
          }
        },
        (why) => {
          if (done) return;
          const wait = typeof why === 'object' && why?.retryAfterMs ? why.retryAfterMs : 2000;
          setTimeout(open, wait);
        },
      );
    };
    open();
  });
}

/** Polls status every 2 s (as the page does when it cannot stream). */
async function poll(ctx: DropContext, rec: ShopperRecord, ticket: string, agent: Dispatcher): Promise<Waited> {
  while (!ctx.stopped) {
    const r = await ctx.client.call('status', 'GET', `/api/flash-sales/${ctx.sale.id}/status${ticketQuery(rec, ticket)}`, { agent });
    if (r.status === 200) {
      const w = firstState(ctx, rec, r.body, 'poll');
      if (w !== 'stopped') return w;
    }
    await Promise.race([sleep(r.retryAfterMs ?? jitter(ctx.opts.pollEveryMs)), ctx.onStop]);
  }
  return 'stopped';
}

/** One status read after an admitted event: the page shows the buying window (and we learn when the server admitted us). */
async function admissionStamp(ctx: DropContext, rec: ShopperRecord, ticket: string, agent: Dispatcher): Promise<void> {
  const r = await ctx.client.call('status', 'GET', `/api/flash-sales/${ctx.sale.id}/status${ticketQuery(rec, ticket)}`, { agent });
  if (r.status === 200) stepCheck(rec, r.body);
  if (r.status === 200 && typeof r.body.admission_expires_at === 'string') {
    rec.serverAdmittedAt = Date.parse(r.body.admission_expires_at) - ctx.sale.admittedTtlSec * 1000;
  }
}

/** Buys one unit: the preferred SKU, then the others while some remain. */
async function checkout(ctx: DropContext, rec: ShopperRecord, ticket: string, agent: Dispatcher, headers: Record<string, string>): Promise<void> {
  const started = now();
  const skus = ctx.sale.skus;
  const first = rec.n % skus.length;
  const order = [...skus.slice(first), ...skus.slice(0, first)];
  let result: 'bought' | 'sold_out' | 'expired' | 'ended' | 'error' = 'sold_out';
  for (const sku of order) {
    result = await buy(ctx, rec, ticket, agent, headers, sku, `${rec.userId}:${sku}:${ctx.tag}`);
    if (result !== 'sold_out') break;
  }
  rec.checkoutMs = now() - started;
  if (result === 'sold_out') toldSoldOut(rec, 'purchase');
  rec.outcome = result;
}

async function buy(
  ctx: DropContext,
  rec: ShopperRecord,
  ticket: string,
  agent: Dispatcher,
  headers: Record<string, string>,
  sku: string,
  key: string,
): Promise<'bought' | 'sold_out' | 'expired' | 'ended' | 'error'> {
  const call = () => {
    rec.purchaseRequests++;
    return ctx.client.call('purchase', 'POST', `/api/flash-sales/${ctx.sale.id}/purchase`, {
      agent,
      headers: { ...headers, 'idempotency-key': key },
      json: { ticket, sku, quantity: 1 },
    });
  };
  for (let attempt = 0; attempt < 40 && !ctx.stopped; attempt++) {
    let r: Reply;
    if (attempt === 0 && (rec.n * 0.618033) % 1 < ctx.opts.doubleClickShare) {
      // A double click: the same request twice at once. Both answers must name the same order.
      const [a, b] = await Promise.all([call(), call()]);
      for (const x of [a, b]) if (x.status === 201) noteOrder(ctx, rec, key, x.body, sku);
      r = a.status === 201 ? a : b.status === 201 ? b : a;
    } else {
      r = await call();
    }
    if (r.status === 201) {
      noteOrder(ctx, rec, key, r.body, sku);
      if (r.body.status === 'reserved') return pay(ctx, rec, agent, headers, r.body.order_id);
      return 'bought';
    }
    if (isSoldOut(r)) return 'sold_out';
    const code = r.body?.error?.code;
    if (code === 'LIMIT_REACHED') return 'bought';
    if (code === 'ADMISSION_EXPIRED') return 'expired';
    if (code === 'SALE_ENDED' || code === 'SALE_CANCELLED') return 'ended';
    if (retryable(r) || code === 'NOT_ADMITTED') {
      await sleep(Math.min(2000, r.retryAfterMs ?? 100 * (attempt + 1)));
      continue;
    }
    rec.error = `purchase ${r.status} ${code ?? r.error ?? ''}`;
    return 'error';
  }
  rec.error ??= 'purchase: gave up after retries';
  return 'error';
}

async function pay(
  ctx: DropContext,
  rec: ShopperRecord,
  agent: Dispatcher,
  headers: Record<string, string>,
  orderId: string,
): Promise<'bought' | 'expired' | 'error'> {
  for (let attempt = 0; attempt < 20 && !ctx.stopped; attempt++) {
    const r = await ctx.client.call('pay', 'POST', `/api/orders/${orderId}/pay`, { agent, headers, json: { payment_token: 'tok_visa' } });
    if (r.status === 200) {
      const o = rec.orders.find((x) => x[0] === orderId);
      if (o) o[1] = r.body.status;
      return 'bought';
    }
    if (r.status === 410) return 'expired';
    if (!retryable(r)) {
      rec.error = `pay ${r.status} ${r.body?.error?.code ?? ''}`;
      return 'error';
    }
    await sleep(r.retryAfterMs ?? 200);
  }
  return 'error';
}

export function noteOrder(ctx: DropContext, rec: ShopperRecord, key: string, body: any, sku: string): void {
  const id = String(body.order_id);
  if (!rec.orders.some((o) => o[0] === id)) rec.orders.push([id, String(body.status), sku]);
  const first = ctx.keyAnswers.get(key);
  if (first === undefined) ctx.keyAnswers.set(key, id);
  else if (first !== id) ctx.keyConflicts.push({ key, first, second: id });
}

/** A fresh idempotency key, as a script that never retries honestly makes one. */
export const freshKey = () => randomUUID();
