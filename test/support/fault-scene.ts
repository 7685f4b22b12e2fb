/**
 * A Stampede node on dependencies a fault test controls (own-services.ts), and the scene its
 * tests play: a sale with a shopper who bought, one admitted and about to buy, and one still
 * waiting — plus the requests each makes, timed, so a test can say what every request answered
 * during an outage and how long it took.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import type { Engine } from '../../src/engine/engine.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { Runtime } from '../../src/runtime.js';
import { adminHeaders, saleBody, testConfig } from './stack.js';

export interface FaultNode {
  runtime: Runtime;
  app: App;
  /** Closes the app and the runtime (not the engine or ledger given). */
  close(): Promise<void>;
}

/** A node with its background loops running (monitor, admission, sweepers), as a server runs them. */
export async function openFaultNode(engine: Engine, ledger: Ledger, env: Record<string, string> = {}): Promise<FaultNode> {
  const runtime = await Runtime.create({ config: testConfig(env), engine, ledger });
  await runtime.start();
  const app = await buildApp(runtime);
  await app.ready();
  return {
    runtime,
    app,
    async close() {
      await app.close();
      await runtime.close();
    },
  };
}

export interface Shopper {
  name: string;
  headers: Record<string, string>;
  ticket: string;
  /** The Idempotency-Key of this shopper's purchase (a retry sends the same). */
  key: string;
}

export interface Scene {
  saleId: string;
  /** Bought (a reserved order) before the fault. */
  bought: Shopper;
  /** Admitted; buys during the fault. */
  buyer: Shopper;
  /** Still waiting in the queue (one admission at a time, and the buyer holds it). */
  waiter: Shopper;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a truthy value, or fails after `timeoutMs`. */
export async function until<T>(what: string, probe: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ''}`);
}

/** One request's answer and how long it took. */
export interface Timed {
  label: string;
  status: number;
  ms: number;
  body: any;
  retryAfter?: string;
}

async function timed(label: string, request: () => Promise<{ statusCode: number; body: string; headers: Record<string, unknown> }>): Promise<Timed> {
  const started = performance.now();
  const res = await request();
  const ms = Math.round(performance.now() - started);
  let body: unknown = res.body;
  try {
    body = JSON.parse(res.body);
  } catch {
    /* not JSON */
  }
  return { label, status: res.statusCode, ms, body, retryAfter: res.headers['retry-after'] as string | undefined };
}

/** The requests of the scene's shoppers (and its admin), each timed. */
export function requests(node: FaultNode, saleId: string) {
  const { app } = node;
  return {
    purchase: (s: Shopper) =>
      timed(`purchase (${s.name})`, () =>
        app.inject({
          method: 'POST',
          url: `/api/flash-sales/${saleId}/purchase`,
          headers: { ...s.headers, 'idempotency-key': s.key },
          payload: { ticket: s.ticket, sku: 'phone', quantity: 1 },
        }),
      ),
    enter: (headers: Record<string, string>) =>
      timed('enter-queue', () => app.inject({ method: 'POST', url: `/api/flash-sales/${saleId}/enter-queue`, headers, payload: {} })),
    status: (s: Shopper) => timed(`status (${s.name})`, () => app.inject({ url: `/api/flash-sales/${saleId}/status?ticket=${encodeURIComponent(s.ticket)}` })),
    salePage: () => timed('sale page', () => app.inject({ url: `/api/flash-sales/${saleId}` })),
    stats: () => timed('stats', () => app.inject({ url: `/api/admin/flash-sales/${saleId}/stats`, headers: adminHeaders })),
    orders: () => timed('orders', () => app.inject({ url: `/api/admin/flash-sales/${saleId}/orders`, headers: adminHeaders })),
    readyz: () => timed('readyz', () => app.inject({ url: '/readyz' })),
  };
}

/** A user token's headers. */
export async function userHeaders(node: FaultNode): Promise<Record<string, string>> {
  const { token } = await node.runtime.auth.issue(`user-${randomUUID()}`);
  return { authorization: `Bearer ${token}` };
}

/**
 * Sets the scene on a healthy node: a sale that admits one shopper at a time; `bought` is
 * admitted and buys (a reserved order), then `buyer` is admitted, and `waiter` waits behind.
 * Each has asked for their status once, so the node has seen them.
 */
export async function playScene(node: FaultNode): Promise<Scene> {
  const created = await node.app.inject({
    method: 'POST',
    url: '/api/admin/flash-sales',
    headers: adminHeaders,
    payload: saleBody({
      items: [{ sku: 'phone', name: 'Phone', price_cents: 50_000, currency: 'EUR', quantity: 10, per_user_limit: 1 }],
      queue: { mode: 'fifo', admission_rate_per_sec: 1000, admitted_ttl_sec: 600, max_active: 1 },
    }),
  });
  expect(created.statusCode).toBe(201);
  const saleId = created.json().id as string;
  const req = requests(node, saleId);
  const shopper = async (name: string): Promise<Shopper> => {
    const headers = await userHeaders(node);
    const entered = await req.enter(headers);
    expect(entered.status).toBe(200);
    return { name, headers, ticket: entered.body.queue_ticket, key: randomUUID() };
  };
  const bought = await shopper('bought');
  const buyer = await shopper('buyer');
  const waiter = await shopper('waiter');
  const statusOf = async (s: Shopper) => (await req.status(s)).body.status as string;

  await until('the first shopper is admitted', async () => (await statusOf(bought)) === 'admitted');
  expect((await req.purchase(bought)).status).toBe(201);
  await until('the bought shopper reads as purchased', async () => (await statusOf(bought)) === 'purchased');
  await until('the buyer is admitted', async () => (await statusOf(buyer)) === 'admitted');
  expect(await statusOf(waiter)).toBe('waiting');
  return { saleId, bought, buyer, waiter };
}

/** Prints what each request answered and how long it took (the figures SPEC §6 asks about). */
export function report(title: string, answers: Timed[]): void {
  const lines = answers.map(
    (a) =>
      `  ${a.label.padEnd(20)} ${String(a.status).padEnd(4)} ${String(a.ms).padStart(5)} ms${a.retryAfter ? `  Retry-After: ${a.retryAfter}` : ''}${a.body?.stale ? '  (stale)' : ''}${a.body?.error?.code ? `  ${a.body.error.code}` : ''}`,
  );
  console.log(`${title}\n${lines.join('\n')}`);
}

/** A 503 UNAVAILABLE with Retry-After, as SPEC §6 asks of a request whose dependency is down. */
export function expectUnavailable(a: Timed): void {
  expect({ label: a.label, status: a.status, code: a.body?.error?.code }).toEqual({ label: a.label, status: 503, code: 'UNAVAILABLE' });
  expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
}
