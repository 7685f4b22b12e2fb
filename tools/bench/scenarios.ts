/**
 * What the benchmark sends, prepared before anything is measured: sales created through the
 * admin API, distinct users (HS256 tokens minted with the node's secret), tickets entered over
 * HTTP, proofs-of-work solved, cards pre-authorised — so each measured request is a fresh user
 * doing the real thing, and no rate limit (purchase: 1/s per user; reads: 20/s per ticket) or
 * single-use check (proof-of-work, idempotency key) turns it into a cheap refusal.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { Agent, request } from 'undici';
import { Solver } from '../rehearsal/solver.js';
import type { Item } from './load.js';

export interface Scenario {
  name: string;
  /** The route as Fastify writes it, and the sale it is asked about: the baseline answers by both. */
  route: { method: 'GET' | 'POST'; url: string };
  saleId: string;
  items: Item[];
  /** Each item may be used once: measure exactly this many requests. */
  amount?: number;
  /** The answer every measured request should get, and one real reply of it (for the baseline's size). */
  expect: number;
  sample: { status: number; body: string };
  /** The target: at least this share of the baseline's throughput. */
  target: number;
}

export interface PrepareOptions {
  powRequests: number;
  enterRequests: number;
  purchaseRequests: number;
  tickets: number;
  solvers: number;
}

const agent = new Agent({ connections: 64 });

