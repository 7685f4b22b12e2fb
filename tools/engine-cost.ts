/**
 * `npx tsx tools/engine-cost.ts [--redis-cluster H:P,...] [--requests N]`: what each kind of
 * request costs the engine's Redis — the figures the capacity model (docs/capacity.md) is built on.
 * Also `--concurrency 20` (in flight), `--idle 10s`, `--trace 20` (0: no MONITOR), `--database-url`
 * (a server to create the throwaway database on), `--queue-shards N` (the main sale's queue lanes:
 * its entries then land on N slots, one per master, counted as "spread") and `--out reports`.
 *
 * One Stampede node (the compiled build, in production mode) runs on a Redis Cluster and a
 * throwaway PostgreSQL database, with one sale. One phase per kind of request, each N requests
 * from fresh users, a few in flight: enter-queue, status poll, pre-authorisation, purchase with
 * stock, purchase once sold out, purchase with a ticket still waiting (a second sale that admits
 * one a second) — and the engine call every node makes ten times a second per sale (the
 * snapshot), made directly. Around each phase every master's `INFO cpu commandstats` is read,
 * so a phase's cost is the difference: commands (by name), the time Redis spent in them, and the
 * CPU its main thread used (commands plus parsing, replies and networking: the figure that runs
 * out when a shard is full). The node also idles with the sale open: its background (the live
 * picture, leases, sweeps), whose rate times each phase's length is taken off the phase, so what
 * is left is the requests' own.
 *
 * Why Redis's figures rather than the node's: the node's CPU scales out (add nodes), one sale's
 * Redis work does not — its keys share one hash slot, so one shard. That is why each cost is
 * also split by where it lands: the sale's slot, the payment pacing bucket's slot (one key for
 * the deployment), or spread over every master. And why a short MONITOR trace after each phase:
 * `commandstats` counts the commands a script runs inside it as well (an EVALSHA touching three
 * hashes is four calls), and only MONITOR tells which calls a request made itself and which
 * script they were. MONITOR slows Redis, so it is never on while a phase is measured.
 *
 * The cluster is shared: the tool uses a key prefix of its own and deletes its keys afterwards,
 * never flushes or resets anything, and reads the cluster's load before starting the node, so a
 * run polluted by someone else's traffic says so.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { SignJWT } from 'jose';
import { Agent, request } from 'undici';
import { Cluster, Redis } from 'ioredis';
import { RedisEngine, createRedis, deleteKeys, untilReady } from '../src/engine/redis/redis-engine.js';
import { parseInfo, type MasterStats } from './deploy/shard-load.js';
import { loadScripts, luaRefusals } from '../src/engine/redis/script-loader.js';
import { Refusal } from '../src/engine/engine-refusals.js';
import { Args, UsageError } from './args.js';
import { ServerNode } from './chaos/nodes.js';

const DEFAULT_CLUSTER = '127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103';
const DEFAULT_DATABASE = 'postgres://postgres@127.0.0.1:5432/postgres';
/** Script commands: their time includes the commands they run (which commandstats also counts on their own). */
const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);
/** Our own reads of the stats: never part of what is measured. */
const OURS = new Set(['info']);
/** The node's async work after a phase's last answer (a picture refreshed, an admission step) lands before the "after" read. */
const SETTLE_MS = 300;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const wallSec = () => (performance.timeOrigin + performance.now()) / 1000;

// ---------------------------------------------------------------------------------------------
// Reading the masters

/** What a stretch of time cost the cluster (deltas; everything but our own INFO reads). */
interface Cost {
  seconds: number;
  calls: Record<string, number>;
  usec: Record<string, number>;
  failed: number;
  cpuUs: number;
  /** `scriptUs`: the time inside scripts only (no double count), the part that no batching of replies can save. */
  perMaster: Array<{ addr: string; calls: number; usec: number; scriptUs: number; cpuUs: number }>;
}

async function readStats(masters: Redis[]): Promise<{ at: number; masters: MasterStats[] }> {
  const read = await Promise.all(
    masters.map(async (m) => parseInfo(`${m.options.host}:${m.options.port}`, String(await m.call('info', 'cpu', 'commandstats')))),
  );
  return { at: wallSec(), masters: read };
}

function costBetween(before: Awaited<ReturnType<typeof readStats>>, after: Awaited<ReturnType<typeof readStats>>): Cost {
  const cost: Cost = { seconds: after.at - before.at, calls: {}, usec: {}, failed: 0, cpuUs: 0, perMaster: [] };
  after.masters.forEach((a, i) => {
    const b = before.masters[i];
    const master = { addr: a.addr, calls: 0, usec: 0, scriptUs: 0, cpuUs: a.cpuUs - b.cpuUs };
    for (const [name, calls] of a.calls) {
      if (OURS.has(name)) continue;
      const dc = calls - (b.calls.get(name) ?? 0);
      const du = (a.usec.get(name) ?? 0) - (b.usec.get(name) ?? 0);
      if (dc === 0 && du === 0) continue;
      cost.calls[name] = (cost.calls[name] ?? 0) + dc;
      cost.usec[name] = (cost.usec[name] ?? 0) + du;
      master.calls += dc;
      master.usec += du;
      if (SCRIPT_COMMANDS.has(name)) master.scriptUs += du;
    }
    cost.failed += a.failed - b.failed;
    cost.cpuUs += master.cpuUs;
    cost.perMaster.push(master);
  });
  return cost;
}

