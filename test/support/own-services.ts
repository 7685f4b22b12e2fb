/**
 * Dependencies of a test's own, for fault tests: a Redis, a PostgreSQL cluster and a NATS server,
 * each on a free port with its data in a temporary directory, which the test may kill, freeze,
 * stop, restart or empty without touching the shared services everybody else uses (those are
 * never to be stopped or flushed). Each instance is removed — processes killed, directory
 * deleted — by its `stop()`, and anything still running when the process exits is removed then.
 *
 * PostgreSQL refuses to run as root, so its binaries run as the `postgres` user (`runuser`) when
 * this process is root; its directory is handed to that user.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface OwnRedis {
  url: string;
  port: number;
  /** The running server's pid (undefined while it is down). */
  readonly pid: number | undefined;
  /** SIGKILL: the server dies where it stands (with AOF, up to a second of writes is lost). */
  kill9(): Promise<void>;
  /**
   * Starts the server again on the same port and directory: from its AOF (when on), or with its
   * data removed (`empty`). A running server is shut down first (SIGTERM, which flushes the AOF).
   */
  restart(opts?: { empty?: boolean }): Promise<void>;
  /** SIGSTOP: connections stay open and nothing answers. */
  freeze(): void;
  /** SIGCONT. */
  resume(): void;
  /** Kills the server and removes its directory. */
  stop(): Promise<void>;
}

export interface OwnPostgres {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` (trust auth). */
  url: string;
  port: number;
  /** `pg_ctl stop -m fast`: connections are ended, the data stays for `startServer`. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  /** SIGSTOP to the postmaster and every backend: connections stay open and nothing answers. */
  freeze(): void;
  /** SIGCONT to the postmaster and its children. */
  resume(): void;
  /** Stops the server at once and removes the cluster. */
  stop(): Promise<void>;
}

export interface OwnNats {
  url: string;
  port: number;
  /** SIGKILL. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and JetStream store. */
  start(): Promise<void>;
  /** Kills the server and removes its directory. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (free now: it is bound and released at once). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Whether `port` on 127.0.0.1 can be bound now. */
export async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** `count` free ports for Redis Cluster nodes: each one's cluster-bus port (+10000) is free too. */
export async function clusterPorts(count = 3): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await freePort();
    if (port <= 55_535 && !ports.includes(port) && (await portIsFree(port + 10_000))) ports.push(port);
  }
  return ports;
}

// ---- cleanup at exit ----------------------------------------------------------------------

/** Synchronous removers of everything still running, for the process's 'exit' (no awaiting there). */
const leftovers = new Set<() => void>();
let exitHookInstalled = false;

function onExit(remove: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const fn of leftovers) {
        try {
          fn();
        } catch {
          /* best effort: the process is leaving */
        }
      }
    });
  }
  leftovers.add(remove);
  return () => leftovers.delete(remove);
}

function signal(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** A spawned server process: its exit as a promise, and its last output for error messages. */
class ServerProcess {
  readonly exited: Promise<void>;
  private tail = '';

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const keep = (b: Buffer) => (this.tail = (this.tail + b.toString()).slice(-4000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.tail;
  }

  async kill(sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    // A frozen process handles nothing, not even SIGTERM, until it runs again.
    signal(this.child.pid, 'SIGCONT');
    this.child.kill(sig);
    await this.exited;
  }
}

/** Resolves when a TCP server on `port` sends (or answers `probe` with) something starting with `expect`. */
async function answers(port: number, expect: string, probe?: string | Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => probe && socket.write(probe));
    socket.on('data', (b) => {
      got += b.toString();
      if (got.length >= expect.length) done(got.startsWith(expect));
    });
  });
}

async function waitUntil(what: string, ok: () => Promise<boolean>, proc: ServerProcess | null, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && !proc.running) throw new Error(`${what} exited while starting:\n${proc.output()}`);
    if (await ok()) return;
    await sleep(50);
  }
  throw new Error(`${what} did not come up within ${timeoutMs} ms${proc ? `:\n${proc.output()}` : ''}`);
}

// ---- Redis ---------------------------------------------------------------------------------

const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';

/** A Redis of the test's own (AOF off unless `aof`: no RDB snapshots either way). */
export async function startRedis(opts: { aof?: boolean } = {}): Promise<OwnRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'stampede-own-redis-'));
  const port = await freePort();
  let proc: ServerProcess | null = null;

  const launch = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--protected-mode', 'no', '--daemonize', 'no'];
    args.push('--appendonly', opts.aof ? 'yes' : 'no', '--appendfsync', 'everysec', '--loglevel', 'warning');
    const started = new ServerProcess('redis-server', spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    proc = started;
    await waitUntil(`redis-server on ${port}`, () => answers(port, '+PONG', 'PING\r\n'), started);
  };
  const removeAtExit = onExit(() => {
    signal(proc?.child.pid, 'SIGCONT');
    signal(proc?.child.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await launch();

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return proc?.running ? proc.child.pid : undefined;
    },
    async kill9() {
      await proc?.kill('SIGKILL');
    },
    async restart({ empty = false } = {}) {
      await proc?.kill('SIGTERM');
      if (empty) {
        for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
      }
      await launch();
    },
    freeze() {
      signal(proc?.running ? proc.child.pid : undefined, 'SIGSTOP');
    },
    resume() {
      signal(proc?.running ? proc.child.pid : undefined, 'SIGCONT');
    },
    async stop() {
      await proc?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      removeAtExit();
    },
  };
}

// ---- PostgreSQL ----------------------------------------------------------------------------

const PG_BIN = process.env.PG_BIN_DIR ?? (existsSync('/usr/lib/postgresql/15/bin/initdb') ? '/usr/lib/postgresql/15/bin' : '/usr/local/bin');
const asRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL binary (as `postgres` when this process is root); throws with its output on failure. */
function pgRun(bin: string, args: string[]): void {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN, bin), ...args]] : [join(PG_BIN, bin), args];
  const res = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60_000 });
  if (res.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${res.status ?? res.signal}):\n${res.stdout}\n${res.stderr}`);
}

