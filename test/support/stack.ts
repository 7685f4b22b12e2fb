/**
 * A whole Stampede node for tests, on either stack: the embedded engine with in-memory PGlite,
 * or real Redis (unique key prefix) with real PostgreSQL (a throwaway database). Suites call
 * `describeStacks` to run the same tests on both; a stack whose services are missing is
 * skipped loudly on a developer machine and fails in CI.
 */
import { randomUUID } from 'node:crypto';
import { admitAll } from './sales.js';
import pino from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import { describe } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { openLedger } from '../../src/ledger/open-ledger.js';
import type { Engine } from '../../src/engine/engine.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { Runtime, type RuntimeOptions } from '../../src/runtime.js';
import { SandboxGateway } from '../../src/payments/sandbox-gateway.js';
import { redisTestEngine, type RedisTestEngine } from './redis.js';
import { requirePostgres, withTempDatabase, type TempDatabase } from './pg.js';

/** TEST_LOG=1 shows the nodes' logs (errors behind a 500, for one). */
const testLog = process.env.TEST_LOG ? pino({ level: 'warn' }) : undefined;

/** `cluster+pg`: the engine on the local 3-master Redis Cluster (test/support/redis.ts). */
export type StackKind = 'embedded' | 'redis+pg' | 'cluster+pg';
const NO_SERVICES = process.env.STAMPEDE_TEST_SERVICES === 'none';
/** Both stacks; `npm run test:unit` (STAMPEDE_TEST_SERVICES=none) runs the embedded one only. */
export const STACKS: StackKind[] = NO_SERVICES ? ['embedded'] : ['embedded', 'redis+pg'];
/** Both stacks and the cluster, for the suites that prove the invariants (the checkout's). */
const STACKS_AND_CLUSTER: StackKind[] = NO_SERVICES ? STACKS : [...STACKS, 'cluster+pg'];

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface Stack {
  kind: StackKind;
  runtime: Runtime;
  /** The raw engine and ledger (not the runtime's instrumented views), for peers. */
  engine: Engine;
  ledger: Ledger;
  app: App;
  gateway: SandboxGateway;
  close(): Promise<void>;
}

export interface StackOptions extends Partial<Omit<RuntimeOptions, 'config' | 'engine' | 'ledger'>> {
  env?: Record<string, string>;
  /** A second node: shares this stack's engine and ledger (and so its sales). */
  peer?: Stack;
  /** Start the background loops (monitor polling, admission, sweepers). Default true. */
  workers?: boolean;
  /** The HTTP layer's logger (default: none, or TEST_LOG's). */
  appLogger?: FastifyBaseLogger;
}

export function testConfig(env: Record<string, string> = {}) {
  return loadConfig({
    STAMPEDE_ADMIN_TOKEN: ADMIN_TOKEN,
    STAMPEDE_USER_JWT_SECRET: 'test-user-secret-0123456789abcdef0123',
    STAMPEDE_TICKET_SECRET: 'test-ticket-secret-0123456789abcdef01',
    STAMPEDE_IP_RATE_LIMIT: '0',
    ...env,
  });
}

export interface RedisAndPostgres {
  redis: RedisTestEngine;
  db: TempDatabase;
  ledger: Ledger;
  /** Closes the ledger, drops the database and the Redis keys: every step runs even when one before it fails. */
  close(): Promise<void>;
}

/** A Redis engine under a key prefix of its own and a temporary PostgreSQL database with its ledger; null (skip) when either is unreachable. */
export async function redisAndPostgres(label: string, ledgerOpts: { poolSize?: number; cluster?: boolean } = {}): Promise<RedisAndPostgres | null> {
  const redis = await redisTestEngine({ cluster: ledgerOpts.cluster });
  if (!redis || !(await requirePostgres(label))) {
    await redis?.cleanup();
    return null;
  }
  const db = await withTempDatabase();
  const ledger = await openLedger({ databaseUrl: db.url, poolSize: ledgerOpts.poolSize });
  return { redis, db, ledger, close: () => allSteps([() => ledger.close(), () => db.drop(), () => redis.cleanup()]) };
}

/** Runs every step, even after one fails; throws the first failure at the end. */
async function allSteps(steps: Array<() => Promise<unknown>>): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first) throw first;
}