/** `cost` less `rate` (a cost per second) over `cost.seconds`. */
function minusBackground(cost: Cost, rate: Cost): Cost {
  const s = cost.seconds;
  const names = new Set([...Object.keys(cost.calls), ...Object.keys(rate.calls)]);
  const out: Cost = { seconds: s, calls: {}, usec: {}, failed: cost.failed, cpuUs: cost.cpuUs - rate.cpuUs * s, perMaster: [] };
  for (const n of names) {
    out.calls[n] = (cost.calls[n] ?? 0) - (rate.calls[n] ?? 0) * s;
    out.usec[n] = (cost.usec[n] ?? 0) - (rate.usec[n] ?? 0) * s;
  }
  out.perMaster = cost.perMaster.map((m, i) => ({
    addr: m.addr,
    calls: m.calls - rate.perMaster[i].calls * s,
    usec: m.usec - rate.perMaster[i].usec * s,
    scriptUs: m.scriptUs - rate.perMaster[i].scriptUs * s,
    cpuUs: m.cpuUs - rate.perMaster[i].cpuUs * s,
  }));
  return out;
}

/** A cost divided by `n` (per request), or by its seconds (per second). */
function per(cost: Cost, n: number): Cost {
  const div = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v / n]));
  return {
    seconds: cost.seconds,
    calls: div(cost.calls),
    usec: div(cost.usec),
    failed: cost.failed / n,
    cpuUs: cost.cpuUs / n,
    perMaster: cost.perMaster.map((m) => ({ addr: m.addr, calls: m.calls / n, usec: m.usec / n, scriptUs: m.scriptUs / n, cpuUs: m.cpuUs / n })),
  };
}

const sum = (r: Record<string, number>, keep: (name: string) => boolean = () => true) => Object.entries(r).reduce((t, [k, v]) => (keep(k) ? t + v : t), 0);

/** The master serving `key`'s slot (`host:port`, as the masters are named here). */
async function masterOf(masters: Redis[], key: string): Promise<string> {
  const slot = Number(await masters[0].call('cluster', 'keyslot', key));
  const ranges = (await masters[0].call('cluster', 'slots')) as Array<[number, number, [string, number]]>;
  const range = ranges.find(([from, to]) => slot >= from && slot <= to);
  return range ? `${range[2][0]}:${range[2][1]}` : '?';
}

/**
 * Where a cost lands. A sale's keys share one slot, and the payment pacing bucket is one key for
 * the whole deployment; everything else (rate-limit counters, the sandbox's payment records) is
 * keyed by user or payment and spreads over every master. So a master holding neither pinned key
 * shows what each master gets of the spread work, and the pinned work is what its master has
 * beyond that. With more shards the spread part thins out; the pinned parts stay where they are.
 */
interface Split {
  /** On the sale's slot: the requests' engine scripts. */
  sale: number;
  /** On the pacing key's slot (null when it shares the sale's master: then it is in `sale`). */
  pacing: number | null;
  /** Over all masters together. */
  spread: number;
}

function splitOf(cost: Cost, saleMaster: string, pacingMaster: string, of: 'cpuUs' | 'scriptUs' = 'cpuUs'): Split {
  const at = (addr: string) => cost.perMaster.find((m) => m.addr === addr)?.[of] ?? NaN;
  const others = cost.perMaster.filter((m) => m.addr !== saleMaster && m.addr !== pacingMaster);
  const perOther = others.length ? others.reduce((t, m) => t + m[of], 0) / others.length : NaN;
  return {
    sale: at(saleMaster) - perOther,
    pacing: pacingMaster === saleMaster ? null : at(pacingMaster) - perOther,
    spread: perOther * cost.perMaster.length,
  };
}

// ---------------------------------------------------------------------------------------------
// MONITOR: which calls a request makes itself, and which script each is

/** EVALSHA's sha → the script's name, for the node's own scripts (loaded exactly as the node loads them). */
function scriptNames(): Map<string, string> {
  const names = new Map<string, string>();
  const dirs: Array<[string, string, Record<string, string>]> = [
    ['engine', '../src/engine/redis/lua/', { 'includes/refusals': luaRefusals(Refusal) }],
    ['pacing', '../src/engine/redis/lua/pacing/', {}],
    // The sandbox book's one refusal code (redis-sandbox-book.ts); a mismatch only costs a name.
    ['sandbox', '../src/engine/redis/lua/sandbox/', { 'includes/refusals': luaRefusals({ OVER_CAPTURE: -1 }) }],
  ];
  for (const [group, path, generated] of dirs) {
    const dir = new URL(path, import.meta.url);
    const table: Record<string, number> = {};
    for (const f of readdirSync(dir)) {
      const m = /^([a-z][A-Za-z0-9]*)-(\d+)\.lua$/.exec(f);
      if (m) table[m[1]] = Number(m[2]);
    }
    try {
      for (const s of loadScripts(dir, table, generated).values()) names.set(createHash('sha1').update(s.lua).digest('hex'), `${group}.${s.name}`);
    } catch {
      /* a layout this tool does not know: calls are then named by their keys */
    }
  }
  return names;
}

interface Line {
  t: number;
  args: string[];
  inner: boolean;
}