async function call(base: string, method: 'GET' | 'POST', path: string, headers: Record<string, string>, json?: unknown) {
  const res = await request(base + path, {
    method,
    dispatcher: agent,
    headers: json === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: text ? JSON.parse(text) : null };
}

/** Runs `fn` over `n` indexes, `width` at a time. */
async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

export async function prepare(base: string, adminToken: string, userSecret: string, opts: PrepareOptions, log: (s: string) => void): Promise<Scenario[]> {
  const admin = { authorization: `Bearer ${adminToken}` };
  const tag = randomBytes(3).toString('hex');
  const secret = new TextEncoder().encode(userSecret);
  let users = 0;
  const user = async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(`bench-${tag}-${users++}`)
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(secret);
    return { authorization: `Bearer ${token}` };
  };
  const sale = async (name: string, quantity: number, rate: number, pow: number) => {
    const r = await call(base, 'POST', '/api/admin/flash-sales', admin, {
      name: `bench ${tag} ${name}`,
      starts_at: new Date(Date.now() - 1000).toISOString(),
      duration_sec: 7200,
      items: [{ sku: 'unit', name: 'Unit', price_cents: 10_000, currency: 'EUR', quantity, per_user_limit: 1 }],
      queue: { mode: 'fifo', admission_rate_per_sec: rate, admitted_ttl_sec: 3600, max_active: 10_000_000 },
      reservation_ttl_sec: 600,
      bot_protection: { pow_difficulty: pow },
    });
    if (r.status !== 201) throw new Error(`creating a sale failed: ${r.status} ${r.text}`);
    return r.json.id as string;
  };
  const enter = async (saleId: string, headers: Record<string, string>, body: unknown = {}) => {
    const r = await call(base, 'POST', `/api/flash-sales/${saleId}/enter-queue`, headers, body);
    if (r.status !== 200) throw new Error(`enter-queue failed: ${r.status} ${r.text}`);
    return r.json.queue_ticket as string;
  };
  const post = (path: string, headers: Record<string, string>, body: unknown, extra: Record<string, string> = {}): Item => ({
    method: 'POST',
    path,
    headers: { ...headers, ...extra, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const sample = async (it: Item) => {
    const r = await call(base, it.method, it.path, it.headers, it.body === undefined ? undefined : JSON.parse(it.body));
    return { status: r.status, body: r.text };
  };

  // Enter-queue with the proof-of-work on (difficulty 1: the server's cost of checking a proof is
  // one hash and one HMAC at any difficulty, and difficulty 1 keeps our solving affordable).
  const queueSale = await sale('queue', 10, 1, 1);
  const solver = new Solver(opts.solvers);
  log(`solving ${opts.powRequests} proofs-of-work (${opts.solvers} worker threads)`);
  const enterItems = await pool(opts.powRequests + 1, 64, async () => {
    const headers = await user();
    const altcha = await solver.solve(async () => (await call(base, 'GET', `/api/flash-sales/${queueSale}/challenge`, {})).json);
    return post(`/api/flash-sales/${queueSale}/enter-queue`, headers, { altcha, fingerprint: randomBytes(8).toString('hex') });
  });
  await solver.close();

  // Enter-queue with the proof-of-work off, and the tickets that status is asked about.
  const openSale = await sale('open', 10, 1, 0);
  const enterPlainItems = await pool(opts.enterRequests + 1, 64, async () =>
    post(`/api/flash-sales/${openSale}/enter-queue`, await user(), { fingerprint: randomBytes(8).toString('hex') }),
  );
  log(`entering ${opts.tickets} users for status`);
  const statusItems = await pool(opts.tickets, 64, async () => {
    const ticket = await enter(openSale, await user());
    return { method: 'GET' as const, path: `/api/flash-sales/${openSale}/status?ticket=${encodeURIComponent(ticket)}`, headers: {} };
  });

  // Purchase with stock: admitted users with a pre-authorised card, one purchase each.
  const stockSale = await sale('stock', 10_000_000, 1_000_000, 0);
  log(`entering and pre-authorising ${opts.purchaseRequests} buyers`);
  const buyItems = await pool(opts.purchaseRequests + 1, 64, async () => {
    const headers = await user();
    const ticket = await enter(stockSale, headers);
    const auth = await call(base, 'POST', `/api/flash-sales/${stockSale}/pre-auth`, headers, { ticket, payment_token: 'tok_visa' });
    if (auth.status !== 200) throw new Error(`pre-auth failed: ${auth.status} ${auth.text}`);
    return post(
      `/api/flash-sales/${stockSale}/purchase`,
      headers,
      { ticket, sku: 'unit', quantity: 1 },
      { 'idempotency-key': randomBytes(12).toString('hex') },
    );
  });
  // Admission runs every 100 ms: wait until the last buyer's ticket is admitted.
  const lastTicket = JSON.parse(buyItems[buyItems.length - 1].body!).ticket;
  for (let i = 0; i < 100; i++) {
    const st = await call(base, 'GET', `/api/flash-sales/${stockSale}/status?ticket=${encodeURIComponent(lastTicket)}`, {});
    if (st.json?.status === 'admitted') break;
    await new Promise((r) => setTimeout(r, 100));
  }

  // Purchase when sold out: the one unit bought, then everyone else asks.
  const goneSale = await sale('gone', 1, 1_000_000, 0);
  const winner = await user();
  const winTicket = await enter(goneSale, winner);
  await new Promise((r) => setTimeout(r, 300));
  const won = await call(
    base,
    'POST',
    `/api/flash-sales/${goneSale}/purchase`,
    { ...winner, 'idempotency-key': 'win' },
    { ticket: winTicket, sku: 'unit', quantity: 1, payment_token: 'tok_visa' },
  );
  if (won.status !== 201) throw new Error(`buying the last unit failed: ${won.status} ${won.text}`);
  await new Promise((r) => setTimeout(r, 300));
  const goneItems = await pool(opts.tickets, 64, async () => {
    const headers = await user();
    const ticket = await enter(goneSale, headers);
    return post(`/api/flash-sales/${goneSale}/purchase`, headers, { ticket, sku: 'unit', quantity: 1 }, { 'idempotency-key': randomBytes(12).toString('hex') });
  });

  // One real request of each kind (from a spare item) gives the reply the baseline imitates.
  const enterSample = await sample(enterItems.pop()!);
  const enterPlainSample = await sample(enterPlainItems.pop()!);
  const buySample = await sample(buyItems.pop()!);
  return [
    {
      name: 'enter-queue',
      route: { method: 'POST', url: '/api/flash-sales/:id/enter-queue' },
      saleId: queueSale,
      items: enterItems,
      amount: enterItems.length,
      expect: 200,
      sample: enterSample,
      target: 0.6,
    },
    {
      name: 'enter-queue, no proof-of-work',
      route: { method: 'POST', url: '/api/flash-sales/:id/enter-queue' },
      saleId: openSale,
      items: enterPlainItems,
      amount: enterPlainItems.length,
      expect: 200,
      sample: enterPlainSample,
      target: 0.6,
    },
    {
      name: 'status',
      route: { method: 'GET', url: '/api/flash-sales/:id/status' },
      saleId: openSale,
      items: statusItems,
      expect: 200,
      sample: await sample(statusItems[0]),
      target: 0.7,
    },
    {
      name: 'purchase, with stock',
      route: { method: 'POST', url: '/api/flash-sales/:id/purchase' },
      saleId: stockSale,
      items: buyItems,
      amount: buyItems.length,
      expect: 201,
      sample: buySample,
      target: 0.25,
    },
    {
      name: 'purchase, sold out',
      route: { method: 'POST', url: '/api/flash-sales/:id/purchase' },
      saleId: goneSale,
      items: goneItems,
      expect: 409,
      sample: await sample(goneItems[0]),
      target: 0.9,
    },
  ];
}
