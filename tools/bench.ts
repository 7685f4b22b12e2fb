/**
 * `npm run bench`: throughput and latency of the hot endpoints — enter-queue (with and without
 * proof-of-work), status, purchase with stock (ledger write and capture included) and purchase
 * when sold out — on the embedded engine (PGlite) and on Redis + PostgreSQL, each beside a
 * baseline measured alternately in the same run: a bare Fastify app answering the same
 * requests with a constant reply of the same size. Both servers are child processes; the load
 * generator (autocannon) is this process. Results print as a table and go to
 * reports/bench-<timestamp>.json.
 *
 * Every protection stays on except the per-address limit (STAMPEDE_IP_RATE_LIMIT=0: all load
 * comes from one address). Per-user and per-ticket limits stay on; they never fire because
 * every measured request is a distinct prepared user (see scenarios.ts). All of them come from
 * 127.0.0.1; with STAMPEDE_IP_RATE_LIMIT=0 the node also stops counting accounts per address,
 * so nobody is shadowed for sharing it (each user sends its own fingerprint).
 *
 * `npm run bench -- --connections 20000` measures connection capacity instead (capacity.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { deleteKeys } from '../src/engine/redis/redis-engine.js';
import { Args, UsageError } from './args.js';
import { serve, type Served } from './bench/processes.js';
import { measure, type Measured } from './bench/load.js';
import { prepare, type Scenario } from './bench/scenarios.js';
import { capacityMain } from './capacity.js';

const ADMIN = `bench-admin-${randomBytes(8).toString('hex')}`;
const USER_SECRET = randomBytes(24).toString('hex');

interface Row {
  stack: string;
  scenario: string;
  target: number;
  real: Measured;
  baseline: Measured;
  ratio: number;
  met: boolean;
  unexpected: string | null;
}

interface Stack {
  name: string;
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

async function embedded(): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'stampede-bench-'));
  return { name: 'embedded', env: { STAMPEDE_DATA_DIR: dir }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
}

async function redisPg(redisUrl: string, pgUrl: string): Promise<Stack | null> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  const db = `stampede_bench_${randomBytes(4).toString('hex')}`;
  // Its own key prefix, deleted afterwards: the Redis may be shared (never flush it).
  const prefix = `stampede-bench-${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 3000 });
  try {
    await redis.connect();
    await admin.connect();
    await admin.query(`CREATE DATABASE ${db}`);
  } catch (err) {
    process.stderr.write(`bench: skipping redis+pg (${(err as Error).message})\n`);
    redis.disconnect();
    await admin.end().catch(() => {});
    return null;
  }
  const url = new URL(pgUrl);
  url.pathname = `/${db}`;
  return {
    name: 'redis+pg',
    env: { REDIS_URL: redisUrl, DATABASE_URL: url.toString(), STAMPEDE_REDIS_PREFIX: prefix },
    async cleanup() {
      // The engine's keys, and the rate limits the node keeps under `dev:<prefix>` outside production.
      await deleteKeys(redis, `${prefix}:*`, `dev:${prefix}:*`).catch(() => {});
      redis.disconnect();
      await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
      await admin.end();
    },
  };
}

function baselineRoutes(scenarios: Scenario[]) {
  const routes = new Map<string, { method: string; url: string; replies: Record<string, { status: number; body: string }> }>();
  for (const s of scenarios) {
    const key = `${s.route.method} ${s.route.url}`;
    if (!routes.has(key)) routes.set(key, { ...s.route, replies: {} });
    routes.get(key)!.replies[s.saleId] = s.sample;
  }
  return [...routes.values()];
}

const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');

async function benchStack(
  stack: Stack,
  opts: {
    server: string;
    only: string | undefined;
    gatewayLatencyMs: number;
    connections: number;
    durationSec: number;
    powRequests: number;
    enterRequests: number;
    purchaseRequests: number;
    tickets: number;
    solvers: number;
    cpuProf: string | null;
  },
  log: (s: string) => void,
): Promise<Row[]> {
  log(`[${stack.name}] starting a node`);
  const node = await serve(
    opts.server,
    {
      ...stack.env,
      STAMPEDE_IP_RATE_LIMIT: '0',
      STAMPEDE_ADMIN_TOKEN: ADMIN,
      STAMPEDE_USER_JWT_SECRET: USER_SECRET,
      STAMPEDE_TICKET_SECRET: randomBytes(24).toString('hex'),
      STAMPEDE_DEMO: '0',
      LOG_LEVEL: 'warn',
      STAMPEDE_SANDBOX_LATENCY_MS: String(opts.gatewayLatencyMs),
    },
    '/readyz',
    opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProf}`] : [],
  );
  let baseline: Served | null = null;
  const rows: Row[] = [];
  try {
    const scenarios = await prepare(node.url, ADMIN, USER_SECRET, opts, (s) => log(`[${stack.name}] ${s}`));
    baseline = await serve('tools/bench/baseline-server.ts', { BENCH_BASELINE_ROUTES: JSON.stringify(baselineRoutes(scenarios)) }, '/healthz');
    for (const s of scenarios.filter((x) => !opts.only || x.name.startsWith(opts.only))) {
      // The baseline answers constants, so it may reuse items: it always runs for the duration.
      const base = await measure(baseline.url, s.items, { connections: opts.connections, durationSec: opts.durationSec, serverPid: baseline.pid });
      const real = await measure(node.url, s.items, {
        connections: opts.connections,
        serverPid: node.pid,
        ...(s.amount ? { amount: s.amount } : { durationSec: opts.durationSec }),
      });
      const ratio = real.requestsPerSec / base.requestsPerSec;
      const expected = real.statuses[String(s.expect)] ?? 0;
      const unexpected = expected < real.requests * 0.99 ? `answers ${JSON.stringify(real.statuses)}, expected ${s.expect}` : null;
      rows.push({ stack: stack.name, scenario: s.name, target: s.target, real, baseline: base, ratio, met: ratio >= s.target && !unexpected, unexpected });
      log(
        `[${stack.name}] ${s.name}: ${fmt(real.requestsPerSec)} req/s (baseline ${fmt(base.requestsPerSec)}) = ${fmt(ratio, 2)}×; ` +
          `server CPU ${fmt(real.serverCpuUsPerRequest)} µs/req at ${fmt(real.serverCores, 2)} cores (baseline ${fmt(base.serverCpuUsPerRequest)} µs/req at ${fmt(base.serverCores, 2)}), ` +
          `load generator ${fmt(real.loadCores, 2)} / ${fmt(base.loadCores, 2)} cores${unexpected ? ` — ${unexpected}` : ''}`,
      );
    }
  } finally {
    await baseline?.stop();
    await node.stop();
  }
  return rows;
}

export function table(rows: Row[]): string {
  const head = `${'stack'.padEnd(10)}${'scenario'.padEnd(31)}${'req/s'.padStart(9)}${'p50 ms'.padStart(8)}${'p99 ms'.padStart(8)}${'baseline'.padStart(10)}${'ratio'.padStart(7)}${'target'.padStart(8)}${'µs/req'.padStart(8)}${'base µs'.padStart(9)}  met`;
  const lines = rows.map(
    (r) =>
      `${r.stack.padEnd(10)}${r.scenario.padEnd(31)}${fmt(r.real.requestsPerSec).padStart(9)}${fmt(r.real.p50, 1).padStart(8)}${fmt(r.real.p99, 1).padStart(8)}${fmt(r.baseline.requestsPerSec).padStart(10)}${fmt(r.ratio, 2).padStart(7)}${`≥${r.target}`.padStart(8)}${fmt(r.real.serverCpuUsPerRequest).padStart(8)}${fmt(r.baseline.serverCpuUsPerRequest).padStart(9)}  ${r.met ? 'yes' : 'NO'}${r.unexpected ? ` (${r.unexpected})` : ''}`,
  );
  return [head, ...lines].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const a = new Args(argv);
  if (a.has('connections')) return capacityMain(argv);
  let opts: ReturnType<typeof parse>;
  const parse = () => ({
    stacks: a.string('stacks', 'embedded,redis+pg').split(','),
    connections: a.count('concurrency', 64, 1),
    durationSec: a.duration('duration', 5000) / 1000,
    enterRequests: a.count('enter-requests', 5000, 100),
    powRequests: a.count('pow-requests', 5000, 100),
    purchaseRequests: a.count('purchase-requests', 10_000, 100),
    /** The sandbox card network's round trip: 0 measures Stampede's own cost (a real one adds ~25 ms of waiting, not CPU). */
    gatewayLatencyMs: a.count('gateway-latency-ms', 0, 0),
    tickets: a.count('tickets', 4000, 100),
    solvers: a.count('solvers', 2, 1),
    redisUrl: a.string('redis-url', process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/9'),
    pgUrl: a.string('database-url', process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'),
    cpuProf: a.has('cpu-prof') ? (a.string('cpu-prof') === 'true' ? 'reports/profiles' : a.string('cpu-prof')!) : null,
    out: a.string('out', 'reports'),
    /** Measure only the scenarios whose name starts with this (for profiling one). */
    only: a.string('only'),
    /** Another entry point to measure in place of the build (A/B experiments on the node: a .ts file runs through tsx). */
    server: a.string('server', 'dist/server.js'),
  });
  try {
    opts = parse();
    a.rejectUnknown();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`stampede bench: ${err.message}\n`);
      return 64;
    }
    throw err;
  }
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const started = Date.now();
  const rows: Row[] = [];
  for (const name of opts.stacks) {
    const stack = name === 'embedded' ? await embedded() : name === 'redis+pg' ? await redisPg(opts.redisUrl, opts.pgUrl) : null;
    if (!stack) continue;
    try {
      rows.push(...(await benchStack(stack, opts, log)));
    } finally {
      await stack.cleanup();
    }
  }
  process.stdout.write(
    `\n${table(rows)}\n\n(${((Date.now() - started) / 1000).toFixed(0)} s; ${opts.connections} connections; sandbox gateway round trip ${opts.gatewayLatencyMs} ms; baseline = bare Fastify answering the same requests with a constant reply of the same size)\n`,
  );
  mkdirSync(opts.out, { recursive: true });
  const file = join(opts.out, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      { at: new Date().toISOString(), machine: { cpus: (await import('node:os')).cpus().length, node: process.version }, options: opts, rows },
      null,
      2,
    ),
  );
  process.stderr.write(`results: ${file}\n`);
  return rows.every((r) => r.met) ? 0 : 2;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`stampede bench: ${err.stack ?? err}\n`);
      process.exit(70);
    },
  );
}
