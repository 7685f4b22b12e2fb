/**
 * `stampede rehearse` (also `npm run rehearse -- ...`): simulates a drop against a running
 * server and says whether every invariant held. It creates its own sale through the admin API,
 * sends people and bots at it, prints a report and writes it as text, JSON and a standalone
 * HTML page with charts. Exit code: 0 every invariant held, 1 one broke, 2 a target was missed
 * (only with --strict), 64 bad usage, 70 the rehearsal itself could not run.
 *
 *   ulimit -n 200000 && npm run rehearse -- --url http://127.0.0.1:3000 --admin-token T \
 *     --user-secret S --users 100000 --bots 0.6 --units 1000 --start-in 5s --arrival 10s
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Args, UsageError } from './args.js';
import { fileLimit, fileLimitHint } from '../src/fd-limit.js';
import { PEOPLE_SOCKETS, runDrop, type DropData, type RehearsalOptions } from './rehearsal/drop.js';
import { judge, type Verdict } from './rehearsal/verdict.js';
import { textReport } from './rehearsal/report-text.js';
import { htmlReport } from './rehearsal/report-html.js';

export const USAGE = `usage: stampede rehearse --url URL --admin-token TOKEN [--user-secret SECRET] [options]

  --url URL               the server (default http://127.0.0.1:3000)
  --admin-token T         its STAMPEDE_ADMIN_TOKEN (or set STAMPEDE_ADMIN_TOKEN)
  --user-secret S         its STAMPEDE_USER_JWT_SECRET, to mint user tokens; without it the
                          users take guest sessions (POST /api/session, demo mode only)
  --users N               simulated users, people and bots together (default 100000)
  --bots SHARE            share of them that are bots (default 0.6)
  --units N --skus N      stock and how many items it is split over (default 1000, 1)
  --per-user-limit N      default 1
  --start-in DUR          the sale opens this long after the run begins (default 5s)
  --arrival DUR           people arrive evenly over this window, bots in its first 30 % (default 10s)
  --pow-difficulty N      the sale's proof-of-work (default 0 = off). Every simulated user
                          solves it here, ~2.5 ms of CPU each at 1 (doubling per step): 10,000
                          users need ~25 s of CPU, which on a small machine delays arrivals
                          (see "Arrival to enter-queue sent" in the report) and takes cores from
                          the server. Without it the server's fast-entry bot signal is blind.
  --admission-rate N      admissions per second (default 200)
  --mode fifo|randomized_prequeue
  --queue-shards N        the sale's queue lanes (queue.shards, default 1): a mega-drop's queue
                          spread over N Redis slots; the report measures FIFO across lanes
  --poll SHARE            share of people who poll status every 2 s instead of streaming (default 0.2)
  --max-streams N         event streams held at once (default: what the file limit allows)
  --people-per-address N  people behind one address (default 4; the server flags more than 5)
  --bot-addresses N --bot-fingerprints N   the farm's addresses and browser builds (default 32, 8)
  --bot-interval DUR      how often each bot retries purchase (default 1s)
  --double-click SHARE    people whose first purchase is sent twice at once (default 0.05)
  --solvers N             proof-of-work worker threads (default 1)
  --timeout DUR           give up after this long (default start-in + arrival + 120s)
  --settle DUR            wait this long for holds and authorisations to end (default 30s)
  --no-cancel             leave an unsold sale open (default: cancel it and check every authorisation is voided)
  --out DIR               where the reports go (default reports)
  --strict                exit 2 when a target is missed
  --quiet                 no progress line`;

export interface RehearsalRun {
  data: DropData;
  verdict: Verdict;
  text: string;
  files: string[];
  exitCode: number;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): RehearsalOptions & { out: string; strict: boolean } {
  const a = new Args(argv);
  const startInMs = a.duration('start-in', 5000);
  const arrivalMs = a.duration('arrival', 10_000);
  const adminToken = a.string('admin-token', env.STAMPEDE_ADMIN_TOKEN);
  if (!adminToken) throw new UsageError("--admin-token is required (the server's STAMPEDE_ADMIN_TOKEN)");
  const mode = a.string('mode', 'fifo');
  if (mode !== 'fifo' && mode !== 'randomized_prequeue') throw new UsageError('--mode must be fifo or randomized_prequeue');
  const opts = {
    url: a.string('url', 'http://127.0.0.1:3000'),
    adminToken,
    userSecret: a.string('user-secret', env.STAMPEDE_USER_JWT_SECRET),
    users: a.count('users', 100_000, 1),
    bots: a.share('bots', 0.6),
    units: a.count('units', 1000, 1),
    skus: a.count('skus', 1, 1),
    perUserLimit: a.count('per-user-limit', 1, 1),
    startInMs,
    arrivalMs,
    powDifficulty: a.count('pow-difficulty', 0),
    admissionRate: a.count('admission-rate', 200, 1),
    mode: mode as RehearsalOptions['mode'],
    queueShards: a.count('queue-shards', 1, 1),
    admittedTtlSec: Math.round(a.duration('admitted-ttl', 120_000) / 1000),
    pollShare: a.share('poll', 0.2),
    maxStreams: a.count('max-streams', -1 >>> 0),
    doubleClickShare: a.share('double-click', 0.05),
    botIntervalMs: a.duration('bot-interval', 1000),
    botConnections: a.count('bot-connections', 16, 1),
    thinkMs: [400, 1500] as [number, number],
    pollEveryMs: 2000,
    peoplePerAddress: a.count('people-per-address', 4, 1),
    botAddresses: a.count('bot-addresses', 32, 1),
    botFingerprints: a.count('bot-fingerprints', 8, 1),
    solvers: a.count('solvers', 1),
    timeoutMs: a.duration('timeout', startInMs + arrivalMs + 120_000),
    settleMs: a.duration('settle', 30_000),
    cancelUnsold: !a.flag('no-cancel'),
    quiet: a.flag('quiet'),
    out: a.string('out', 'reports'),
    strict: a.flag('strict'),
  };
  if (opts.units < opts.skus) throw new UsageError('--units must be at least --skus');
  a.rejectUnknown();
  return opts;
}

/** Fits the streams into the file limit: people who cannot stream poll instead (said in the log). */
function fitStreams(opts: RehearsalOptions, log: (s: string) => void): void {
  const people = Math.round(opts.users * (1 - opts.bots));
  const wanted = Math.ceil(people * (1 - opts.pollShare));
  const other = Math.ceil(people / opts.peoplePerAddress) * PEOPLE_SOCKETS + opts.botAddresses * opts.botConnections + 1000;
  const hint = fileLimitHint(wanted + other, 'npm run rehearse -- ...');
  const limit = fileLimit();
  if (opts.maxStreams === -1 >>> 0) opts.maxStreams = limit ? Math.max(0, Math.min(wanted, limit.soft - other)) : wanted;
  if (hint) log(`stampede rehearse: ${hint}`);
  if (opts.maxStreams < wanted)
    log(`stampede rehearse: at most ${opts.maxStreams} event streams at once; ${wanted - opts.maxStreams} people who would stream will poll instead`);
}

