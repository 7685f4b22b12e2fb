/**
 * The faults of the chaos suite (issue 13), each injected into a live sale: what is done, to
 * what, for how long, and when it is over. A fault's window — from the first blow to the moment
 * the dependency is back — is what "during the fault" means in the checks.
 */
import type { FaultWindow } from './checks.js';
import type { ChaosStack } from './stack.js';

export interface FaultTimes {
  /** How long a dependency stays down (PostgreSQL, Redis) or frozen. */
  outageMs: number;
  /** How long NATS stays down. */
  natsOutageMs: number;
  /** How long the second of two nodes stays dead before it is started again. */
  nodeDownMs: number;
}

export const FULL_TIMES: FaultTimes = { outageMs: 15_000, natsOutageMs: 45_000, nodeDownMs: 10_000 };
export const SHORT_TIMES: FaultTimes = { outageMs: 5_000, natsOutageMs: 8_000, nodeDownMs: 4_000 };

export interface Scenario {
  name: string;
  /** One line for the report. */
  title: string;
  nodes: 1 | 2;
  /** Settings the nodes run with for this scenario (the card network's behaviour). */
  nodeEnv?: Record<string, string>;
  /**
   * True when the fault lasts as long as the buying does (it is in the nodes' settings): its
   * window runs from the sale's opening to the buyers' stop.
   */
  wholeRun?: boolean;
  /** Does it, waits it out, puts things back; returns its windows. */
  inject(stack: ChaosStack, times: FaultTimes, log: (line: string) => void): Promise<FaultWindow[]>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `down`, waits `ms`, runs `up`: one window from the first to the end of `up`. */
async function outage(what: string, ms: number, down: () => unknown, up: () => Promise<void> | void, log: (line: string) => void): Promise<FaultWindow[]> {
  const from = Date.now();
  log(`  fault: ${what} (${ms / 1000} s)`);
  await down();
  await sleep(ms - (Date.now() - from));
  await up();
  const to = Date.now();
  log(`  fault over after ${((to - from) / 1000).toFixed(1)} s`);
  return [{ what, from, to }];
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'kill-node',
    title: 'kill -9 the only node, start it again',
    nodes: 1,
    async inject(stack, _times, log) {
      const node = stack.nodes[0];
      // Down until the restarted node answers: however long its start takes.
      return outage(
        `kill -9 ${node.name}, restart`,
        0,
        () => node.kill9(),
        () => node.start(),
        log,
      );
    },
  },
  {
    name: 'kill-one-of-two',
    title: 'kill -9 one of two nodes; the other keeps serving',
    nodes: 2,
    async inject(stack, times, log) {
      const node = stack.nodes[1];
      return outage(
        `kill -9 ${node.name} of two`,
        times.nodeDownMs,
        () => node.kill9(),
        () => node.start(),
        log,
      );
    },
  },
  {
    name: 'redis-aof',
    title: 'Redis killed (-9) and restarted from its AOF',
    nodes: 1,
    async inject(stack, times, log) {
      return outage(
        'Redis kill -9, restart from AOF',
        Math.min(times.outageMs, 5000),
        () => stack.redis.kill9(),
        () => stack.redis.restart(),
        log,
      );
    },
  },
  {
    name: 'redis-empty',
    title: 'Redis killed (-9) and restarted empty',
    nodes: 1,
    async inject(stack, times, log) {
      return outage(
        'Redis kill -9, restart empty',
        Math.min(times.outageMs, 5000),
        () => stack.redis.kill9(),
        () => stack.redis.restart({ empty: true }),
        log,
      );
    },
  },
  {
    name: 'pg-stop',
    title: 'PostgreSQL stopped, then started',
    nodes: 1,
    async inject(stack, times, log) {
      return outage(
        'PostgreSQL stopped',
        times.outageMs,
        () => stack.pg.stopServer(),
        () => stack.pg.startServer(),
        log,
      );
    },
  },
  {
    name: 'pg-freeze',
    title: 'PostgreSQL frozen (SIGSTOP), then resumed',
    nodes: 1,
    async inject(stack, times, log) {
      return outage(
        'PostgreSQL frozen (SIGSTOP)',
        times.outageMs,
        () => stack.pg.freeze(),
        () => stack.pg.resume(),
        log,
      );
    },
  },
  {
    name: 'nats-down',
    title: 'NATS killed, started again later',
    nodes: 1,
    async inject(stack, times, log) {
      return outage(
        'NATS down',
        times.natsOutageMs,
        () => stack.nats.kill(),
        () => stack.nats.start(),
        log,
      );
    },
  },
  {
    name: 'card-timeouts',
    title: 'the card network times out (30 % of calls hang 10 s, half after doing the work)',
    nodes: 1,
    nodeEnv: { STAMPEDE_SANDBOX_TIMEOUT_PERCENT: '30', STAMPEDE_SANDBOX_TIMEOUT_MS: '10000' },
    wholeRun: true,
    async inject(_stack, _times, log) {
      log('  fault: the card network times out for the whole sale');
      return [];
    },
  },
];

export function scenarioNamed(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
