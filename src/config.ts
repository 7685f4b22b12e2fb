/**
 * Configuration from the environment (SPEC §5): parsed once, validated, frozen. A wrong value
 * throws a `ConfigError` whose message is the one line the server prints before it stops.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';

export interface Config {
  port: number;
  host: string;
  production: boolean;
  redisUrl: string | null;
  redisClusterNodes: string[];
  /** Prefix of every Redis key this deployment writes, so several can share one Redis. */
  redisPrefix: string;
  databaseUrl: string | null;
  dataDir: string;
  adminToken: string;
  userJwtSecret: string;
  /** PEM public key for user tokens signed by the shop's login (RS256/ES256); overrides the secret. */
  userJwtPublicKey: string | null;
  ticketSecret: string;
  demo: boolean;
  natsUrl: string | null;
  paymentGateway: 'sandbox' | 'stripe';
  stripeApiKey: string | null;
  /** The sandbox gateway's simulated round trip (ms); the bench sets 0 to measure Stampede alone. */
  sandboxLatencyMs: number;
  /** Share (0–100 %) of the sandbox's calls that time out, half of them after doing the work (chaos runs). */
  sandboxTimeoutPercent: number;
  /** How long a sandbox call that times out hangs before it fails (ms). */
  sandboxTimeoutMs: number;
  /** Requests per second per client address; 0 turns the limit off (load tests from one address). */
  ipRateLimit: number;
  /**
   * Which proxies' `X-Forwarded-For` to believe: false (none), a hop count (the client is that
   * many addresses from the right), or proxy addresses/CIDRs. Never "every hop": a client could
   * then name its own address.
   */
  trustProxy: false | number | string[];
  /** Bearer token for `/metrics`; null: the admin token. */
  metricsToken: string | null;
  /** Event streams one client address may hold at once; 0: no cap. */
  streamsPerAddress: number;
  /** On SIGTERM, how long readiness answers 503 (so the balancer stops sending) before the port closes. */
  drainMs: number;
  /** Seconds between drift checks of followed sales (engine against ledger, repaired); 0: off. */
  driftCheckSec: number;
  /** Seconds a sale's engine data is kept after the sale stops being followed (the ledger keeps it for good). */
  engineRetentionSec: number;
  /** Client connections held at once; null: the file limit less a reserve (see fd-limit.ts). */
  maxConnections: number | null;
  /** Secret of the CAPTCHA provider a sale may ask for (`bot_protection.captcha`). */
  captchaSecret: string | null;
  /** Another siteverify endpoint (a regional one, or a stand-in in tests). */
  captchaVerifyUrl: string | null;
  logLevel: string;
  /**
   * Server processes of this node, sharing its port (`STAMPEDE_WORKERS`, `auto` = one per core);
   * 1: one process, no primary. More than one needs Redis and PostgreSQL.
   */
  workers: number;
  /** Secrets demo mode made up, to say so in the log. */
  generatedSecrets: string[];
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const int = (env: Env, name: string, fallback: number, min: number, max: number): number => {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
};

const flag = (env: Env, name: string, fallback: boolean): boolean => {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes'].includes(raw)) return true;
  if (['0', 'false', 'no'].includes(raw)) return false;
  throw new ConfigError(`${name} must be 1 or 0, got "${raw}"`);
};

