/**
 * One node on every core (`STAMPEDE_WORKERS` > 1): this process becomes a `node:cluster` primary
 * that forks the workers, each a whole Stampede server on the same port. The workers share the
 * sale through Redis and PostgreSQL, as separate nodes do, and the secrets demo mode made up
 * through their environment, so each accepts the tickets, sessions and admin token of another.
 * The primary serves nothing itself: it re-forks a worker that dies (and gives up on a crash
 * loop), and on SIGTERM or SIGINT has every worker drain and waits for them.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from './config.js';

/** Marks the workers this primary forked (not those of a process manager's own cluster mode). */
const WORKER_ENV = 'STAMPEDE_CLUSTER_WORKER';
/** A worker that dies sooner than this after its fork died starting (or crashes at once). */
export const QUICK_DEATH_MS = 10_000;
/** That many quick deaths in a row, and the node gives up (exit 1): the cause will not go away by itself. */
export const GIVE_UP_AFTER = 5;
/** Re-forks are at least this far apart, doubling with each quick death in a row. */
const REFORK_GAP_MS = 1000;

/** This process's worker id when it is one of our workers, else null (a single process). */
export function workerId(): number | null {
  return cluster.isWorker && process.env[WORKER_ENV] === '1' ? cluster.worker!.id : null;
}

/**
 * In a worker: SIGTERM or SIGINT — from the primary passing one on, from a terminal's Ctrl-C to
 * the whole process group, or both — asks for one graceful close. A signal that arrives again
 * is the same request, not an order to quit at once (the primary decides that). Before the
 * node is up there is nothing to drain, and the worker exits at once.
 */
export function closeRequests(): { onClose(close: (signal: NodeJS.Signals) => void): void } {
  let close: ((signal: NodeJS.Signals) => void) | null = null;
  let asked = false;
  const ask = (signal: NodeJS.Signals) => {
    if (asked) return;
    asked = true;
    if (close) close(signal);
    else process.exit(0);
  };
  process.on('SIGTERM', ask);
  process.on('SIGINT', ask);
  return { onClose: (fn) => void (close = fn) };
}

/** Runs the primary: forks `config.workers` workers and looks after them until it exits. */
export function runPrimary(config: Readonly<Config>, log: Logger): void {
  // Each worker accepts from the one listening socket itself, and the kernel hands every new
  // connection to one of them. Node's default (SCHED_RR) has the primary accept every
  // connection and pass it over IPC: one process doing all the accepting, and a hop per
  // connection, just when thousands connect at once. Frozen at the first fork, so set first.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  // Workers inherit the environment, and so the node's secrets (on Redis they are configured: server.ts).
  const env = { [WORKER_ENV]: '1' };
  /** The workers alive, by id. */
  const workers = new Map<number, Worker>();
  const forkedAt = new WeakMap<Worker, number>();
  let lastForkAt = 0;
  /** Re-forks waiting for their turn: dropped when the node stops. */
  const pendingForks = new Set<NodeJS.Timeout>();
  let quickDeaths = 0;
  let stopping = false;
  let failed = false;

  const fork = () => {
    lastForkAt = Math.max(lastForkAt, Date.now());
    const worker = cluster.fork(env);
    forkedAt.set(worker, Date.now());
    workers.set(worker.id, worker);
    worker.on('error', (err) => log.warn({ err, worker: worker.id }, 'worker channel failed'));
  };

  const finish = () => {
    if (!stopping || workers.size > 0) return;
    log.info({ exitCode: failed ? 1 : 0 }, 'every worker has exited');
    process.exit(failed ? 1 : 0);
  };

  const stop = (signal: NodeJS.Signals | null) => {
    if (stopping) {
      if (!signal) return;
      log.warn({ signal }, `second ${signal}: killing the workers`);
      for (const worker of workers.values()) worker.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    for (const timer of pendingForks) clearTimeout(timer);
    pendingForks.clear();
    if (signal) log.info({ signal, workers: workers.size }, 'closing: every worker drains, then the node exits');
    // A worker treats this as the terminal's signal it may also have had: one graceful close.
    for (const worker of workers.values()) worker.process.kill('SIGTERM');
    // Each worker gives up on its own drain after drainMs + 10 s; this is the backstop.
    setTimeout(() => {
      log.error({ workers: [...workers.keys()] }, 'workers still running after the drain deadline: killed');
      for (const worker of workers.values()) worker.process.kill('SIGKILL');
      process.exit(1);
    }, config.drainMs + 15_000).unref();
    finish();
  };

  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (forkedAt.get(worker) ?? 0);
    workers.delete(worker.id);
    if (stopping) {
      if (code !== 0) failed = true;
      finish();
      return;
    }
    quickDeaths = lived < QUICK_DEATH_MS ? quickDeaths + 1 : 0;
    const died = { worker: worker.id, pid: worker.process.pid, code, signal, livedMs: lived };
    if (quickDeaths >= GIVE_UP_AFTER) {
      log.error(died, `workers keep dying within ${QUICK_DEATH_MS / 1000} s of starting (${quickDeaths} in a row): giving up`);
      failed = true;
      stop(null);
      return;
    }
    // A crash loop must not spin: re-forks are a second apart at least, more after each quick death.
    const at = Math.max(Date.now(), lastForkAt + REFORK_GAP_MS * 2 ** Math.max(0, quickDeaths - 1));
    lastForkAt = at;
    log.error({ ...died, restartInMs: at - Date.now() }, 'worker died: starting another');
    const timer = setTimeout(() => {
      pendingForks.delete(timer);
      fork();
    }, at - Date.now());
    pendingForks.add(timer);
  });

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log.info({ workers: config.workers, port: config.port }, `starting ${config.workers} workers on one port`);
  for (let i = 0; i < config.workers; i++) fork();
}
