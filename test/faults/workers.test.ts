/**
 * One node on every core, as an operator runs it: the compiled server (`node dist/server.js`)
 * with STAMPEDE_WORKERS=2 on Redis and PostgreSQL is a primary and two worker processes that
 * hold the one listening socket themselves, so both answer; they share the node's secrets, so a
 * ticket or session one worker issued is good on the other; a worker killed
 * with SIGKILL is replaced while the port keeps answering; SIGTERM drains every worker and the
 * primary exits 0 with none left. The embedded stack refuses more than one worker, and a node on
 * Redis refuses to make up its secrets (exit 78).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GIVE_UP_AFTER } from '../../src/cluster.js';
import { ensureBuilt, ROOT } from '../../tools/built.js';
import { freePort } from '../support/own-services.js';
import { requirePostgres, withTempDatabase, type TempDatabase } from '../support/pg.js';
import { redisTestEngine, type RedisTestEngine } from '../support/redis.js';
import { saleBody } from '../support/stack.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Generous: two workers start on 2 cores shared with everything else. */
const DEADLINE_MS = 60_000;
/** What every node on one Redis must share (a node on Redis refuses to make them up). */
const SECRETS = {
  STAMPEDE_ADMIN_TOKEN: 'workers-admin-token-0123456789',
  STAMPEDE_USER_JWT_SECRET: 'workers-user-secret-0123456789abcdef0123',
  STAMPEDE_TICKET_SECRET: 'workers-ticket-secret-0123456789abcdef01',
};

/** Every process a test started: killed when the test process leaves, however it leaves. */
const started = new Set<number>();
process.once('exit', () => {
  for (const pid of started) kill(pid, 'SIGKILL');
});

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** Alive, and not a zombie waiting for its parent. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = readProcStat(pid);
  return stat === null || stat.state !== 'Z';
}

function readProcStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state, ppid: Number(ppid) };
  } catch {
    return null;
  }
}

/** The inode of the socket listening on 127.0.0.1:port (Linux), or null. */
function listeningInode(port: number): string | null {
  if (!existsSync('/proc/net/tcp')) return null;
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const row = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[1] === local && f[3] === '0A');
  return row ? row[9] : null;
}

function holdsSocket(pid: number, inode: string): boolean {
  return readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
    } catch {
      return false;
    }
  });
}

/** `node dist/server.js` with the given environment: its log lines, its exit. */
class ServerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout = '';
  stderr = '';

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, ['dist/server.js'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.add(this.child.pid!);
    this.child.stdout!.on('data', (b: Buffer) => (this.stdout += b.toString()));
    this.child.stderr!.on('data', (b: Buffer) => (this.stderr += b.toString()));
    // 'close', not 'exit': by then the last lines written are read too (the workers share the pipes).
    this.exited = new Promise((resolve) => this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The JSON log lines so far. */
  lines(): Array<Record<string, unknown> & { msg: string }> {
    return this.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
  }

  /** The "Stampede is up" lines: one per worker that came up. */
  upLines() {
    return this.lines().filter((l) => l.msg.startsWith('Stampede is up')) as Array<{ msg: string; worker: number; pid: number }>;
  }

  async until<T>(what: string, found: () => T | null | undefined | false): Promise<T> {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      const value = found();
      if (value) return value;
      if (!this.running) throw new Error(`the server exited waiting for ${what}:\n${this.stdout}\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${what} within ${DEADLINE_MS} ms:\n${this.stdout}\n${this.stderr}`);
      await sleep(100);
    }
  }
}

interface Answer {
  status: number;
  body: string;
  /** The client's port: the same on every answer of one kept-alive connection. */
  localPort: number;
}

/** One request; `agent: false` is a fresh connection of its own. */
function request(port: number, agent: http.Agent | false, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: { ...headers, ...(payload ? { 'content-type': 'application/json' } : {}), ...(agent === false ? { connection: 'close' } : {}) },
        timeout: 10_000,
      },
      (res) => {
        // Read now: a kept-alive socket goes back to its agent (and off the response) at the end.
        const localPort = res.socket.localPort!;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text, localPort }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Which worker's numbers a scrape of `/metrics` returned. */