/** A MONITOR line's arguments: quoted, with C-style escapes (`\"`, `\\`, `\n`, `\xHH`). */
function monitorArgs(text: string): string[] {
  const args: string[] = [];
  for (const m of text.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    args.push(
      m[1].replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_e, c: string) =>
        c.length === 3
          ? String.fromCharCode(parseInt(c.slice(1), 16))
          : (({ n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' } as Record<string, string>)[c] ?? c),
      ),
    );
  }
  return args;
}

/**
 * MONITOR on every master, over plain sockets (a MONITOR connection is a one-way stream of
 * lines; a client library's command queue only gets in the way), keeping the lines that name a
 * key under our prefix.
 */
class Tracer {
  private readonly sockets: Socket[] = [];
  private lines: Line[] = [];
  /** Redis's clock minus ours (s): MONITOR stamps lines with Redis's, our windows use performance.now(), which drifts from the wall clock. */
  private offset = 0;

  private constructor(private readonly prefix: string) {}

  static async open(masters: Redis[], prefix: string): Promise<Tracer> {
    const tracer = new Tracer(prefix);
    await Promise.all(
      masters.map(
        (m) =>
          new Promise<void>((resolve, reject) => {
            if (m.options.tls) throw new Error('tracing (MONITOR) a TLS cluster is not supported: run with --trace 0');
            // With credentials (as REDIS_CLUSTER_NODES may carry): AUTH first, then MONITOR; each answers +OK.
            const { username, password } = m.options;
            const auth = password ? `AUTH ${username ? `${username} ` : ''}${password}\r\n` : '';
            let oks = auth ? 2 : 1;
            const socket = connect({ host: m.options.host, port: m.options.port ?? 6379 }, () => socket.write(`${auth}MONITOR\r\n`));
            tracer.sockets.push(socket);
            let buffered = '';
            socket.setEncoding('utf8');
            socket.once('error', reject);
            socket.on('data', (chunk: string) => {
              buffered += chunk;
              let end;
              while ((end = buffered.indexOf('\r\n')) >= 0) {
                const line = buffered.slice(0, end);
                buffered = buffered.slice(end + 2);
                if (line === '+OK') {
                  if (--oks === 0) resolve();
                } else if (line.startsWith('-')) reject(new Error(`MONITOR on ${m.options.host}:${m.options.port}: ${line}`));
                else if (line.startsWith('+') && line.includes(tracer.prefix)) tracer.take1(line);
              }
            });
          }),
      ),
    );
    // The round trip with the shortest wait pins the offset best.
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const t0 = wallSec();
      const [sec, usec] = await masters[0].time();
      const t1 = wallSec();
      if (t1 - t0 < best) {
        best = t1 - t0;
        tracer.offset = Number(sec) + Number(usec) / 1e6 - (t0 + t1) / 2;
      }
    }
    return tracer;
  }

  /** `+<time> [<db> <client address>|lua] "<command>" "<arg>" ...` */
  private take1(line: string): void {
    const m = /^\+(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$/.exec(line);
    if (m) this.lines.push({ t: Number(m[1]) - this.offset, args: monitorArgs(m[3]), inner: m[2] === 'lua' });
  }

  /** Everything seen since the last take. */
  take(): Line[] {
    const out = this.lines;
    this.lines = [];
    return out;
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
  }
}

/** MONITOR on every master for the length of `fn` only: it slows Redis, so it is never on while a phase is measured. */
async function traced<T>(masters: Redis[], prefix: string, fn: (tracer: Tracer) => Promise<T>): Promise<T> {
  const tracer = await Tracer.open(masters, prefix);
  try {
    await sleep(100);
    return await fn(tracer);
  } finally {
    tracer.close();
  }
}

/** A key without its prefix and ids: `{sale}:meta`, `rl:shared:enter:*`, `sandbox:key:*`. */
function keyShape(key: string, prefix: string): string {
  const rest = key.startsWith(`${prefix}:`) ? key.slice(prefix.length + 1) : key;
  return rest
    .replace(/\{sale:[^}]+\}/, '{sale}')
    .split(':')
    .map((seg, i) => (i > 0 && (/\d/.test(seg) && seg.length > 8 ? true : /^\{.+\}$/.test(seg) && seg !== '{sale}') ? '*' : seg))
    .join(':');
}

function labelOf(line: Line, shas: Map<string, string>, prefix: string): string {
  const [cmd0, ...rest] = line.args;
  const cmd = cmd0.toLowerCase();
  const firstKey = () => rest.find((a) => a.includes(prefix)) ?? '';
  if (cmd === 'evalsha' || cmd === 'evalsha_ro') {
    const shape = keyShape(firstKey(), prefix);
    // rate-limiter-flexible's own script (its text is not ours to hash).
    return shas.get(rest[0]) ?? (shape.startsWith('rl:') ? `rate-limit ${shape}` : `script ${rest[0].slice(0, 8)} on ${shape}`);
  }
  if (cmd === 'eval' || cmd === 'eval_ro') {
    const known = shas.get(createHash('sha1').update(rest[0]).digest('hex'));
    return known ? `${known} (EVAL)` : `eval on ${keyShape(firstKey(), prefix)}`;
  }
  return `${cmd} ${keyShape(firstKey(), prefix)}`;
}

interface Trace {
  requests: number;
  /** Every call within a request's round trip (inner ones too), less the background rate over it: what commandstats should count. */
  calls: number;
  /** Calls a request made itself (top level), per request, by label. */
  topLevel: Record<string, number>;
  /** Every top-level call seen within the requests' windows, per request (background coincidences included). */
  inWindows: Record<string, number>;
  /** Commands run inside those scripts, per request, by command name. */
  inner: Record<string, number>;
  /** Per command name over the whole trace (background included): the share of calls made at top level, not from inside a script. */
  topShare: Record<string, number>;
  /** Top-level calls outside every request's window, per second: the background the windows are not charged with. */
  backgroundPerSec: Record<string, number>;
}

/**
 * Sends `items` one at a time and charges each request with the calls whose server time falls
 * within its round trip — less the background rate (measured in the gaps) over those windows.
 */