export async function rehearse(
  opts: RehearsalOptions & { out: string; strict: boolean },
  log: (s: string) => void = (s) => process.stderr.write(`${s}\n`),
): Promise<RehearsalRun> {
  fitStreams(opts, log);
  const data = await runDrop(opts, log);
  const verdict = judge(data);
  const text = textReport(data, verdict);
  const files: string[] = [];
  if (opts.out) {
    mkdirSync(opts.out, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const base = join(opts.out, `rehearsal-${stamp}`);
    writeFileSync(`${base}.txt`, `${text}\n`);
    writeFileSync(`${base}.html`, htmlReport(data, verdict));
    writeFileSync(`${base}.json`, JSON.stringify(summary(data, verdict), null, 2));
    files.push(`${base}.txt`, `${base}.html`, `${base}.json`);
  }
  const exitCode = exitCodeFor(verdict, opts.strict);
  return { data, verdict, text, files, exitCode };
}

/** 1 when an invariant broke; 2 when a target was missed and `strict`; else 0. */
export function exitCodeFor(verdict: Pick<Verdict, 'ok' | 'targets'>, strict: boolean): number {
  if (!verdict.ok) return 1;
  return strict && verdict.targets.some((t) => t.met === false) ? 2 : 0;
}

/** The machine-readable result (no per-shopper records). */
function summary(d: DropData, v: Verdict) {
  const { adminToken: _a, userSecret: _u, ...options } = d.opts;
  return {
    ok: v.ok,
    sale_id: d.sale.id,
    options,
    checks: v.checks,
    targets: v.targets,
    people: v.figures.people,
    bots: v.figures.bots,
    errors: v.figures.errors,
    sold_units: v.figures.soldUnits,
    bot_units: v.figures.botUnits,
    fifo: v.figures.fifo,
    checkout_ms: v.figures.checkout.summary(),
    purchase_ms: v.figures.purchase.summary(),
    sold_out_notice_ms: { sse: v.figures.soldOutNotice.sse.summary(), poll: v.figures.soldOutNotice.poll.summary() },
    latency_ms: Object.fromEntries([...d.client.latency].map(([k, s]) => [k, s.summary()])),
    answers: Object.fromEntries(d.client.answers),
    loop_delay_ms: d.loopDelay,
    ledger: {
      stats: d.ledger.stats,
      holds_ended_ms: d.ledger.holdsEndedMs,
      auths_ended_ms: d.ledger.authsEndedMs,
      auths_open: d.ledger.authsOpen,
      cancelled: d.ledger.cancelled,
    },
    run_ms: d.endedAt - d.startedAt,
    timed_out: d.timedOut,
  };
}

export async function main(argv: string[]): Promise<number> {
  let opts;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`stampede rehearse: ${err.message}\n\n${USAGE}\n`);
      return 64;
    }
    throw err;
  }
  try {
    const run = await rehearse(opts);
    process.stdout.write(`${run.text}\n`);
    if (run.files.length) process.stderr.write(`reports: ${run.files.map((f) => resolve(f)).join('  ')}\n`);
    return run.exitCode;
  } catch (err) {
    process.stderr.write(`stampede rehearse: ${(err as Error).message}\n`);
    return 70;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  main(argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error('rehearse: failed:', err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