/** The pids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      /* the process ended meanwhile */
    }
  }
  return out;
}

/** A PostgreSQL cluster of the test's own (trust auth, fsync off: speed over durability). */
export async function startPostgres(): Promise<OwnPostgres> {
  const root = mkdtempSync(join(tmpdir(), 'stampede-own-pg-'));
  const data = join(root, 'data');
  const port = await freePort();
  if (asRoot) {
    const { uid, gid } = pgUser();
    chownSync(root, uid, gid);
  }
  pgRun('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions']);

  const postmaster = (): number | undefined => {
    try {
      return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]) || undefined;
    } catch {
      return undefined;
    }
  };
  const everyProcess = () => {
    const pid = postmaster();
    return pid ? [pid, ...childrenOf(pid)] : [];
  };
  const options = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${root}`,
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
    '-c max_connections=100',
  ].join(' ');
  const startServer = async () => {
    pgRun('pg_ctl', ['-D', data, '-l', join(root, 'postgres.log'), '-w', '-t', '60', '-o', options, 'start']);
    await waitUntil(`postgres on ${port}`, () => answers(port, 'N', sslRequest()), null);
  };
  const resume = () => {
    for (const pid of everyProcess()) signal(pid, 'SIGCONT');
  };
  const removeAtExit = onExit(() => {
    resume();
    spawnSync(
      asRoot ? 'runuser' : join(PG_BIN, 'pg_ctl'),
      [...(asRoot ? ['-u', 'postgres', '--', join(PG_BIN, 'pg_ctl')] : []), '-D', data, '-m', 'immediate', 'stop'],
      {
        timeout: 20_000,
        stdio: 'ignore',
      },
    );
    rmSync(root, { recursive: true, force: true });
  });
  await startServer();

  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async stopServer() {
      resume();
      pgRun('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
    },
    startServer,
    freeze() {
      // The postmaster first, so it forks no new backend while the others are being stopped.
      const pid = postmaster();
      if (!pid) return;
      signal(pid, 'SIGSTOP');
      for (const child of childrenOf(pid)) signal(child, 'SIGSTOP');
    },
    resume,
    async stop() {
      resume();
      if (postmaster()) {
        try {
          pgRun('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
        } catch {
          /* not running */
        }
      }
      rmSync(root, { recursive: true, force: true });
      removeAtExit();
    },
  };
}

/** The `postgres` user's ids (PostgreSQL will not run as root). */
function pgUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('no postgres user to run PostgreSQL as (it refuses to run as root)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** A PostgreSQL SSLRequest packet: a server that is up answers 'N' (or 'S') at once, before any login. */
function sslRequest(): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeInt32BE(8, 0);
  buf.writeInt32BE(80877103, 4);
  return buf;
}

// ---- NATS ----------------------------------------------------------------------------------

const NATS_SERVER = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

/** A NATS server with JetStream of the test's own. */
export async function startNats(): Promise<OwnNats> {
  const dir = mkdtempSync(join(tmpdir(), 'stampede-own-nats-'));
  const port = await freePort();
  let proc: ServerProcess | null = null;

  const start = async () => {
    if (proc?.running) return;
    const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, 'jetstream')];
    const started = new ServerProcess('nats-server', spawn(NATS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    proc = started;
    await waitUntil(`nats-server on ${port}`, () => answers(port, 'INFO'), started);
  };
  const removeAtExit = onExit(() => {
    signal(proc?.child.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await start();

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async kill() {
      await proc?.kill('SIGKILL');
    },
    start,
    async stop() {
      await proc?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      removeAtExit();
    },
  };
}