const url = (env: Env, name: string, protocols: string[]): string | null => {
  const raw = env[name];
  if (!raw) return null;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a URL: "${raw}"`);
  }
  if (!protocols.includes(parsed.protocol)) throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  return raw;
};

const secretOf = (env: Env, name: string, minLength: number): string => {
  const value = env[name]!;
  if (value.length < minLength) throw new ConfigError(`${name} must be at least ${minLength} characters`);
  return value;
};

/**
 * `STAMPEDE_TRUST_PROXY`: 0 (off), a hop count, or a comma-separated list of proxy addresses or
 * CIDRs. `true` is refused: trusting every hop lets a client pick its own address.
 */
function trustProxy(raw: string | undefined): false | number | string[] {
  if (raw === undefined || raw === '' || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw);
    if (hops > 10) throw new ConfigError(`STAMPEDE_TRUST_PROXY must be a hop count from 0 to 10 or proxy CIDRs, got "${raw}"`);
    return hops;
  }
  const entries = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of entries) {
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const bitsOk = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= max);
    if (!family || !bitsOk || extra !== undefined) {
      throw new ConfigError(`STAMPEDE_TRUST_PROXY must be a hop count (1 = one proxy in front) or proxy addresses/CIDRs such as 10.0.0.0/8, got "${entry}"`);
    }
  }
  return entries;
}

/**
 * `STAMPEDE_WORKERS`: a count, or `auto` (a process per core). Past one, the node's processes
 * share a sale only through Redis and PostgreSQL: the embedded engine and PGlite live in one
 * process's memory, so each worker would run a sale of its own.
 */
function workers(raw: string | undefined, sharedStack: boolean): number {
  if (raw === undefined || raw === '') return 1;
  const n = raw === 'auto' ? availableParallelism() : Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new ConfigError(`STAMPEDE_WORKERS must be auto or an integer from 1 to 1024, got "${raw}"`);
  if (n > 1 && !sharedStack) {
    throw new ConfigError(
      `STAMPEDE_WORKERS=${raw} (${n} processes) needs REDIS_URL (or REDIS_CLUSTER_NODES) and DATABASE_URL: the embedded engine and PGlite live in one process's memory, so each worker would run a sale of its own`,
    );
  }
  return n;
}

/**
 * `REDIS_CLUSTER_NODES`: `host:port` entries, or URLs — `redis://[user:password@]host:port`, or
 * `rediss://` for TLS — one or several seed nodes of one cluster. The client opens every node of
 * the cluster (it learns them from the seeds) with one set of credentials and one transport, so
 * entries that differ in them are refused rather than one of them silently winning.
 */
function clusterAccess(nodes: string[]): void {
  const access = new Set<string>();
  for (const node of nodes) {
    const ok = /^[\w.-]+:\d+$/.test(node) || /^rediss?:\/\/([^@/\s]+@)?[\w.-]+:\d+\/?$/.test(node);
    if (!ok)
      throw new ConfigError(`REDIS_CLUSTER_NODES must be host:port or redis[s]://[user:password@]host:port entries, comma-separated, got "${redactUrl(node)}"`);
    const url = new URL(node.includes('://') ? node : `redis://${node}`);
    access.add(`${url.protocol}${url.username}:${url.password}`);
  }
  if (access.size > 1) throw new ConfigError('REDIS_CLUSTER_NODES entries must share one scheme (redis:// or rediss://) and one user and password');
}

/** A URL with its password hidden, for an error message. */
const redactUrl = (raw: string): string => raw.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');

