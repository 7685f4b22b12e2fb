/**
 * A local deployment of several Stampede nodes behind one port: HAProxy (round robin, nothing
 * sticky) in front of N nodes (the compiled build, production mode, one set of secrets), on a
 * 3-master Redis Cluster and PostgreSQL — each either given (an existing cluster, a database) or
 * started here and removed at the end. `npm run cluster` and the multi-node test both use it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Cluster } from 'ioredis';
import { createRedis, deleteKeys, untilReady } from '../../src/engine/redis/redis-engine.js';
import { clusterPorts, freePort, portIsFree, startPostgres, type OwnPostgres } from '../../test/support/own-services.js';
import { ROOT } from '../built.js';
import { ServerNode } from '../chaos/nodes.js';
import { readMasters, type MasterStats } from './shard-load.js';
import { Balancer, HAPROXY_MISSING, findHaproxy, maxconnForFileLimit, requestsPerNode, type BalancerStats } from './haproxy.js';

const run = promisify(execFile);
const CLUSTER_SCRIPT = join(ROOT, 'scripts/redis-cluster.sh');

/**
 * How long a node keeps serving after SIGTERM with `/readyz` at 503: above the three failed
 * checks (the next within 2 s, then 0.5 s apart) that take it out of the balancer
 * (tools/deploy/haproxy.ts).
 */
const DRAIN_MS = 5000;

export interface DeploymentOptions {
  /** Stampede nodes behind the balancer. */
  nodes: number;
  /** The balancer's port on 127.0.0.1; 0: a free one. */
  port: number;
  /** An existing Redis Cluster (`host:port` of its masters); none: one of our own on spare ports. */
  redisCluster?: string[] | null;
  /** An existing PostgreSQL database; none: a PostgreSQL of our own on a spare port. */
  databaseUrl?: string | null;
  /** NATS for the ledger's outbox; none: the outbox is not published (NATS is optional to a node). */
  natsUrl?: string | null;
  /** The nodes' Redis key prefix; none: `stampede-cluster-<random>`. */
  prefix?: string;
  /** Where the nodes' logs and HAProxy's config and log go. */
  logDir: string;
  /**
   * False: the per-address request limit is off (STAMPEDE_IP_RATE_LIMIT=0), for a simulated crowd
   * that comes from one machine. It also turns off the accounts-per-address bot signal.
   */
  ipLimit: boolean;
  /** Progress lines while starting and stopping. */
  log?: (line: string) => void;
}

/** A Redis Cluster this process started (scripts/redis-cluster.sh), removed at the end. */
interface OwnCluster {
  nodes: string[];
  stop(): Promise<void>;
}