async function traceRequests(
  tracer: Tracer,
  shas: Map<string, string>,
  prefix: string,
  items: Item[],
  send: (it: Item) => Promise<number>,
  /** The idle node's calls per second by label (a trace of it before the phases). */
  knownBackground: Record<string, number>,
): Promise<Trace> {
  tracer.take();
  const n = items.length;
  const windows: Array<[number, number]> = [];
  const start = wallSec();
  for (const it of items) {
    const t0 = wallSec();
    await send(it);
    windows.push([t0 - 0.0005, wallSec() + 0.0005]);
    await sleep(5);
  }
  await sleep(200);
  const end = wallSec();
  const lines = tracer.take().filter((l) => l.t >= start && l.t <= end);
  const inWindow = (t: number) => windows.some(([a, b]) => t >= a && t <= b);
  const windowSec = windows.reduce((s, [a, b]) => s + b - a, 0);
  const gapSec = Math.max(0.001, end - start - windowSec);
  const topLevel: Record<string, number> = {};
  const background: Record<string, number> = {};
  const inner: Record<string, number> = {};
  const seen: Record<string, { top: number; all: number }> = {};
  let within = 0;
  for (const l of lines) {
    const cmd = l.args[0].toLowerCase();
    seen[cmd] ??= { top: 0, all: 0 };
    seen[cmd].all += 1;
    if (!l.inner) seen[cmd].top += 1;
    const inside = inWindow(l.t);
    if (inside) within += 1;
    if (l.inner) {
      if (inside) inner[cmd] = (inner[cmd] ?? 0) + 1;
      continue;
    }
    const label = labelOf(l, shas, prefix);
    if (inside) topLevel[label] = (topLevel[label] ?? 0) + 1;
    else background[label] = (background[label] ?? 0) + 1;
  }
  const backgroundPerSec = Object.fromEntries(Object.entries(background).map(([k, v]) => [k, v / gapSec]));
  const inWindows = Object.fromEntries(Object.entries(topLevel).map(([k, v]) => [k, v / n]));
  // A call the idle node also makes (a picture read, a lease) is charged to the requests only for
  // what exceeds its background rate over their windows, and only when that is a clear share of
  // them (a quarter): over a few dozen short windows, a coincidence is worth ±0.1 a request. Any
  // other call counts from two sightings in twenty (one may be a rarer background call).
  const own: Record<string, number> = {};
  // Every call, inner ones too, less what the gaps between requests ran at the same rate.
  const calls = (within - ((lines.length - within) / gapSec) * windowSec) / n;
  for (const [k, v] of Object.entries(topLevel)) {
    const isBackground = k in backgroundPerSec || k in knownBackground;
    const net = (v - (backgroundPerSec[k] ?? knownBackground[k] ?? 0) * windowSec) / n;
    if (net >= (isBackground ? 0.25 : 0.1)) own[k] = net;
  }
  return {
    requests: n,
    calls,
    topLevel: own,
    inWindows,
    inner: Object.fromEntries(Object.entries(inner).map(([k, v]) => [k, v / n])),
    topShare: Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, v.top / v.all])),
    backgroundPerSec,
  };
}

// ---------------------------------------------------------------------------------------------
// The load

