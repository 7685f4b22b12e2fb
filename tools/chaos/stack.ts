/**
 * A whole deployment of the chaos suite's own: a Redis with AOF on, a PostgreSQL cluster and a
 * NATS server on spare ports (never the shared ones), and one or two Stampede nodes in production
 * mode sharing their secrets, as two nodes behind a balancer would.
 */
import { join } from 'node:path';
import { startNats, startPostgres, startRedis, type OwnNats, type OwnPostgres, type OwnRedis } from '../../test/support/own-services.js';
import { RecordingClient, type Answer } from './answers.js';
import { ServerNode } from './nodes.js';

export const ADMIN_TOKEN = 'chaos-admin-token-0123456789abcdef';
export const USER_SECRET = 'chaos-user-secret-0123456789abcdef0123456789';
const TICKET_SECRET = 'chaos-ticket-secret-0123456789abcdef012345678';
/** The engine's key prefix on the suite's Redis. */
export const REDIS_PREFIX = 'chaos';

export class ChaosStack {
  readonly nodes: ServerNode[] = [];

  private constructor(
    readonly redis: OwnRedis,
    readonly pg: OwnPostgres,
    readonly nats: OwnNats,
    private readonly logDir: string,
  ) {}

  /** Starts the services (in parallel); nodes come with `useNodes`. */
  static async start(logDir: string): Promise<ChaosStack> {
    const started = await Promise.allSettled([startRedis({ aof: true }), startPostgres(), startNats()]);
    const [redis, pg, nats] = started.map((s) => (s.status === 'fulfilled' ? s.value : null)) as [OwnRedis | null, OwnPostgres | null, OwnNats | null];
    if (!redis || !pg || !nats) {
      await Promise.all([redis?.stop(), pg?.stop(), nats?.stop()]);
      const why = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => (s.reason as Error).message);
      throw new Error(`the suite's own services did not start: ${why.join('; ')}`);
    }
    return new ChaosStack(redis, pg, nats, logDir);
  }

  /** What every node is started with, plus `extra` (the card network's behaviour, say). */
  nodeEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      NODE_ENV: 'production',
      STAMPEDE_DEMO: '0',
      STAMPEDE_ADMIN_TOKEN: ADMIN_TOKEN,
      STAMPEDE_USER_JWT_SECRET: USER_SECRET,
      STAMPEDE_TICKET_SECRET: TICKET_SECRET,
      REDIS_URL: this.redis.url,
      DATABASE_URL: this.pg.url,
      NATS_URL: this.nats.url,
      STAMPEDE_REDIS_PREFIX: REDIS_PREFIX,
      STAMPEDE_IP_RATE_LIMIT: '0',
      STAMPEDE_DRAIN_MS: '0',
      LOG_LEVEL: 'warn',
      ...extra,
    };
  }

  /**
   * Makes exactly `count` nodes run with these settings: nodes with other settings are restarted,
   * extra ones stopped. The first start runs alone (it migrates the ledger), the rest together.
   */
  async useNodes(count: number, extra: Record<string, string> = {}): Promise<void> {
    const env = this.nodeEnv(extra);
    while (this.nodes.length > count) await this.nodes.pop()!.close();
    for (const node of this.nodes) {
      if (JSON.stringify(node.settings) !== JSON.stringify(env)) {
        await node.stop(5000);
        node.settings = env;
      }
    }
    while (this.nodes.length < count) {
      const name = `node-${this.nodes.length + 1}`;
      this.nodes.push(await ServerNode.create(name, env, join(this.logDir, `${name}.log`)));
    }
    const [first, ...rest] = this.nodes;
    await first.start();
    await Promise.all(rest.map((n) => n.start()));
  }

  /** One recording client per node, all writing to `log`. */
  clients(log: Answer[]): RecordingClient[] {
    return this.nodes.map((n, i) => new RecordingClient(n.url, i, log));
  }

  /** Everything stopped and removed, whatever fails on the way. */
  async close(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.close()));
    await Promise.allSettled([this.redis.stop(), this.pg.stop(), this.nats.stop()]);
  }
}
