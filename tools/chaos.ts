/**
 * `npm run chaos`: the fault suite of issue 13. Starts its own Redis (AOF on), PostgreSQL cluster
 * and NATS on spare ports and Stampede nodes as real processes, breaks one thing during each live
 * sale, and checks from outside and from the ledger that nothing was lost. Exit code: 0 every
 * check held, 1 one broke (or a scenario could not run), 64 bad usage.
 *
 *   npm run chaos                              every scenario at full size (about 10 minutes)
 *   npm run chaos -- --scenario pg-stop,redis-empty
 *   npm run chaos -- --short                   the small version `npm test` runs
 */
import { Args, UsageError } from './args.js';
import { SCENARIOS, scenarioNamed } from './chaos/scenarios.js';
import { FULL_SIZE, SHORT_SIZE, describeSize, runSuite } from './chaos/suite.js';

export const USAGE = `usage: npm run chaos -- [options]

  --scenario A,B     only these (default all): ${SCENARIOS.map((s) => s.name).join(', ')}
  --short            the small sizes of the test suite (20 units, 60 buyers, faults of seconds)
  --units N --buyers N --reservation DUR    the sale (default 200, 600, 5s)
  --outage DUR       how long PostgreSQL and Redis stay down or frozen (default 15s)
  --nats-outage DUR  how long NATS stays down (default 45s)
  --shared-stack     one set of services for every scenario (default: a fresh one each)
  --no-latency       report the 2 s figure without judging it
  --out DIR          where the report goes (default chaos-report)
  --list             the scenarios, and exit`;

async function main(argv: string[]): Promise<number> {
  const a = new Args(argv);
  if (a.flag('help') || a.flag('list')) {
    console.log(a.flag('list') ? SCENARIOS.map((s) => `${s.name.padEnd(16)} ${s.title}`).join('\n') : USAGE);
    return 0;
  }
  const short = a.flag('short');
  const base = short ? SHORT_SIZE : FULL_SIZE;
  const names = a.string('scenario');
  const scenarios = names
    ? names.split(',').map((n) => {
        const s = scenarioNamed(n.trim());
        if (!s) throw new UsageError(`no scenario "${n}" (try --list)`);
        return s;
      })
    : SCENARIOS;
  const size = {
    ...base,
    units: a.count('units', base.units, 1),
    buyers: a.count('buyers', base.buyers, 1),
    reservationSec: Math.max(1, Math.round(a.duration('reservation', base.reservationSec * 1000) / 1000)),
    times: { ...base.times, outageMs: a.duration('outage', base.times.outageMs), natsOutageMs: a.duration('nats-outage', base.times.natsOutageMs) },
    checks: { ...base.checks, judgeLatency: base.checks.judgeLatency && !a.flag('no-latency') },
  };
  const sharedStack = a.flag('shared-stack', short);
  const outDir = a.string('out', 'chaos-report');
  a.rejectUnknown();
  console.log(`chaos: ${scenarios.length} scenario(s); ${describeSize(size)}`);
  const result = await runSuite({ scenarios, size, sharedStack, outDir, log: (line) => console.log(line) });
  if (result.dir) console.log(`\nreport: ${result.dir}/report.md`);
  console.log(result.ok ? 'chaos: every check held' : 'chaos: VIOLATIONS (see above)');
  return result.ok ? 0 : 1;
}

// Ctrl-C: exit through 'exit', where the nodes and services of the run are killed and removed.
process.once('SIGINT', () => process.exit(130));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n\n${USAGE}`);
      process.exit(64);
    }
    console.error('chaos: could not run:', err);
    process.exit(70);
  },
);