function workerOf(metrics: Answer): number {
  expect(metrics.status).toBe(200);
  return Number(/\{[^}]*worker="(\d+)"/.exec(metrics.body)![1]);
}

it('STAMPEDE_WORKERS=2 on the embedded stack is refused with one line saying why (exit 78), before any fork', async () => {
  await ensureBuilt();
  const server = new ServerProcess({
    STAMPEDE_WORKERS: '2',
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    STAMPEDE_DATA_DIR: '/nonexistent/never-created',
  });
  expect((await server.exited).code).toBe(78);
  expect(server.stderr.trim()).toMatch(
    /^stampede: configuration error: STAMPEDE_WORKERS=2 \(2 processes\) needs REDIS_URL \(or REDIS_CLUSTER_NODES\) and DATABASE_URL: the embedded engine and PGlite live in one process's memory, so each worker would run a sale of its own$/,
  );
  expect(server.stdout).toBe('');
}, 120_000);

it('a node on Redis without its secrets is refused with one line naming them (exit 78), before it connects anywhere', async () => {
  await ensureBuilt();
  // Unreachable Redis and database: the refusal comes before any connection is tried.
  const server = new ServerProcess({
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    REDIS_URL: 'redis://127.0.0.1:1',
    DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
    STAMPEDE_WORKERS: '2',
    STAMPEDE_ADMIN_TOKEN: SECRETS.STAMPEDE_ADMIN_TOKEN,
  });
  expect((await server.exited).code).toBe(78);
  expect(server.stderr.trim()).toMatch(
    /^stampede: configuration error: STAMPEDE_USER_JWT_SECRET, STAMPEDE_TICKET_SECRET must be set on a node that uses Redis: every node on the same Redis must share them/,
  );
  expect(server.stdout).toBe('');
}, 120_000);

it('workers that die as they start are re-forked a few times, a second apart or more, then the node gives up (exit 1)', async (ctx) => {
  const redis = await redisTestEngine();
  try {
    if (!redis || !(await requirePostgres('STAMPEDE_WORKERS'))) return ctx.skip();
    await ensureBuilt();
    // A database that is not there: every worker fails to open its ledger and exits 1.
    const missing = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    missing.pathname = `/${redis.prefix.replaceAll('-', '_')}_missing`;
    const server = new ServerProcess({
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      STAMPEDE_WORKERS: '2',
      REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      STAMPEDE_REDIS_PREFIX: redis.prefix,
      DATABASE_URL: missing.toString(),
      ...SECRETS,
    });
    try {
      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([server.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), 90_000)))]);
      clearTimeout(timer);
      expect(exit, `${server.stdout}\n${server.stderr}`).toEqual({ code: 1, signal: null });
      const lines = server.lines();
      const died = lines.filter((l) => l.msg === 'worker died: starting another');
      // The first deaths are re-forked, each fork planned a second or more after the one before
      // (the log's time plus the wait it announced: a crash loop does not spin)...
      expect(died).toHaveLength(GIVE_UP_AFTER - 1);
      const planned = died.map((l) => (l.time as number) + (l.restartInMs as number));
      for (let i = 1; i < planned.length; i++) expect(planned[i] - planned[i - 1]).toBeGreaterThanOrEqual(990);
      // ...and the fifth in a row ends it.
      expect(lines.filter((l) => /^workers keep dying within 10 s of starting \(5 in a row\): giving up$/.test(l.msg))).toHaveLength(1);
      expect(server.stderr.match(/failed to start: database .* does not exist/g)?.length).toBeGreaterThanOrEqual(GIVE_UP_AFTER);
      // Then the primary's last word (by its time: two lines written within a few ms can reach the pipe in either order).
      const gaveUp = lines.find((l) => l.msg.endsWith('giving up'))!;
      const exited = lines.find((l) => l.msg === 'every worker has exited');
      expect(exited, server.stdout).toMatchObject({ role: 'primary', exitCode: 1 });
      expect(exited!.time as number).toBeGreaterThanOrEqual(gaveUp.time as number);
      expect(lines.filter((l) => (l.time as number) > (exited!.time as number))).toEqual([]);
    } finally {
      server.child.kill('SIGKILL');
    }
  } finally {
    await redis?.cleanup();
  }
}, 120_000);

