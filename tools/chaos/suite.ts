/**
 * The chaos suite: scenarios one after another, each on a stack of its own (or all on one shared
 * stack, for the short run), with the report written under `chaos-report/<time>/`: `report.md`,
 * `report.json`, each scenario's answers, and the nodes' logs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CheckOptions } from './checks.js';
import { markdownReport, summaryJson, textFindings, textTable } from './report.js';
import { runScenario, type RunSize, type ScenarioRun } from './run.js';
import { FULL_TIMES, SHORT_TIMES, type Scenario } from './scenarios.js';
import { ChaosStack } from './stack.js';

const CHECKS: CheckOptions = { keyDeadlineMs: 10_000, latencyLimitMs: 2000, faultGraceMs: 2000, judgeLatency: true };

/** Issue 13's size: 200 units, 600 buyers, 5 s reservations; faults of 15 s (NATS 45 s). */
export const FULL_SIZE: RunSize = {
  units: 200,
  buyers: 600,
  reservationSec: 5,
  arrivalMs: 12_000,
  admissionRate: 60,
  payNow: 0.4,
  payLater: 0.35,
  sse: 0.25,
  faultDelayMs: 3000,
  tailMs: 30_000,
  repairMs: 60_000,
  times: FULL_TIMES,
  checks: CHECKS,
};

/** The short run inside `npm test`: a sale of 20 units, 60 buyers, faults of a few seconds; latency reported, not judged. */
export const SHORT_SIZE: RunSize = {
  units: 20,
  buyers: 60,
  reservationSec: 3,
  arrivalMs: 2500,
  admissionRate: 40,
  payNow: 0.4,
  payLater: 0.35,
  sse: 0.25,
  faultDelayMs: 1500,
  tailMs: 15_000,
  repairMs: 25_000,
  times: SHORT_TIMES,
  checks: { ...CHECKS, judgeLatency: false },
};

export interface SuiteOptions {
  scenarios: Scenario[];
  size: RunSize;
  /** One stack for every scenario (faster) instead of a fresh one each. */
  sharedStack: boolean;
  /** Where `<time>/` goes; null writes nothing. */
  outDir: string | null;
  log: (line: string) => void;
}

export interface SuiteResult {
  runs: ScenarioRun[];
  /** Scenarios that could not run at all (a service would not start, say), with why. */
  broken: Array<{ scenario: string; error: string }>;
  dir: string | null;
  durationMs: number;
  ok: boolean;
}

export async function runSuite(opts: SuiteOptions): Promise<SuiteResult> {
  const started = Date.now();
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
  const dir = opts.outDir ? resolve(opts.outDir, stamp) : null;
  const logDir = dir ?? resolve('/tmp', `stampede-chaos-${stamp}`);
  mkdirSync(logDir, { recursive: true });
  const runs: ScenarioRun[] = [];
  const broken: SuiteResult['broken'] = [];
  let shared: ChaosStack | null = null;
  try {
    for (const scenario of opts.scenarios) {
      opts.log(`▶ ${scenario.name}: ${scenario.title}`);
      let stack: ChaosStack | null = null;
      try {
        stack = opts.sharedStack ? (shared ??= await ChaosStack.start(logDir)) : await ChaosStack.start(mkdir(join(logDir, scenario.name)));
        const run = await runScenario(stack, scenario, opts.size, opts.log);
        runs.push(run);
        opts.log(textFindings(run));
        if (dir) writeFileSync(join(dir, `answers-${scenario.name}.json`), JSON.stringify({ answers: run.answers, buyers: run.buyers }));
      } catch (err) {
        broken.push({ scenario: scenario.name, error: (err as Error).stack ?? String(err) });
        opts.log(`  ✗ ${scenario.name} could not run: ${(err as Error).message}`);
      } finally {
        if (stack && !opts.sharedStack) await stack.close();
      }
    }
  } finally {
    await shared?.close();
  }
  const durationMs = Date.now() - started;
  if (dir) {
    const meta = { startedAt: new Date(started).toISOString(), durationMs, size: opts.size, sharedStack: opts.sharedStack, broken };
    writeFileSync(join(dir, 'report.json'), summaryJson(runs, meta));
    writeFileSync(join(dir, 'report.md'), markdownReport(runs, { size: describeSize(opts.size), startedAt: meta.startedAt, durationMs }));
  }
  opts.log(`\n${textTable(runs)}`);
  for (const b of broken) opts.log(`${b.scenario}: could not run — ${b.error.split('\n')[0]}`);
  return { runs, broken, dir, durationMs, ok: broken.length === 0 && runs.every((r) => r.ok) };
}

function mkdir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

export function describeSize(s: RunSize): string {
  return `${s.units} units, ${s.buyers} buyers (${Math.round(s.payNow * 100)} % pay at once, ${Math.round(s.payLater * 100)} % later, the rest never), ${s.reservationSec} s reservations; outages ${s.times.outageMs / 1000} s, NATS ${s.times.natsOutageMs / 1000} s`;
}
