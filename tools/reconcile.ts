/**
 * `stampede reconcile [--sale ID] [--fix] [--json]`: compares each sale's engine state (Redis)
 * with the ledger (PostgreSQL) and prints what differs; with `--fix`, repairs the engine. The
 * same check a node runs on a timer (STAMPEDE_DRIFT_CHECK_SEC) and the admin route
 * `POST /api/admin/flash-sales/{id}/reconcile` runs. It reads the node's own settings
 * (REDIS_URL or REDIS_CLUSTER_NODES, STAMPEDE_REDIS_PREFIX, DATABASE_URL) from the environment.
 *
 * Exit codes: 0 nothing differed (or everything was repaired), 1 differences found and not
 * repaired, 64 bad usage, 69 no shared engine or ledger to check (the embedded ones live inside
 * the running node: use the admin route), 75 try again later (another repair of the sale is
 * running — or one whose process died holds its lease for up to a minute — or a dependency is away).
 */
import { ConfigError, loadConfig } from '../src/config.js';
import { StampedeError, unavailableError } from '../src/errors.js';
import { driftJson, summary, type DriftReport } from '../src/checkout/drift-check.js';
import { Runtime } from '../src/runtime.js';
import { Args, UsageError } from './args.js';

const USAGE = `usage: stampede reconcile [--sale ID] [--fix] [--json]

Compares each current sale (or the one given) in the engine with the ledger and prints what
differs. --fix repairs the engine to match the ledger. Uses the node's settings from the
environment: REDIS_URL or REDIS_CLUSTER_NODES, STAMPEDE_REDIS_PREFIX, DATABASE_URL.`;

/** Sales are followed from an hour before their start until an hour after their last reservation can lapse. */
const HOUR = 3_600_000;

async function main(argv: string[]): Promise<number> {
  const args = new Args(argv);
  if (args.has('help')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const saleId = args.string('sale');
  const fix = args.flag('fix');
  const json = args.flag('json');
  args.rejectUnknown();

  // The tool is not a node: it needs no secrets of its own, so demo mode may make them up.
  const config = loadConfig({ STAMPEDE_DEMO: '1', ...process.env, NODE_ENV: 'development', STAMPEDE_DRIFT_CHECK_SEC: '0' });
  if (!config.redisUrl && config.redisClusterNodes.length === 0) {
    process.stderr.write(
      'stampede reconcile: no REDIS_URL or REDIS_CLUSTER_NODES: the embedded engine lives inside the running node; use POST /api/admin/flash-sales/{id}/reconcile\n',
    );
    return 69;
  }
  if (!config.databaseUrl) {
    process.stderr.write(
      'stampede reconcile: no DATABASE_URL: the embedded ledger belongs to the running node; use POST /api/admin/flash-sales/{id}/reconcile\n',
    );
    return 69;
  }
  const runtime = await Runtime.create({ config, workers: false });
  try {
    // Not runtime.start(): that would load missing sales into the engine, which is --fix's to do.
    await runtime.clock.sync();
    const now = runtime.clock.now();
    const current = (await runtime.sales.list()).filter(
      (s) => s.startsAt.getTime() - HOUR < now && s.endsAt.getTime() + s.reservationTtlSec * 1000 + HOUR > now,
    );
    const ids = saleId ? [saleId] : current.map((s) => s.id);
    const reports: DriftReport[] = [];
    for (const id of ids) reports.push(await runtime.driftCheck.check(id, { fix }));
    if (json) process.stdout.write(`${JSON.stringify(reports.map(driftJson), null, 2)}\n`);
    else process.stdout.write(`${render(reports, fix)}\n`);
    return reports.some((r) => (r.drifted || r.engine === 'missing') && !r.fixed) ? 1 : 0;
  } finally {
    await runtime.close();
  }
}

function render(reports: DriftReport[], fix: boolean): string {
  if (reports.length === 0) return 'no sale is current (within an hour of its window); give --sale ID to check another';
  const lines: string[] = [];
  for (const r of reports) {
    lines.push(`sale ${r.saleId}: ${summary(r)}${r.drifted || r.engine !== 'ok' ? (r.fixed ? ' — repaired' : fix ? '' : ' — run with --fix to repair') : ''}`);
    for (const s of r.skus) {
      lines.push(
        `  ${s.sku.padEnd(16)} quantity ${s.quantity}  ledger sold ${s.ledgerSold} held ${s.ledgerHeld}  engine stock ${s.engineStock} held ${s.engineHeld} sold ${s.engineSold}` +
          (s.stockDelta ? `  stock ${s.stockDelta > 0 ? '+' : ''}${s.stockDelta}` : ''),
      );
    }
    if (r.holds.pending) lines.push(`  ${r.holds.pending} holds without an order yet (in flight, or left by a dead node: the hold sweeper ends them)`);
    for (const u of r.perUser)
      lines.push(`  user ${u.userId} ${u.sku}: engine counts ${u.engine}, ledger ${u.ledger}${u.fixed ? ' (lowered)' : ' (reported only)'}`);
    if (r.short) lines.push(`  ${r.short} stock units could not be taken now (stock at zero); the next check tries again`);
  }
  return lines.join('\n');
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`stampede reconcile: ${err.message}\n${USAGE}\n`);
      process.exit(64);
    }
    // An answer the admin route would give as 409/503 with Retry-After: said in one line, not a stack.
    const temporary = err instanceof StampedeError ? err : unavailableError(err);
    if (temporary?.retryAfter !== undefined) {
      process.stderr.write(`stampede reconcile: ${temporary.message} (try again in ${temporary.retryAfter} s)\n`);
      process.exit(75);
    }
    process.stderr.write(`stampede reconcile: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(70);
  },
);