describe('STAMPEDE_WORKERS=2 on Redis and PostgreSQL', () => {
  let redis: RedisTestEngine | null = null;
  let db: TempDatabase | null = null;
  let server: ServerProcess | null = null;
  let port = 0;
  let admin: Record<string, string> = {};
  /** Every worker pid seen, to prove none is left at the end. */
  const workerPids = new Set<number>();
  /** A kept-alive connection to each worker, by worker id. */
  const pinned = new Map<number, { agent: http.Agent; localPort: number }>();

  beforeAll(async () => {
    redis = await redisTestEngine();
    if (!redis || !(await requirePostgres('STAMPEDE_WORKERS'))) return;
    db = await withTempDatabase();
    await ensureBuilt();
    port = await freePort();
    // Demo mode (guest sessions, the demo sale) with the secrets a node on Redis must be given.
    server = new ServerProcess({
      PORT: String(port),
      HOST: '127.0.0.1',
      STAMPEDE_WORKERS: '2',
      REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      STAMPEDE_REDIS_PREFIX: redis.prefix,
      DATABASE_URL: db.url,
      STAMPEDE_IP_RATE_LIMIT: '0',
      STAMPEDE_DEMO: '1',
      ...SECRETS,
    });
    await server.until('two workers up', () => server!.upLines().length >= 2);
    for (const line of server.upLines()) workerPids.add(line.pid);
    admin = { authorization: `Bearer ${SECRETS.STAMPEDE_ADMIN_TOKEN}` };
  }, 120_000);

  afterAll(async () => {
    for (const { agent } of pinned.values()) agent.destroy();
    // Workers first: a worker left holding the output pipes would keep `exited` waiting.
    for (const pid of workerPids) kill(pid, 'SIGKILL');
    if (server?.running) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    await db?.drop();
    await redis?.cleanup();
  }, 60_000);

  it('is a primary and two workers holding the one listening socket, and both answer', async (ctx) => {
    if (!server) return ctx.skip();
    const up = server.upLines();
    expect(up.map((l) => l.worker).sort()).toEqual([1, 2]);
    expect(new Set(up.map((l) => l.pid)).size).toBe(2);
    const inode = listeningInode(port);
    if (inode) {
      for (const { pid } of up) {
        expect(readProcStat(pid)?.ppid).toBe(server.child.pid);
        // SCHED_NONE: the worker accepts from the socket itself (round-robin would leave it with the primary only).
        expect(holdsSocket(pid, inode)).toBe(true);
      }
    }
    // Fresh connections, a few at a time: the kernel hands them to both workers.
    const seen = new Set<number>();
    const deadline = Date.now() + DEADLINE_MS;
    while (seen.size < 2 && Date.now() < deadline) {
      const burst = await Promise.all(Array.from({ length: 8 }, () => request(port, false, 'GET', '/metrics', admin)));
      for (const answer of burst) seen.add(workerOf(answer));
    }
    expect([...seen].sort()).toEqual([1, 2]);
  }, 120_000);

  it("uses the node's secrets in every worker: a session, a ticket and the admin token from one are good on the other", async (ctx) => {
    if (!server) return ctx.skip();
    // A kept-alive connection stays with the worker that accepted it: one to each.
    const deadline = Date.now() + DEADLINE_MS;
    while (pinned.size < 2 && Date.now() < deadline) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const answer = await request(port, agent, 'GET', '/metrics', admin);
      const worker = workerOf(answer);
      if (pinned.has(worker)) agent.destroy();
      else pinned.set(worker, { agent, localPort: answer.localPort });
    }
    expect([...pinned.keys()].sort()).toEqual([1, 2]);
    const on = async (worker: number, method: string, path: string, headers: Record<string, string> = {}, body?: unknown) => {
      const { agent, localPort } = pinned.get(worker)!;
      const answer = await request(port, agent, method, path, headers, body);
      // Still the same connection, so still that worker.
      expect(answer.localPort).toBe(localPort);
      return { status: answer.status, json: JSON.parse(answer.body) };
    };

    // The admin token: a sale created through worker 1 is read through worker 2 with it.
    const sale = await on(1, 'POST', '/api/admin/flash-sales', admin, saleBody());
    expect(sale.status).toBe(201);
    expect((await on(2, 'GET', `/api/admin/flash-sales/${sale.json.id}`, admin)).status).toBe(200);

    // A guest session from worker 2, a ticket from worker 1: each verifies on both.
    const session = await on(2, 'POST', '/api/session');
    expect(session.status).toBe(201);
    const user = { authorization: `Bearer ${session.json.token}` };
    const entered = await on(1, 'POST', `/api/flash-sales/${sale.json.id}/enter-queue`, user, {});
    expect(entered.status).toBe(200);
    const status = `/api/flash-sales/${sale.json.id}/status?ticket=${encodeURIComponent(entered.json.queue_ticket)}`;
    expect((await on(1, 'GET', status)).status).toBe(200);
    expect((await on(2, 'GET', status)).status).toBe(200);
    // Entering again through the other worker is the same place.
    const again = await on(2, 'POST', `/api/flash-sales/${sale.json.id}/enter-queue`, user, {});
    expect([again.status, again.json.place]).toEqual([200, entered.json.place]);

    // The workers share the ledger: the demo sale was seeded once, not once per worker.
    const sales = (await on(2, 'GET', '/api/flash-sales')).json.sales as Array<{ name: string }>;
    expect(sales.filter((s) => s.name.startsWith('Midnight Drop'))).toHaveLength(1);
  }, 120_000);

  it('replaces a worker killed with SIGKILL, and the port keeps answering meanwhile', async (ctx) => {
    if (!server) return ctx.skip();
    for (const { agent } of pinned.values()) agent.destroy();
    pinned.clear();
    const victim = server.upLines().find((l) => l.worker === 1)!;
    kill(victim.pid, 'SIGKILL');
    await server.until('the killed worker gone', () => !alive(victim.pid));
    // Until the replacement is up, fresh connections find the other worker: none fails.
    const failures: string[] = [];
    const deadline = Date.now() + DEADLINE_MS;
    let line: { worker: number; pid: number } | undefined;
    while (!(line = server.upLines().find((l) => l.worker === 3))) {
      if (!server.running || Date.now() > deadline) throw new Error(`no replacement worker within ${DEADLINE_MS} ms:\n${server.stdout}\n${server.stderr}`);
      const health = await request(port, false, 'GET', '/healthz').catch((err: Error) => ({ status: 0, body: err.message }));
      if (health.status !== 200) failures.push(`${health.status} ${health.body}`);
      await sleep(100);
    }
    workerPids.add(line.pid);
    expect(failures).toEqual([]);
    expect(server.lines().find((l) => l.msg === 'worker died: starting another')).toMatchObject({ worker: 1, pid: victim.pid, signal: 'SIGKILL' });
    // The new worker answers too.
    const seen = new Set<number>();
    const until = Date.now() + DEADLINE_MS;
    while (!seen.has(3) && Date.now() < until) {
      const burst = await Promise.all(Array.from({ length: 8 }, () => request(port, false, 'GET', '/metrics', admin)));
      for (const answer of burst) seen.add(workerOf(answer));
    }
    expect(seen).toContain(3);
    expect(seen).not.toContain(1);
  }, 120_000);

  it('SIGTERM: every worker drains, the primary exits 0, and no worker is left', async (ctx) => {
    if (!server) return ctx.skip();
    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    expect(code).toBe(0);
    const closing = server.lines().filter((l) => l.msg.startsWith('closing: readiness now 503'));
    expect(closing.map((l) => l.worker).sort()).toEqual([2, 3]);
    expect(server.lines().at(-1)).toMatchObject({ role: 'primary', msg: 'every worker has exited', exitCode: 0 });
    // Each worker pid, the killed one included, is gone.
    const deadline = Date.now() + 30_000;
    while ([...workerPids].some(alive) && Date.now() < deadline) await sleep(100);
    expect([...workerPids].filter(alive)).toEqual([]);
  }, 120_000);
});