async function startOwnCluster(): Promise<OwnCluster> {
  const ports = (await clusterPorts(3)).map(String);
  const dir = mkdtempSync(join(tmpdir(), 'stampede-cluster-redis-'));
  const env = { ...process.env, STAMPEDE_REDIS_CLUSTER_DIR: dir };
  // Its servers are daemons: an interrupted run must still shut them down.
  const stopNow = () => spawnSync(CLUSTER_SCRIPT, ['stop', ...ports], { env, stdio: 'ignore', timeout: 20_000 });
  process.once('exit', stopNow);
  try {
    const { stdout } = await run(CLUSTER_SCRIPT, ['start', ...ports], { env, timeout: 60_000 });
    return {
      nodes: stdout.trim().split(','),
      async stop() {
        process.off('exit', stopNow);
        await run(CLUSTER_SCRIPT, ['stop', ...ports], { env, timeout: 30_000 });
      },
    };
  } catch (err) {
    stopNow();
    process.off('exit', stopNow);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the Redis Cluster did not start: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
}

/** Connects to a cluster, runs `fn`, disconnects. */
async function onCluster<T>(nodes: string[], fn: (client: ReturnType<typeof createRedis>) => Promise<T>): Promise<T> {
  const client = createRedis({ clusterNodes: nodes });
  try {
    await untilReady(client, 5000);
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

/** A URL with its password hidden, for what is printed. */
export const redact = (raw: string): string => raw.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * SIGTERM, and the node drains and closes; but one already draining is left to finish: Ctrl-C in
 * a terminal reaches the nodes too (one process group), and a second signal makes a node leave
 * at once, its requests cut and its leases held until they lapse.
 */
async function stopNode(node: ServerNode): Promise<void> {
  let draining = false;
  try {
    const res = await fetch(`${node.url}/readyz`, { signal: AbortSignal.timeout(1000) });
    draining = res.status === 503 && ((await res.json()) as { status?: string }).status === 'draining';
  } catch {
    /* not answering: SIGTERM below (SIGKILL after the grace) */
  }
  const deadline = Date.now() + DRAIN_MS + 10_000;
  while (draining && node.running && Date.now() < deadline) await sleep(100);
  await node.stop(DRAIN_MS + 10_000);
  await node.close();
}

const secret = () => randomBytes(32).toString('base64url');

export class Deployment {
  readonly nodes: ServerNode[] = [];
  balancer: Balancer | null = null;
  /** Shared by every node (each accepts what another issued). */
  readonly adminToken = secret();
  readonly userSecret = secret();
  readonly ticketSecret = secret();
  readonly prefix: string;
  redisNodes: string[] = [];
  databaseUrl = '';
  private ownCluster: OwnCluster | null = null;
  private ownPostgres: OwnPostgres | null = null;
  private closing: Promise<void> | null = null;
  private readonly log: (line: string) => void;

  private constructor(readonly opts: DeploymentOptions) {
    this.prefix = opts.prefix ?? `stampede-cluster-${randomBytes(4).toString('hex')}`;
    this.log = opts.log ?? (() => {});
  }

  /** The balancer's address: what shoppers, the admin and a rehearsal use. */
  get url(): string {
    return this.balancer!.url;
  }

  get natsUrl(): string | null {
    return this.opts.natsUrl ?? null;
  }

  get ownsCluster(): boolean {
    return this.ownCluster !== null;
  }

  get ownsDatabase(): boolean {
    return this.ownPostgres !== null;
  }

  /**
   * Starts everything: the services, the first node alone (it migrates the ledger), the others
   * together, then HAProxy; resolves once every node passed the balancer's health check and the
   * balancer answers `/readyz`. Whatever started is removed again if a step fails.
   */
  static async start(opts: DeploymentOptions): Promise<Deployment> {
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1) throw new Error('a deployment needs at least one node');
    const haproxy = findHaproxy();
    if (!haproxy) throw new Error(HAPROXY_MISSING);
    if (opts.port !== 0 && !(await portIsFree(opts.port))) throw new Error(`port ${opts.port} is taken on 127.0.0.1 (pass --port 0 for a free one)`);
    const d = new Deployment(opts);
    try {
      await d.startServices();
      await d.startNodes();
      d.log(`HAProxy in front (${haproxy})`);
      d.balancer = await Balancer.start(
        haproxy,
        {
          port: opts.port || (await freePort()),
          statsPort: await freePort(),
          servers: d.nodes.map((n) => ({ name: n.name, port: n.port })),
          maxconn: maxconnForFileLimit(),
        },
        opts.logDir,
      );
      await d.balancer.untilReady();
      return d;
    } catch (err) {
      await d.close().catch(() => {});
      throw err;
    }
  }

  private async startServices(): Promise<void> {
    const { redisCluster, databaseUrl } = this.opts;
    this.log(
      `services: Redis Cluster ${redisCluster?.length ? redisCluster.map(redact).join(',') : '(own, on spare ports)'}; PostgreSQL ${databaseUrl ? 'given' : '(own, on a spare port)'}`,
    );
    const [cluster, pg] = await Promise.allSettled([
      redisCluster?.length
        ? onCluster(redisCluster, async () => null).catch((err: Error) => {
            throw new Error(`the Redis Cluster at ${redisCluster.map(redact).join(',')} is not reachable: ${err.message}`);
          })
        : startOwnCluster(),
      databaseUrl ? Promise.resolve(null) : startPostgres(),
    ]);
    if (cluster.status === 'fulfilled') this.ownCluster = cluster.value;
    if (pg.status === 'fulfilled') this.ownPostgres = pg.value;
    const failed = [cluster, pg].filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed.length) throw new Error(failed.map((f) => (f.reason as Error).message).join('; '));
    this.redisNodes = this.ownCluster?.nodes ?? redisCluster!;
    this.databaseUrl = this.ownPostgres?.url ?? databaseUrl!;
  }

  /** What every node runs with. */
  nodeEnv(): Record<string, string> {
    return {
      NODE_ENV: 'production',
      STAMPEDE_DEMO: '0',
      STAMPEDE_ADMIN_TOKEN: this.adminToken,
      STAMPEDE_USER_JWT_SECRET: this.userSecret,
      STAMPEDE_TICKET_SECRET: this.ticketSecret,
      REDIS_CLUSTER_NODES: this.redisNodes.join(','),
      DATABASE_URL: this.databaseUrl,
      ...(this.natsUrl ? { NATS_URL: this.natsUrl } : {}),
      STAMPEDE_REDIS_PREFIX: this.prefix,
      // Only HAProxy's connections (from 127.0.0.1) may say who the client is.
      STAMPEDE_TRUST_PROXY: '127.0.0.1',
      STAMPEDE_DRAIN_MS: String(DRAIN_MS),
      ...(this.opts.ipLimit ? {} : { STAMPEDE_IP_RATE_LIMIT: '0' }),
      LOG_LEVEL: 'warn',
    };
  }

  private async startNodes(): Promise<void> {
    const env = this.nodeEnv();
    for (let i = 1; i <= this.opts.nodes; i++) {
      const name = `node-${i}`;
      this.nodes.push(await ServerNode.create(name, env, join(this.opts.logDir, `${name}.log`)));
    }
    const [first, ...rest] = this.nodes;
    this.log(`${first.name} on ${first.port} (alone: it migrates the ledger)`);
    await first.start();
    if (rest.length) this.log(`${rest.map((n) => `${n.name} on ${n.port}`).join(', ')}`);
    await Promise.all(rest.map((n) => n.start()));
  }

  /** The balancer's stats: each node's, and its own answers. */
  async stats(): Promise<BalancerStats> {
    if (!this.balancer) throw new Error('the balancer is not running');
    return this.balancer.stats();
  }

  /** Every Redis master's commands and CPU so far (`shard-load.ts`); a difference of two reads is a stretch's load. */
  async redisMasters(): Promise<MasterStats[]> {
    return onCluster(this.redisNodes, (c) => readMasters((c as Cluster).nodes('master')));
  }

  /** The requests each node got, as lines for a report. */
  async requestsPerNode(): Promise<string> {
    return requestsPerNode(await this.stats());
  }

  /**
   * Stops everything (once, however often called): the balancer, the nodes (SIGTERM, so each
   * drains and releases its leases), then the services this deployment started. On a given
   * cluster, every key under the prefix is deleted; a given database is left as it is (its
   * tables and rows are the rehearsal's record).
   */
  close(): Promise<void> {
    this.closing ??= this.teardown();
    return this.closing;
  }

  private async teardown(): Promise<void> {
    const problems: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${(err as Error).message}`);
      }
    };
    await attempt('stopping haproxy', async () => this.balancer?.stop());
    await Promise.all(this.nodes.map((n) => attempt(`stopping ${n.name}`, () => stopNode(n))));
    if (this.ownCluster) await attempt('stopping the Redis Cluster', () => this.ownCluster!.stop());
    else if (this.redisNodes.length) {
      // `dev:` is where a node outside production keeps its rate limits: never these, but cheap to sweep.
      await attempt(`deleting the keys under ${this.prefix}:`, () =>
        onCluster(this.redisNodes, (c) => deleteKeys(c, `${this.prefix}:*`, `dev:${this.prefix}:*`)),
      );
    }
    if (this.ownPostgres) await attempt('stopping PostgreSQL', () => this.ownPostgres!.stop());
    this.log('everything stopped');
    if (problems.length) throw new Error(`teardown: ${problems.join('; ')}`);
  }
}