/** Opens a node on the given stack, or null when that stack's services are unavailable (skip). */
export async function openStack(kind: StackKind, opts: StackOptions = {}): Promise<Stack | null> {
  // On Redis, the node's own keys (rate limits) go under the test's prefix too, so cleanup finds them.
  let config = testConfig(opts.env);
  const gateway = (opts.gateway as SandboxGateway | undefined) ?? new SandboxGateway({ latencyMs: 2, jitterMs: 2 });
  const cleanups: Array<() => Promise<void>> = [];
  let engine: Engine = opts.peer?.engine as Engine;
  let ledger: Ledger = opts.peer?.ledger as Ledger;
  let runtime: Runtime;
  if (opts.peer) {
    config = testConfig({ STAMPEDE_REDIS_PREFIX: opts.peer.runtime.config.redisPrefix, ...opts.env });
    runtime = await Runtime.create({
      log: testLog,
      ...opts,
      config,
      engine: opts.peer.engine,
      ledger: opts.peer.ledger,
      gateway: opts.gateway ?? opts.peer.gateway,
    });
  } else if (kind === 'embedded') {
    engine = new MemoryEngine();
    ledger = await openLedger({});
    runtime = await Runtime.create({ log: testLog, ...opts, config, engine, ledger, gateway });
    cleanups.push(() => ledger.close());
  } else {
    const services = await redisAndPostgres(`stack ${kind}`, { poolSize: 20, cluster: kind === 'cluster+pg' });
    if (!services) return null;
    config = testConfig({ STAMPEDE_REDIS_PREFIX: services.redis.prefix, ...opts.env });
    engine = services.redis.engine;
    ledger = services.ledger;
    cleanups.push(() => services.close());
    runtime = await Runtime.create({ log: testLog, ...opts, config, engine, ledger, gateway });
  }
  await runtime.start();
  const app = await buildApp(runtime, { logger: opts.appLogger ?? testLog });
  // Ready now: the tiers' background loops start here, as they do when a server listens.
  await app.ready();
  return {
    kind,
    runtime,
    app,
    gateway: runtime.gateway as SandboxGateway,
    engine,
    ledger,
    // Every step runs even when one before it fails (a test that closed the ledger itself, say):
    // the temporary database and the Redis keys are dropped whatever happened.
    close: () => allSteps([() => app.close(), () => runtime.close(), ...cleanups]),
  };
}

/**
 * Two nodes of one stack (B a peer of A: the same engine and ledger) without background loops, so
 * each node's picture of a sale moves only when a test refreshes it; null when the stack's
 * services are unavailable (skip).
 */
export async function twoNodes(kind: StackKind): Promise<{ a: Stack; b: Stack; close(): Promise<void> } | null> {
  const a = await openStack(kind, { workers: false });
  if (!a) return null;
  const b = (await openStack(kind, { peer: a, workers: false }))!;
  return { a, b, close: () => allSteps([() => b.close(), () => a.close()]) };
}

/** Runs `fn` as a describe block per stack (`STACKS`, or the list given). */
export function describeStacks(title: string, fn: (kind: StackKind) => void, kinds: StackKind[] = STACKS) {
  for (const kind of kinds) describe(`${title} [${kind}]`, () => fn(kind));
}

/** The same on both stacks and the local Redis Cluster: for the suites that prove the invariants (the checkout's). */
export function describeStacksAndCluster(title: string, fn: (kind: StackKind) => void) {
  describeStacks(title, fn, STACKS_AND_CLUSTER);
}

/** A user token for a fresh user (or the given id). */
export async function userToken(stack: Stack, sub: string = `user-${randomUUID()}`) {
  const { token } = await stack.runtime.auth.issue(sub);
  return { token, sub, headers: { authorization: `Bearer ${token}` } };
}

export const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** A sale body that opens now, with proof-of-work off and generous admission. */
export function saleBody(overrides: Record<string, unknown> = {}) {
  return {
    name: 'Test drop',
    starts_at: new Date(Date.now() - 1000).toISOString(),
    duration_sec: 3600,
    items: [{ sku: 'phone', name: 'Phone', price_cents: 50_000, currency: 'EUR', quantity: 100, per_user_limit: 1 }],
    queue: { mode: 'fifo', admission_rate_per_sec: 100_000, admitted_ttl_sec: 600, max_active: 1_000_000 },
    reservation_ttl_sec: 600,
    bot_protection: { pow_difficulty: 0 },
    ...overrides,
  };
}

export async function createSale(stack: Stack, overrides: Record<string, unknown> = {}) {
  const res = await stack.app.inject({ method: 'POST', url: '/api/admin/flash-sales', headers: adminHeaders, payload: saleBody(overrides) });
  if (res.statusCode !== 201) throw new Error(`create sale failed: ${res.statusCode} ${res.body}`);
  return res.json() as { id: string; items: Array<{ sku: string }> };
}

/** Enters the queue as a user and returns the ticket response. */
export async function enter(stack: Stack, saleId: string, user: { headers: Record<string, string> }, body: Record<string, unknown> = {}) {
  const res = await stack.app.inject({ method: 'POST', url: `/api/flash-sales/${saleId}/enter-queue`, headers: user.headers, payload: body });
  if (res.statusCode !== 200) throw new Error(`enter failed: ${res.statusCode} ${res.body}`);
  return res.json() as { queue_ticket: string; place: number; status: string; position: number | null };
}

/** Runs the admission controller until everybody who entered is admitted, and refreshes the node's picture. */
export async function admitEveryone(stack: Stack, saleId: string) {
  await admitAll(stack.runtime.engine, saleId);
  await stack.runtime.monitor.refresh(saleId);
}

/**
 * A logger that keeps every line at `warn` and above, for tests that prove nothing a client does
 * makes the node log an error. Pass it as `log` and `appLogger`.
 */
export function recordingLogger() {
  const lines: Array<{ level: number; msg: string; err?: { message?: string; code?: string } }> = [];
  const logger = pino(
    { level: 'warn' },
    {
      write: (line: string) => {
        lines.push(JSON.parse(line));
      },
    },
  );
  return { logger, lines, errors: () => lines.filter((l) => l.level >= 50) };
}
