/**
 * Debian's HAProxy in front of Stampede nodes, as a deployment would put it: round robin with no
 * stickiness (any node must answer any request: tickets, sessions and idempotency keys are
 * shared), health checks on `/readyz` (a draining node drops out), the client's address in
 * `X-Forwarded-For`, and timeouts that let event streams stay open for minutes. It runs in the
 * foreground as a child of this process; its stats page says how many requests each node got.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileLimit } from '../../src/fd-limit.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The backend's and the frontend's names in the config and in the stats. */
export const BACKEND = 'stampede';
const FRONTEND = 'shoppers';
/** Suffix of each node's second, unchecked entry: used only while every node is out. */
const FALLBACK = '-fallback';

/** What to tell someone without HAProxy. */
export const HAPROXY_MISSING = 'HAProxy is not installed (apt-get install haproxy), or set HAPROXY_BIN to its path';

/** `$HAPROXY_BIN`, else `haproxy` on the PATH or in /usr/sbin (root's PATH has it, a user's often not); null when none. */
export function findHaproxy(): string | null {
  const candidates = process.env.HAPROXY_BIN
    ? [process.env.HAPROXY_BIN]
    : [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin'].map((dir) => join(dir, 'haproxy'));
  for (const bin of candidates) {
    try {
      accessSync(bin, constants.X_OK);
      return bin;
    } catch {
      /* not here */
    }
  }
  return null;
}

export interface BalancerSettings {
  /** The port shoppers use, on 127.0.0.1. */
  port: number;
  /** The stats listener's port (`/stats`, `/stats;csv`). */
  statsPort: number;
  servers: { name: string; port: number }[];
  /** Connections held at once (each also holds one to a node). */
  maxconn: number;
}

/**
 * Connections HAProxy can hold within this process's hard file limit: each takes a socket on
 * each side, plus a reserve for listeners and checks. HAProxy raises its own soft limit to what
 * it needs but cannot pass the hard one (it refuses to start if asked to).
 */
export function maxconnForFileLimit(hard = fileLimit()?.hard ?? Infinity): number {
  return Math.max(256, Math.min(100_000, Math.floor((hard - 200) / 2)));
}

/** The configuration file's text. */
export function haproxyConfig(s: BalancerSettings): string {
  return `# Written by tools/deploy/haproxy.ts (npm run cluster): ${s.servers.length} Stampede node(s) behind one port.
global
  maxconn ${s.maxconn}
  # Foreground (-db): errors and server state changes go to stdout, which the tool writes to haproxy.log.
  log stdout format raw local0 info

defaults
  mode http
  log global
  # The httplog line without the query string: a ticket in it is a bearer credential (the nodes
  # cut it from their own logs too). Only what went wrong is logged: a drop sends 100,000s.
  log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq \\"%HM %HP\\""
  option dontlog-normal
  # A connection closed before its first request (a client's spare socket) is not a 400.
  option http-ignore-probes
  # Appends the client's address; the nodes believe it from 127.0.0.1 only (STAMPEDE_TRUST_PROXY).
  option forwardfor
  # A request that could not reach a node (it died, it closed) is sent to another.
  option redispatch
  retries 2
  maxconn ${s.maxconn}
  # A node on this host accepts at once or is down: fail fast and try another.
  timeout connect 2s
  # Event streams stay open for the whole wait (minutes), with a comment line every 15 s; polls
  # and purchases answer within seconds. A stream is an ordinary response to HAProxy, so the
  # client and server timeouts are what cut a quiet one (tried: 3 s there and a tunnel timeout of
  # an hour cut it at 3 s); the tunnel timeout only covers upgraded connections (WebSocket).
  timeout client 10m
  timeout server 10m
  timeout tunnel 1h
  timeout http-request 10s
  timeout http-keep-alive 10s
  timeout queue 5s
  # A check is a fresh connection, and a node saturated by a drop accepts those seconds late
  # (docs/performance.md): a check gets 10 s, three failed in a row take a node out. With 2 s,
  # then 5 s, a 10,000-user run on two cores had all three nodes out at once.
  timeout check 10s

frontend ${FRONTEND}
  bind 127.0.0.1:${s.port}
  default_backend ${BACKEND}

backend ${BACKEND}
  # Round robin, nothing sticky: no cookie, no stick table. Any node answers any request.
  balance roundrobin
  # A node answers 503 here while it drains (SIGTERM) or has lost Redis or PostgreSQL. Checks
  # every 2 s, every 0.5 s once one failed: a draining node is out within about 3 s, inside the
  # nodes' STAMPEDE_DRAIN_MS (tools/deploy/deployment.ts).
  option httpchk GET /readyz
  http-check expect status 200
  default-server check inter 2s fastinter 500ms downinter 1s fall 3 rise 2
${s.servers.map((n) => `  server ${n.name} 127.0.0.1:${n.port}`).join('\n')}
  # Fail open: with every node out (all slow at once, say), requests still go to them, unchecked,
  # rather than each being answered 503 by the balancer. Reported as "while every node was out".
  option allbackups
${s.servers.map((n) => `  server ${n.name}${FALLBACK} 127.0.0.1:${n.port} backup no-check`).join('\n')}

listen stats
  bind 127.0.0.1:${s.statsPort}
  stats enable
  stats uri /stats
  stats refresh 5s
`;
}

/** One node's line of the stats (`/stats;csv`): what the balancer sent it and what came back. */
export interface ServerStats {
  name: string;
  /** UP, DOWN, MAINT, "UP 1/3" (going down), ... */
  status: string;
  /** Requests sent to it (`stot`: in HTTP mode each request is a stream of its own). */
  requests: number;
  /** Answers by class (`hrsp_2xx` ...). */
  answers: { '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** Connections it refused or that failed (`econ`), answers that broke off (`eresp`). */
  connectErrors: number;
  responseErrors: number;
  /** Requests sent elsewhere after failing on it (`wredis`), tried again (`wretr`). */
  redispatched: number;
  retried: number;
  /** Times its health checks took it out (`chkdown`), and for how long in all (`downtime`, s). */
  wentDown: number;
  downSec: number;
  /** Of `requests`, those sent while every node was out (through its unchecked fallback entry). */
  whileAllOut: number;
}

export interface BalancerStats {
  servers: ServerStats[];
  /** Requests the balancer took in (`req_tot` of the frontend). */
  received: number;
  /**
   * 5xx answers that no node sent: the balancer's own (503 when no node is up, 504 when one did
   * not answer in time, 502 when one broke off).
   */
  own5xx: number;
}

/** The backend's servers and what the balancer answered itself, from the CSV of the stats page. */
export function parseStats(csv: string, backend = BACKEND): BalancerStats {
  const [header, ...rows] = csv.split('\n').filter(Boolean);
  const names = header.replace(/^#\s*/, '').split(',');
  const at = (cells: string[], name: string) => cells[names.indexOf(name)] ?? '';
  const num = (cells: string[], name: string) => Number(at(cells, name)) || 0;
  const table = rows.map((row) => row.split(','));
  const entries: ServerStats[] = table
    .filter((cells) => at(cells, 'pxname') === backend && !['FRONTEND', 'BACKEND'].includes(at(cells, 'svname')))
    .map((cells) => ({
      name: at(cells, 'svname'),
      status: at(cells, 'status'),
      requests: num(cells, 'stot'),
      answers: { '2xx': num(cells, 'hrsp_2xx'), '3xx': num(cells, 'hrsp_3xx'), '4xx': num(cells, 'hrsp_4xx'), '5xx': num(cells, 'hrsp_5xx') },
      connectErrors: num(cells, 'econ'),
      responseErrors: num(cells, 'eresp'),
      redispatched: num(cells, 'wredis'),
      retried: num(cells, 'wretr'),
      wentDown: num(cells, 'chkdown'),
      downSec: num(cells, 'downtime'),
      whileAllOut: 0,
    }));
  // Each node's fallback entry is counted with the node.
  const servers = entries.filter((s) => !s.name.endsWith(FALLBACK));
  for (const fb of entries.filter((s) => s.name.endsWith(FALLBACK))) {
    const node = servers.find((s) => s.name === fb.name.slice(0, -FALLBACK.length));
    if (!node) continue;
    node.requests += fb.requests;
    node.whileAllOut += fb.requests;
    for (const k of ['2xx', '3xx', '4xx', '5xx'] as const) node.answers[k] += fb.answers[k];
    node.connectErrors += fb.connectErrors;
    node.responseErrors += fb.responseErrors;
    node.retried += fb.retried;
    node.redispatched += fb.redispatched;
  }
  const frontend = table.find((cells) => at(cells, 'pxname') === FRONTEND && at(cells, 'svname') === 'FRONTEND') ?? [];
  const nodes5xx = servers.reduce((sum, s) => sum + s.answers['5xx'], 0);
  return { servers, received: num(frontend, 'req_tot'), own5xx: Math.max(0, num(frontend, 'hrsp_5xx') - nodes5xx) };
}

/** The requests each node got, as lines for a report. */
export function requestsPerNode({ servers, received, own5xx }: BalancerStats): string {
  const total = servers.reduce((sum, s) => sum + s.requests, 0);
  const n = (x: number) => x.toLocaleString('en-US');
  const lines = [`Requests per node (HAProxy, round robin): ${n(total)} sent to nodes of ${n(received)} received`];
  for (const s of servers) {
    const share = total ? ((100 * s.requests) / total).toFixed(1) : '0.0';
    const a = s.answers;
    const trouble = [
      s.connectErrors && `${n(s.connectErrors)} connection errors`,
      s.responseErrors && `${n(s.responseErrors)} broken answers`,
      s.retried && `${n(s.retried)} retried`,
      s.redispatched && `${n(s.redispatched)} sent elsewhere`,
      s.wentDown && `taken out ${s.wentDown}× by failed checks, ${s.downSec} s in all`,
      s.whileAllOut && `${n(s.whileAllOut)} while every node was out`,
    ].filter(Boolean);
    lines.push(
      `  ${s.name.padEnd(8)}${n(s.requests).padStart(10)}  ${share.padStart(5)} %  2xx ${n(a['2xx'])} · 3xx ${n(a['3xx'])} · 4xx ${n(a['4xx'])} · 5xx ${n(a['5xx'])}` +
        `${trouble.length ? ` · ${trouble.join(' · ')}` : ''} · now ${s.status}`,
    );
  }
  if (own5xx) lines.push(`  the balancer itself answered ${n(own5xx)} × 5xx (no node up, or one did not answer in time)`);
  return lines.join('\n');
}

/** Processes still running when this process exits (an interrupted run) die with it. */
const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

/** A running HAProxy. */
export class Balancer {
  private tail = '';

  private constructor(
    readonly settings: BalancerSettings,
    readonly configFile: string,
    readonly logFile: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {
    const keep = (b: Buffer) => (this.tail = (this.tail + b.toString()).slice(-4000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
  }

  get url(): string {
    return `http://127.0.0.1:${this.settings.port}`;
  }

  get statsUrl(): string {
    return `http://127.0.0.1:${this.settings.statsPort}/stats`;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Writes the config into `dir` (haproxy.cfg), checks it (`haproxy -c`: its complaints are the
   * error), and starts HAProxy in the foreground, its output going to `dir`/haproxy.log.
   */
  static async start(bin: string, settings: BalancerSettings, dir: string): Promise<Balancer> {
    const configFile = join(dir, 'haproxy.cfg');
    const logFile = join(dir, 'haproxy.log');
    writeFileSync(configFile, haproxyConfig(settings));
    const check = spawnSync(bin, ['-c', '-f', configFile], { encoding: 'utf8', timeout: 30_000 });
    if (check.status !== 0) {
      const said = `${check.stdout ?? ''}${check.stderr ?? ''}`.trim() || (check.error?.message ?? `exit ${check.status ?? check.signal}`);
      throw new Error(`haproxy refused ${configFile}:\n${said}`);
    }
    const log = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(bin, ['-f', configFile, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    alive.add(child);
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const exited = new Promise<void>((resolve) =>
      child.once('exit', () => {
        alive.delete(child);
        resolve();
      }),
    );
    const balancer = new Balancer(settings, configFile, logFile, child, exited);
    // Up when the stats page answers (the listeners are bound by then).
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (!balancer.running) break;
      try {
        if ((await fetch(balancer.statsUrl, { signal: AbortSignal.timeout(1000) })).ok) return balancer;
      } catch {
        /* not listening yet */
      }
      await sleep(100);
    }
    await balancer.stop();
    throw new Error(`haproxy did not start (see ${logFile}):\n${balancer.tail.trim()}`);
  }

  /** The backend's servers, and the balancer's own answers, as the stats page has them now. */
  async stats(): Promise<BalancerStats> {
    const res = await fetch(`${this.statsUrl};csv`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`haproxy's stats answered ${res.status}`);
    return parseStats(await res.text());
  }

  /**
   * Resolves when every node passed its health checks and the balancer answers `/readyz` with
   * 200; rejects after `timeoutMs` saying which nodes were not up.
   */
  async untilReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`haproxy exited (see ${this.logFile}):\n${this.tail.trim()}`);
      try {
        const down = (await this.stats()).servers.filter((s) => s.status !== 'UP');
        last = down.map((s) => `${s.name} ${s.status}`).join(', ');
        if (!down.length && (await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200) return;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(200);
    }
    throw new Error(`the balancer was not ready within ${timeoutMs} ms (${last || 'readyz not 200'})`);
  }

  /** Stops HAProxy at once (SIGTERM in the foreground is a hard stop), SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (!this.running) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}