/** Reads and validates the configuration. Throws ConfigError with a one-line reason. */
export function loadConfig(env: Env = process.env): Readonly<Config> {
  const production = env.NODE_ENV === 'production';
  const demo = flag(env, 'STAMPEDE_DEMO', !production);
  const generatedSecrets: string[] = [];
  const secret = (name: string, minLength: number): string => {
    const value = env[name];
    if (value) {
      if (value.length < minLength) throw new ConfigError(`${name} must be at least ${minLength} characters`);
      return value;
    }
    if (production) throw new ConfigError(`${name} is required when NODE_ENV=production`);
    generatedSecrets.push(name);
    return randomBytes(32).toString('base64url');
  };

  const gateway = env.STAMPEDE_PAYMENT_GATEWAY ?? 'sandbox';
  if (gateway !== 'sandbox' && gateway !== 'stripe') throw new ConfigError(`STAMPEDE_PAYMENT_GATEWAY must be sandbox or stripe, got "${gateway}"`);
  if (gateway === 'stripe' && !env.STRIPE_API_KEY) throw new ConfigError('STRIPE_API_KEY is required when STAMPEDE_PAYMENT_GATEWAY=stripe');
  const clusterNodes = (env.REDIS_CLUSTER_NODES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  clusterAccess(clusterNodes);
  const redisPrefix = env.STAMPEDE_REDIS_PREFIX || 'stampede';
  if (!/^[\w.:-]{1,64}$/.test(redisPrefix))
    throw new ConfigError(`STAMPEDE_REDIS_PREFIX must be 1–64 letters, digits, '_', '-', '.' or ':', got "${redisPrefix}"`);
  const logLevel = env.LOG_LEVEL ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw new ConfigError(`LOG_LEVEL is not a pino level: "${logLevel}"`);

  const redisUrl = url(env, 'REDIS_URL', ['redis:', 'rediss:']);
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);

  const config: Config = {
    port: int(env, 'PORT', 3000, 0, 65535),
    host: env.HOST || '0.0.0.0',
    production,
    redisUrl,
    redisClusterNodes: clusterNodes,
    redisPrefix,
    databaseUrl,
    dataDir: env.STAMPEDE_DATA_DIR || './data',
    adminToken: secret('STAMPEDE_ADMIN_TOKEN', 16),
    userJwtSecret: env.STAMPEDE_USER_JWT_PUBLIC_KEY && !env.STAMPEDE_USER_JWT_SECRET ? '' : secret('STAMPEDE_USER_JWT_SECRET', 32),
    userJwtPublicKey: env.STAMPEDE_USER_JWT_PUBLIC_KEY || null,
    ticketSecret: secret('STAMPEDE_TICKET_SECRET', 32),
    demo,
    natsUrl: url(env, 'NATS_URL', ['nats:', 'tls:']),
    paymentGateway: gateway,
    stripeApiKey: env.STRIPE_API_KEY || null,
    sandboxLatencyMs: int(env, 'STAMPEDE_SANDBOX_LATENCY_MS', 25, 0, 60_000),
    sandboxTimeoutPercent: int(env, 'STAMPEDE_SANDBOX_TIMEOUT_PERCENT', 0, 0, 100),
    sandboxTimeoutMs: int(env, 'STAMPEDE_SANDBOX_TIMEOUT_MS', 1000, 0, 600_000),
    ipRateLimit: int(env, 'STAMPEDE_IP_RATE_LIMIT', 50, 0, 1_000_000),
    trustProxy: trustProxy(env.STAMPEDE_TRUST_PROXY),
    metricsToken: env.STAMPEDE_METRICS_TOKEN ? secretOf(env, 'STAMPEDE_METRICS_TOKEN', 16) : null,
    // One address sending everything (a load test, STAMPEDE_IP_RATE_LIMIT=0) has no cap by default.
    drainMs: int(env, 'STAMPEDE_DRAIN_MS', production ? 5000 : 0, 0, 120_000),
    driftCheckSec: int(env, 'STAMPEDE_DRIFT_CHECK_SEC', 30, 0, 86_400),
    engineRetentionSec: int(env, 'STAMPEDE_ENGINE_RETENTION_SEC', 86_400, 60, 90 * 86_400),
    streamsPerAddress: int(env, 'STAMPEDE_STREAMS_PER_ADDRESS', env.STAMPEDE_IP_RATE_LIMIT === '0' ? 0 : 200, 0, 10_000_000),
    maxConnections: env.STAMPEDE_MAX_CONNECTIONS ? int(env, 'STAMPEDE_MAX_CONNECTIONS', 0, 1, 10_000_000) : null,
    captchaSecret: env.STAMPEDE_CAPTCHA_SECRET || null,
    captchaVerifyUrl: url(env, 'STAMPEDE_CAPTCHA_VERIFY_URL', ['http:', 'https:']),
    logLevel,
    workers: workers(env.STAMPEDE_WORKERS, Boolean((redisUrl || clusterNodes.length) && databaseUrl)),
    generatedSecrets,
  };
  return Object.freeze(config);
}

/**
 * A node on Redis (`REDIS_URL` or `REDIS_CLUSTER_NODES`) shares its sales with every other node on
 * that Redis, and each accepts the tickets, user tokens and admin token another issued only when
 * they share the secrets. Made-up secrets differ per node (and per start): the second node would
 * answer the first one's shoppers 401. So a node on Redis must be given them — the node refuses
 * to start otherwise (the processes of one node, `STAMPEDE_WORKERS`, inherit the node's). The
 * embedded engine is one process's own, so demo mode may make them up there.
 */
export function refuseMadeUpSharedSecrets(config: Readonly<Config>): void {
  if (!(config.redisUrl || config.redisClusterNodes.length) || !config.generatedSecrets.length) return;
  throw new ConfigError(
    `${config.generatedSecrets.join(', ')} must be set on a node that uses Redis: every node on the same Redis must share them (each would refuse the tickets and tokens the others issue), and made-up ones differ per node; give every node the same values, e.g. from openssl rand -base64 32`,
  );
}