interface Item {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

interface Phase {
  name: string;
  expect: number;
  items: Item[];
  traced: Item[];
  /** Instead of sending the item: one engine call of the node's own (answered 0 when it succeeds). */
  direct?: () => Promise<unknown>;
}

async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

interface Options {
  clusterNodes: string[];
  databaseUrl: string;
  requests: number;
  concurrency: number;
  idleMs: number;
  trace: number;
  queueShards: number;
  out: string;
}

interface PhaseResult {
  name: string;
  requests: number;
  seconds: number;
  reqPerSec: number;
  answers: Record<string, number>;
  raw: Cost;
  /** Per request, the node's background (idle rate × the phase's length) taken off. */
  perRequest: Cost;
  /** Per request: script time plus top-level non-script time (commandstats' usec, inner commands not counted twice). */
  commandUs: number;
  trace: Trace | null;
  /** The idle measurement taken off: the node with the one sale, or with a second (waiting) sale beside it. */
  background: 'idle' | 'idle, two sales';
  /** The master of the sale this phase asks about. */
  saleMaster: string;
  /** Redis CPU per request by where it lands (see Split). */
  split: Split | null;
  /** The same for the time inside scripts (commandstats usec of EVALSHA/EVAL). */
  scriptSplit: Split | null;
}

export async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    const a = new Args(argv);
    opts = {
      clusterNodes: a.string('redis-cluster', DEFAULT_CLUSTER).split(',').filter(Boolean),
      databaseUrl: a.string('database-url', DEFAULT_DATABASE),
      requests: a.count('requests', 2000, 10),
      concurrency: a.count('concurrency', 20, 1),
      idleMs: a.duration('idle', 10_000),
      trace: a.count('trace', 20, 0),
      queueShards: a.count('queue-shards', 1, 1),
      out: a.string('out', 'reports'),
    };
    a.rejectUnknown();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`engine-cost: ${err.message}\n`);
      return 64;
    }
    throw err;
  }
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const hex = randomBytes(4).toString('hex');
  const prefix = `stampede-cost-${hex}`;
  const dbName = `stampede_cost_${hex}`;
  const adminToken = `cost-admin-${randomBytes(16).toString('hex')}`;
  const userSecret = randomBytes(24).toString('hex');
  const dbUrl = new URL(opts.databaseUrl);
  dbUrl.pathname = `/${dbName}`;

  const cluster = createRedis({ clusterNodes: opts.clusterNodes }) as Cluster;
  let node: ServerNode | null = null;
  let dbCreated = false;

  // One teardown, whether the run ends, fails or is interrupted: the node, our keys, our database.
  let cleaning: Promise<void> | null = null;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await node?.close().catch((err: unknown) => log(`stopping the node: ${(err as Error).message}`));
      if (cluster.status === 'ready') {
        await deleteKeys(cluster, `${prefix}*`, `dev:${prefix}*`).catch((err: unknown) => log(`deleting keys under ${prefix}: ${(err as Error).message}`));
        let left = 0;
        for (const m of cluster.nodes('master')) {
          let cursor = '0';
          do {
            const [next, keys] = await m.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
            left += keys.length;
            cursor = next;
          } while (cursor !== '0');
        }
        if (left) log(`!!! ${left} keys under ${prefix} are still there`);
      }
      cluster.disconnect();
      if (dbCreated) {
        const admin = new pg.Client({ connectionString: opts.databaseUrl });
        await admin.connect();
        await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).finally(() => admin.end());
      }
    })());
  const onSignal = () => {
    log('interrupted: cleaning up');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    await untilReady(cluster);
    const masters = cluster.nodes('master');
    const redisVersion = /redis_version:(\S+)/.exec(String(await masters[0].call('info', 'server')))?.[1] ?? '?';

    // The cluster before the node exists: anyone else's traffic shows here (and in every phase).
    log(
      `cluster ${masters.map((m) => `${m.options.host}:${m.options.port}`).join(', ')} (Redis ${redisVersion}): its load without us, ${opts.idleMs / 1000} s`,
    );
    // As long as the idle node is watched: the node's background is the difference of the two,
    // and each master's own load (cron, cluster bus) wanders by a few ms a second on this machine.
    const f0 = await readStats(masters);
    await sleep(opts.idleMs);
    const floorCost = costBetween(f0, await readStats(masters));
    const floor = per(floorCost, floorCost.seconds);
    floor.seconds = 1;

    const admin = new pg.Client({ connectionString: opts.databaseUrl, connectionTimeoutMillis: 3000 });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`).finally(() => admin.end());
    dbCreated = true;

    node = await ServerNode.create(
      'engine-cost',
      {
        NODE_ENV: 'production',
        STAMPEDE_DEMO: '0',
        STAMPEDE_ADMIN_TOKEN: adminToken,
        STAMPEDE_USER_JWT_SECRET: userSecret,
        STAMPEDE_TICKET_SECRET: randomBytes(24).toString('hex'),
        REDIS_CLUSTER_NODES: opts.clusterNodes.join(','),
        STAMPEDE_REDIS_PREFIX: prefix,
        DATABASE_URL: dbUrl.toString(),
        // All load comes from 127.0.0.1: the per-address limit would refuse it (per-user limits stay on).
        STAMPEDE_IP_RATE_LIMIT: '0',
        STAMPEDE_SANDBOX_LATENCY_MS: '0',
        LOG_LEVEL: 'warn',
      },
      null,
    );
    log(`starting a node (production build) on ${node.port}, prefix ${prefix}, database ${dbName}`);
    await node.start();
    const base = node.url;
    const agent = new Agent({ connections: opts.concurrency, keepAliveTimeout: 30_000 });
    const call = async (it: Item) => {
      const res = await request(base + it.path, { method: it.method, headers: it.headers, body: it.body, dispatcher: agent });
      const text = await res.body.text();
      return { status: res.statusCode, text };
    };
    const json = (it: Item) => call(it).then((r) => ({ ...r, json: r.text ? (JSON.parse(r.text) as Record<string, any>) : {} }));

    // A sale that opens now with nothing in the way: no proof-of-work, admission far above the
    // load, and exactly as many units as the purchases we make, so the next purchase is sold out.
    const n = opts.requests;
    const t = opts.trace;
    const created = await json({
      method: 'POST',
      path: '/api/admin/flash-sales',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: `engine cost ${hex}`,
        starts_at: new Date(Date.now() - 1000).toISOString(),
        duration_sec: 3600,
        items: [{ sku: 'unit', name: 'Unit', price_cents: 10_000, currency: 'EUR', quantity: n + t, per_user_limit: 1 }],
        queue: { mode: 'fifo', admission_rate_per_sec: 100_000, admitted_ttl_sec: 3600, max_active: 10_000_000, shards: opts.queueShards },
        reservation_ttl_sec: 600,
        bot_protection: { pow_difficulty: 0 },
      }),
    });
    if (created.status !== 201) throw new Error(`creating the sale failed: ${created.status} ${created.text}`);
    const saleId = String(created.json.id);
    const salePath = `/api/flash-sales/${saleId}`;
    let saleMaster = await masterOf(masters, `${prefix}:{sale:${saleId}}:meta`);
    // The sandbox's shared pacing bucket (runtime.ts: `<prefix>:pace:<gateway>:shared`).
    const pacingKey = `${prefix}:pace:sandbox:shared`;
    const pacingMaster = await masterOf(masters, pacingKey);
    log(`  the sale's keys are on ${saleMaster}, the pacing bucket on ${pacingMaster}`);

    // Fresh users, as the shop's login would issue them: buyers (A) and, after the sell-out, losers (B).
    const secret = new TextEncoder().encode(userSecret);
    const token = (sub: string) => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('2h').sign(secret);
    const users = async (group: string, count = n + t) =>
      Promise.all(Array.from({ length: count }, async (_, i) => ({ authorization: `Bearer ${await token(`cost-${hex}-${group}${i}`)}` })));
    const [buyers, losers] = [await users('a'), await users('b')];
    const enterItem = (headers: Record<string, string>): Item => ({
      method: 'POST',
      path: `${salePath}/enter-queue`,
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ fingerprint: randomBytes(8).toString('hex') }),
    });

    const shas = scriptNames();
    // Let the node's first picture of the sale settle before anything is measured; meanwhile
    // learn which calls the idle node makes, so a trace does not charge them to a request.
    await sleep(500);
    const knownBackground = t > 0 ? (await traced(masters, prefix, (tracer) => traceIdle(tracer, shas, prefix))).topLevel : {};

    const results: PhaseResult[] = [];
    const tickets: { a: string[]; b: string[] } = { a: [], b: [] };
    const run = async (phase: Phase): Promise<PhaseResult> => {
      const answers: Record<string, number> = {};
      const samples: string[] = [];
      const send = async (it: Item) => {
        const r = phase.direct ? await phase.direct().then(() => ({ status: 0, text: '' })) : await call(it);
        answers[r.status] = (answers[r.status] ?? 0) + 1;
        if (r.status !== phase.expect && samples.length < 3) samples.push(`${r.status} ${r.text.slice(0, 200)}`);
        return r.status;
      };
      const before = await readStats(masters);
      await pool(phase.items.length, opts.concurrency, (i) => send(phase.items[i]).then(() => undefined));
      const lastAnswer = wallSec();
      await sleep(SETTLE_MS);
      const raw = costBetween(before, await readStats(masters));
      const trace = phase.traced.length
        ? await traced(masters, prefix, (tracer) => traceRequests(tracer, shas, prefix, phase.traced, send, knownBackground))
        : null;
      const wrong = Object.entries(answers).reduce((s, [code, k]) => (Number(code) === phase.expect ? s : s + k), 0);
      if (wrong > phase.items.length * 0.01) throw new Error(`${phase.name}: ${wrong} answers were not ${phase.expect}: ${samples.join(' | ')}`);
      if (wrong) log(`  ${phase.name}: ${wrong} answers were not ${phase.expect} (${samples.join(' | ')})`);
      const result: PhaseResult = {
        name: phase.name,
        requests: phase.items.length,
        seconds: raw.seconds,
        reqPerSec: phase.items.length / (lastAnswer - before.at),
        answers,
        raw,
        perRequest: raw,
        commandUs: 0,
        trace,
        background: 'idle',
        saleMaster,
        split: null,
        scriptSplit: null,
      };
      log(
        `  ${phase.name}: ${phase.items.length} requests in ${(lastAnswer - before.at).toFixed(2)} s, ${sum(raw.calls)} calls, ${(raw.cpuUs / 1000).toFixed(1)} ms Redis CPU`,
      );
      return result;
    };

    log(`phases: ${n} requests each, ${opts.concurrency} in flight${t ? `, then ${t} one at a time under MONITOR` : ''}`);
    // (a) Enter: fresh users (the buyers-to-be), each once.
    const enterA = buyers.map(enterItem);
    results.push(await run({ name: 'enter-queue', expect: 200, items: enterA.slice(0, n), traced: enterA.slice(n) }));
    // The buyers' tickets: entering again returns the same ticket (and costs an entry, unmeasured here).
    const entered = async (items: Item[]) => {
      const out = new Array<string>(items.length);
      await pool(items.length, opts.concurrency, async (i) => {
        const r = await json(items[i]);
        if (r.status !== 200) throw new Error(`enter-queue failed: ${r.status} ${r.text}`);
        out[i] = String(r.json.queue_ticket);
      });
      return out;
    };
    tickets.a = await entered(enterA);
    tickets.b = await entered(losers.map(enterItem));

    // (b) Status polls: each ticket once (a poll is answered from the node's picture of the sale).
    const statusItems = tickets.a.map((tk): Item => ({ method: 'GET', path: `${salePath}/status?ticket=${encodeURIComponent(tk)}`, headers: {} }));
    results.push(await run({ name: 'status', expect: 200, items: statusItems.slice(0, n), traced: statusItems.slice(n) }));

    // Everyone admitted (admission runs every 100 ms) before anyone buys.
    const last = [tickets.a.at(-1)!, tickets.b.at(-1)!];
    for (let i = 0; ; i++) {
      const states = await Promise.all(last.map((tk) => json({ method: 'GET', path: `${salePath}/status?ticket=${encodeURIComponent(tk)}`, headers: {} })));
      if (states.every((s) => s.json.status === 'admitted')) break;
      if (i > 100) throw new Error(`not admitted after 10 s: ${states.map((s) => s.text).join(' | ')}`);
      await sleep(100);
    }

    // (e) Idle: the node with the sale open and everybody admitted, doing nothing.
    log(`  idle: ${opts.idleMs / 1000} s`);
    const i0 = await readStats(masters);
    await sleep(opts.idleMs);
    const idleCost = costBetween(i0, await readStats(masters));
    const idleTrace = t > 0 ? await traced(masters, prefix, (tracer) => traceIdle(tracer, shas, prefix)) : null;

    // Pre-authorisation: what every hopeful buyer does while waiting (a card hold of the price).
    const preAuth = buyers.map((h, i): Item => ({
      method: 'POST',
      path: `${salePath}/pre-auth`,
      headers: { ...h, 'content-type': 'application/json' },
      body: JSON.stringify({ ticket: tickets.a[i], payment_token: 'tok_visa' }),
    }));
    results.push(await run({ name: 'pre-auth', expect: 200, items: preAuth.slice(0, n), traced: preAuth.slice(n) }));

    // (c) Purchase with stock: each pre-authorised buyer once; the authorisation is captured.
    const purchase = (h: Record<string, string>, tk: string): Item => ({
      method: 'POST',
      path: `${salePath}/purchase`,
      headers: { ...h, 'content-type': 'application/json', 'idempotency-key': randomBytes(12).toString('hex') },
      body: JSON.stringify({ ticket: tk, sku: 'unit', quantity: 1, payment_token: 'tok_visa' }),
    });
    const buys = buyers.map((h, i) => purchase(h, tickets.a[i]));
    results.push(await run({ name: 'purchase, with stock', expect: 201, items: buys.slice(0, n), traced: buys.slice(n) }));

    // Sold out now; wait until the node's picture says so (the next poll of the engine).
    for (let i = 0; ; i++) {
      const s = await json({ method: 'GET', path: `${salePath}/status?ticket=${encodeURIComponent(tickets.b[0])}`, headers: {} });
      if (s.json.status === 'sold_out') break;
      if (i > 50) throw new Error(`the node does not see the sale sold out: ${s.text}`);
      await sleep(100);
    }

    // (d) Purchase once sold out: users who never bought (the 99 % of a drop's purchase attempts).
    const gone = losers.map((h, i) => purchase(h, tickets.b[i]));
    results.push(await run({ name: 'purchase, sold out', expect: 409, items: gone.slice(0, n), traced: gone.slice(n) }));

    // (f) The picture every node process reads of every running sale ten times a second
    // (sale-monitor.ts), called as a fleet of nodes would: its cost on a busy shard. The idle
    // node's figure (one call every 100 ms) also pays for waking Redis up for each call.
    const engine = new RedisEngine(cluster, { prefix });
    const picture = await engine.snapshot(saleId, 0, 0);
    const readPicture = () => engine.snapshot(saleId, picture.buyersNext, picture.advances.at(-1)?.[0] ?? 0);
    const reads = Array.from({ length: n }, (): Item => ({ method: 'GET', path: '', headers: {} }));
    results.push(await run({ name: 'sale snapshot (per node, 10/s)', expect: 0, items: reads, traced: [], direct: readPicture }));

    // (g) Purchase with a ticket still waiting — what a bot hammering checkout before its turn
    // costs. A second sale admits one shopper a second; fresh users enter it, then try to buy.
    const waitingSale = await json({
      method: 'POST',
      path: '/api/admin/flash-sales',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: `engine cost ${hex} waiting`,
        starts_at: new Date(Date.now() - 1000).toISOString(),
        duration_sec: 3600,
        items: [{ sku: 'unit', name: 'Unit', price_cents: 10_000, currency: 'EUR', quantity: 1, per_user_limit: 1 }],
        queue: { mode: 'fifo', admission_rate_per_sec: 1, admitted_ttl_sec: 3600, max_active: 1 },
        reservation_ttl_sec: 600,
        bot_protection: { pow_difficulty: 0 },
      }),
    });
    if (waitingSale.status !== 201) throw new Error(`creating the second sale failed: ${waitingSale.status} ${waitingSale.text}`);
    const waitPath = `/api/flash-sales/${String(waitingSale.json.id)}`;
    saleMaster = await masterOf(masters, `${prefix}:{sale:${String(waitingSale.json.id)}}:meta`);
    log(`  the second sale's keys are on ${saleMaster}`);
    const waiters = await users('c', 5 + t + n);
    const waitTickets = await entered(waiters.map((h) => ({ ...enterItem(h), path: `${waitPath}/enter-queue` })));
    // This phase's background is the node with both sales open (the second one's admission step
    // runs every 100 ms while people wait): measured now, for half the first idle's length.
    const w0 = await readStats(masters);
    await sleep(opts.idleMs / 2);
    const idle2Cost = costBetween(w0, await readStats(masters));
    // Never the first five entrants: the first is admitted (and then the active cap of one holds the rest back).
    const early = waiters.map((h, i) => ({ ...purchase(h, waitTickets[i]), path: `${waitPath}/purchase` }));
    const waitingRun = await run({ name: 'purchase, not admitted', expect: 403, items: early.slice(5 + t), traced: early.slice(5, 5 + t) });
    waitingRun.background = 'idle, two sales';
    results.push(waitingRun);

    // The node's own background is what the idle node cost beyond the cluster's floor; the
    // phases are charged with neither (both are taken off at the idle rate, which includes the floor).
    const idleRate = per(idleCost, idleCost.seconds);
    idleRate.seconds = 1;
    const background = minusBackground(idleRate, floor);
    const idle2Rate = per(idle2Cost, idle2Cost.seconds);
    idle2Rate.seconds = 1;
    for (const r of results) {
      r.perRequest = per(minusBackground(r.raw, r.background === 'idle' ? idleRate : idle2Rate), r.requests);
      r.split = splitOf(r.perRequest, r.saleMaster, pacingMaster);
      r.scriptSplit = splitOf(r.perRequest, r.saleMaster, pacingMaster, 'scriptUs');
      const share = r.trace?.topShare ?? {};
      r.commandUs = sum(
        Object.fromEntries(Object.entries(r.perRequest.usec).map(([k, v]) => [k, SCRIPT_COMMANDS.has(k) ? v : v * (share[k.split('|')[0]] ?? 1)])),
      );
    }
    const bgCommandUs = sum(
      Object.fromEntries(Object.entries(background.usec).map(([k, v]) => [k, SCRIPT_COMMANDS.has(k) ? v : v * (idleTrace?.topShare[k.split('|')[0]] ?? 1)])),
    );

    // The cluster is shared: someone else's commands land in our deltas. MONITOR sees only ours,
    // so where the two disagree a figure is suspect (or a request left work behind it, said so).
    const warnings: string[] = [];
    if (sum(floor.calls) > 50)
      warnings.push(
        `the cluster ran ${f(sum(floor.calls), 0)} commands/s before the node started: someone else's traffic is in these figures; run again when it is quiet`,
      );
    if (idleTrace) {
      const seen = sum(idleTrace.topLevel) + sum(idleTrace.inner);
      const counted = sum(background.calls);
      if (Math.abs(counted - seen) > Math.max(20, 0.25 * seen))
        warnings.push(
          `idle node: commandstats count ${f(counted, 0)} calls/s beyond the floor, MONITOR saw ${f(seen, 0)} of ours: the background figure is disturbed`,
        );
    }
    for (const r of results) {
      if (!r.trace) continue;
      const seen = r.trace.calls;
      const counted = sum(r.perRequest.calls);
      if (Math.abs(counted - seen) > Math.max(1, 0.25 * seen))
        warnings.push(
          `${r.name}: commandstats count ${f(counted, 2)} calls a request, MONITOR saw ${f(seen, 2)} within the requests: work left for later, or someone else's traffic`,
        );
    }

    const report = {
      at: new Date().toISOString(),
      command: `npx tsx tools/engine-cost.ts ${argv.join(' ')}`.trim(),
      machine: { cpus: cpus().length, node: process.version, redis: redisVersion, masters: masters.map((m) => `${m.options.host}:${m.options.port}`) },
      options: opts,
      prefix,
      saleMaster: results[0].saleMaster,
      pacingMaster,
      pacingKeyExists: (await cluster.exists(pacingKey)) === 1,
      floorPerSec: floor,
      backgroundPerNodePerSec: {
        ...background,
        commandUs: bgCommandUs,
        split: splitOf(background, results[0].saleMaster, pacingMaster),
        scriptSplit: splitOf(background, results[0].saleMaster, pacingMaster, 'scriptUs'),
        trace: idleTrace,
      },
      idleRaw: idleCost,
      idleTwoSalesRaw: idle2Cost,
      phases: results,
      warnings,
      notes: [
        'perRequest: the phase less the idle node at its measured rate over the phase length (which also removes the cluster floor).',
        'calls: commandstats calls, which count commands run inside scripts too; scripts = eval/evalsha calls.',
        'cpuUs: used_cpu_sys_main_thread + used_cpu_user_main_thread summed over the masters.',
        'commandUs: script usec plus the top-level share (from the MONITOR trace) of other commands’ usec.',
        'trace.topLevel: the calls a request made itself, within its round trip; work it triggers later (an admission step, a refreshed picture) is in perRequest, not here.',
      ],
    };
    process.stdout.write(
      `\n${table(report.phases, background, report.backgroundPerNodePerSec.split, bgCommandUs, floor, idleTrace, pacingMaster, report.backgroundPerNodePerSec.scriptSplit)}\n`,
    );
    for (const w of warnings) process.stdout.write(`!!! ${w}\n`);
    mkdirSync(opts.out, { recursive: true });
    const file = join(opts.out, `engine-cost-${report.at.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(report, null, 2));
    process.stderr.write(`results: ${file}\n`);
    return 0;
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Two seconds of MONITOR with nothing sent: which calls the idle node makes, and which run inside scripts. */
async function traceIdle(tracer: Tracer, shas: Map<string, string>, prefix: string): Promise<Trace> {
  tracer.take();
  const start = wallSec();
  await sleep(2000);
  const lines = tracer.take();
  const secs = wallSec() - start;
  const topLevel: Record<string, number> = {};
  const inner: Record<string, number> = {};
  const seen: Record<string, { top: number; all: number }> = {};
  for (const l of lines) {
    const cmd = l.args[0].toLowerCase();
    seen[cmd] ??= { top: 0, all: 0 };
    seen[cmd].all += 1;
    if (l.inner) inner[cmd] = (inner[cmd] ?? 0) + 1 / secs;
    else {
      seen[cmd].top += 1;
      const label = labelOf(l, shas, prefix);
      topLevel[label] = (topLevel[label] ?? 0) + 1 / secs;
    }
  }
  return {
    requests: 0,
    calls: 0,
    topLevel,
    inWindows: {},
    inner,
    topShare: Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, v.top / v.all])),
    backgroundPerSec: topLevel,
  };
}

const f = (v: number, d = 1) => (Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '—');

function table(
  rows: PhaseResult[],
  background: Cost,
  backgroundSplit: Split,
  bgCommandUs: number,
  floor: Cost,
  idleTrace: Trace | null,
  pacingMaster: string,
  backgroundScripts: Split,
): string {
  const head = [
    'request',
    'n',
    'req/s',
    'calls/req',
    'scripts/req',
    'own calls/req',
    'command µs/req',
    'Redis CPU µs/req',
    "sale's slot",
    'pacing slot',
    'spread',
  ];
  const scripts = (c: Cost) => sum(c.calls, (k) => SCRIPT_COMMANDS.has(k));
  const where = (s: Split | null, d: number) => [f(s?.sale ?? NaN, d), s?.pacing === null ? "(in sale's)" : f(s?.pacing ?? NaN, d), f(s?.spread ?? NaN, d)];
  const body = rows.map((r) => [
    r.name,
    String(r.requests),
    f(r.reqPerSec, 0),
    f(sum(r.perRequest.calls), 2),
    f(scripts(r.perRequest), 2),
    f(r.trace ? sum(r.trace.topLevel) : NaN, 2),
    f(r.commandUs),
    f(r.perRequest.cpuUs),
    ...where(r.split, 1),
  ]);
  body.push([
    'idle node, per second',
    '—',
    '—',
    f(sum(background.calls), 1),
    f(scripts(background), 1),
    '—',
    f(bgCommandUs, 0),
    f(background.cpuUs, 0),
    ...where(backgroundSplit, 0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const out = [line(head), `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`, ...body.map(line)];
  out.push('');
  out.push(`cluster floor without the node: ${f(sum(floor.calls), 1)} calls/s, ${f(floor.cpuUs, 0)} µs CPU/s (all masters)`);
  const sales = [...new Set(rows.map((r) => r.saleMaster))].join(', then ');
  out.push(`Redis CPU by where it lands: the sale's slot on ${sales}; the pacing bucket on ${pacingMaster}; spread = the rest, all masters together`);
  out.push(
    `time inside scripts (µs/req: sale's slot, pacing slot, spread): ${rows.map((r) => `${r.name} ${where(r.scriptSplit, 1).join(' / ')}`).join('; ')}; idle node (µs/s): ${where(backgroundScripts, 0).join(' / ')}`,
  );
  for (const r of rows) {
    const byName = Object.entries(r.perRequest.calls)
      .filter(([, v]) => Math.abs(v) >= 0.01)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${f(v, 2)}`)
      .join(', ');
    out.push(`${r.name}: calls/req by command: ${byName || 'none'}`);
    if (r.trace) {
      const own = Object.entries(r.trace.topLevel)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${f(v, 2)}`)
        .join(', ');
      out.push(`${' '.repeat(r.name.length)}  its own calls (MONITOR, ${r.trace.requests} requests): ${own || 'none'}`);
    }
  }
  const bgByName = Object.entries(background.calls)
    .filter(([, v]) => Math.abs(v) >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${f(v, 1)}`)
    .join(', ');
  out.push(`idle node: calls/s by command: ${bgByName}`);
  if (idleTrace) {
    const own = Object.entries(idleTrace.topLevel)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${f(v, 1)}`)
      .join(', ');
    out.push(`           its own calls/s (MONITOR, 2 s): ${own}`);
  }
  return out.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`engine-cost: ${err.stack ?? err}\n`);
      process.exit(70);
    },
  );
}
