/**
 * The runtime: every part of one Stampede node, wired once. `server.ts` starts it for real;
 * tests start it on the embedded engine and PGlite, or on Redis and PostgreSQL, and call its
 * parts directly or through `buildApp`. Nothing here is a global, so one process can hold many.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Config } from './config.js';
import { quietDuringOutages } from './errors.js';
import type { Engine } from './engine/engine.js';
import { EngineClock } from './engine/engine-clock.js';
import { MemoryEngine } from './engine/memory/memory-engine.js';
import { RedisEngine, createRedis, untilReady } from './engine/redis/redis-engine.js';
import type { Ledger } from './ledger/ledger.js';
import { openLedger } from './ledger/open-ledger.js';
import { OutboxRelay } from './ledger/outbox-relay.js';
import { Metrics, instrument } from './http/metrics.js';
import { Auth } from './http/auth.js';
import { SaleTraffic } from './http/sale-traffic.js';
import { SaleService } from './sales/sale-service.js';
import { SaleStats } from './sales/sale-stats.js';
import { NodeFigures } from './sales/node-figures.js';
import { SaleFollower } from './sales/sale-follower.js';
import { rebuildOnMissing } from './sales/rebuild-on-missing.js';
import { SaleMonitor } from './queue/sale-monitor.js';
import { TicketSigner } from './queue/ticket.js';
import { AdmissionPassSigner } from './queue/admission-pass.js';
import { QueueService, type EntryGate } from './queue/queue-service.js';
import { SseHub } from './queue/sse-hub.js';
import { AdmissionController } from './queue/admission-controller.js';
import { CheckoutService } from './checkout/checkout-service.js';
import { HoldSweeper } from './checkout/hold-sweeper.js';
import { DriftCheck } from './checkout/drift-check.js';
import type { PaymentGateway } from './payments/gateway.js';
import { SandboxGateway } from './payments/sandbox-gateway.js';
import { RedisSandboxBook } from './payments/redis-sandbox-book.js';
import { StripeGateway } from './payments/stripe-gateway.js';
import { PacedGateway, type BucketSpec, type TokenBucketOptions } from './payments/pacing.js';
import { SharedBucket } from './payments/shared-pacing.js';
import { DeadlineGateway } from './payments/deadline.js';
import { PaymentService } from './payments/payment-service.js';
import { VoidSweeper } from './payments/void-sweeper.js';
import { ProofOfWork } from './defence/proof-of-work.js';
import { BotSignals, type BotSignalsOptions } from './defence/bot-signals.js';
import { SiteverifyCaptcha } from './defence/captcha.js';
import { DefenceGate } from './defence/entry-gate.js';
import { RateLimits, type RateLimitsOptions } from './defence/rate-limits.js';

export interface RuntimeOptions {
  config: Readonly<Config>;
  /** Use this engine instead of the one the configuration names (tests). */
  engine?: Engine;
  /** Use this ledger instead of the one the configuration names (tests). */
  ledger?: Ledger;
  gateway?: PaymentGateway;
  /** This node's own clock (tests skew it to prove the engine's clock rules). */
  localClock?: () => number;
  gate?: EntryGate;
  botSignals?: BotSignalsOptions;
  rateLimits?: Pick<RateLimitsOptions, 'buckets'>;
  /** Background loops: monitor polling, admission, sweepers. On by default. */
  workers?: boolean;
  log?: Logger;
}

export interface Logger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

const silent: Logger = { info() {}, warn() {}, error() {} };

export class Runtime {
  readonly nodeId = `${hostname()}-${process.pid}-${randomUUID().slice(0, 6)}`;
  readonly traffic = new SaleTraffic();
  readonly clock: EngineClock;
  readonly auth: Auth;
  readonly sales: SaleService;
  readonly monitor: SaleMonitor;
  readonly queue: QueueService;
  readonly sse: SseHub;
  readonly admission: AdmissionController;
  readonly payments: PaymentService;
  readonly checkout: CheckoutService;
  readonly holdSweeper: HoldSweeper;
  readonly driftCheck: DriftCheck;
  readonly voidSweeper: VoidSweeper;
  readonly pow: ProofOfWork;
  readonly botSignals: BotSignals;
  /** Per-node limits (addresses, reads) and shared ones (purchase, enter: one budget across nodes). */
  readonly localLimits: RateLimits;
  readonly sharedLimits: RateLimits;
  readonly passes: AdmissionPassSigner;
  /** The admin's live counters of a sale. */
  readonly stats: SaleStats;
  /** Every node's live counters (node-figures.ts). */
  readonly figures: NodeFigures;
  /** Keeps every current sale loaded in the engine and watched. */
  readonly follower: SaleFollower;
  /** Publishes the outbox to NATS JetStream when NATS_URL is set. */
  readonly outbox: OutboxRelay | null;
  private closed = false;
  /** Set on SIGTERM: readiness answers 503 so the balancer sends no new requests, while this node still serves. */
  draining = false;

  /** The engine as the tiers use it (a lost sale is rebuilt on first touch). */
  readonly engine: Engine;

  private constructor(
    readonly config: Readonly<Config>,
    engine: Engine,
    readonly ledger: Ledger,
    readonly gateway: PaymentGateway,
    private readonly redis: ReturnType<typeof createRedis> | null,
    private readonly opts: RuntimeOptions,
    readonly log: Logger,
    readonly metrics: Metrics,
  ) {
    this.clock = new EngineClock(engine, opts.localClock);
    this.auth = new Auth(config);
    this.sales = new SaleService(engine, ledger, this.clock);
    // The other tiers' engine: a sale it lost (Redis restarted empty) is rebuilt from the ledger on first touch.
    engine = rebuildOnMissing(
      engine,
      (saleId) => this.sales.rebuild(saleId),
      (saleId) => log.warn({ saleId }, 'the engine did not have the sale: rebuilt from the ledger'),
    );
    this.engine = engine;
    this.monitor = new SaleMonitor(engine, this.clock, { onError: (err, saleId) => log.warn({ err, saleId }, 'engine snapshot failed') });
    this.passes = new AdmissionPassSigner(config.ticketSecret);
    this.pow = new ProofOfWork({ hmacKey: config.ticketSecret, engine });
    // STAMPEDE_IP_RATE_LIMIT=0 means traffic comes from one address (a load test): then the
    // accounts-per-address signal would flag everyone, so it is off with the limit.
    this.botSignals = new BotSignals({ ...(config.ipRateLimit === 0 ? { maxAccountsPerIp: Number.MAX_SAFE_INTEGER } : {}), ...opts.botSignals });
    const captcha = (provider: 'turnstile' | 'hcaptcha' | 'recaptcha') =>
      config.captchaSecret ? new SiteverifyCaptcha({ provider, secret: config.captchaSecret, verifyUrl: config.captchaVerifyUrl ?? undefined }) : null;
    const gate = opts.gate ?? new DefenceGate(this.pow, this.botSignals, captcha);
    // The waiting room asks checkout for a buyer's order; checkout is built below, so the port defers to it.
    const liveOrders = { liveOrderOf: (saleId: string, userId: string) => this.checkout.liveOrderOf(saleId, userId) };
    this.queue = new QueueService(engine, this.monitor, this.clock, this.sales, new TicketSigner(config.ticketSecret), this.passes, gate, liveOrders);
    this.sse = new SseHub(this.monitor, {
      streamsPerAddress: config.streamsPerAddress,
      onCount: (n) => this.metrics.sseConnections.set(n),
      onError: (err, saleId) => log.warn({ err, saleId }, 'looking up drawn places for event streams failed'),
    });
    this.admission = new AdmissionController(engine, this.monitor, {
      nodeId: this.nodeId,
      onError: (err) => log.error({ err }, 'admission step failed'),
      onAdmitted: (saleId) => void this.monitor.refresh(saleId),
    });
    const rl = {
      keyPrefix: `${config.production ? '' : 'dev:'}${config.redisPrefix}:rl:${engine.kind === 'redis' ? 'shared' : this.nodeId}`,
      ...opts.rateLimits,
    };
    this.localLimits = new RateLimits({
      ...rl,
      ipPerSec: config.ipRateLimit,
      buckets: { purchase: [], enter: [], ...pickBuckets(opts.rateLimits, ['ip', 'read']) },
    });
    this.sharedLimits = new RateLimits({
      ...rl,
      ipPerSec: 0,
      redis: this.redis ?? undefined,
      buckets: { read: [], ...pickBuckets(opts.rateLimits, ['purchase', 'enter']) },
    });
    this.payments = new PaymentService(ledger, gateway, this.clock, log);
    this.payments.usePorts({
      verify: (saleId, token, userId) => this.queue.verify(saleId, token, userId),
      live: (saleId) => this.queue.live(saleId),
      sale: (saleId) => this.sales.get(saleId),
    });
    this.checkout = new CheckoutService(engine, ledger, this.clock, this.sales, this.queue, this.monitor, this.payments, this.sharedLimits, log);
    // Settling a capture asks whether its order still owns it.
    this.payments.useOrders({ order: (id) => this.checkout.order(id) });
    this.holdSweeper = new HoldSweeper(engine, ledger, this.clock, this.monitor, this.checkout, this.payments, log);
    this.voidSweeper = new VoidSweeper(this.checkout, this.monitor, this.payments);
    this.driftCheck = new DriftCheck(engine, ledger, this.sales, log);
    this.outbox = config.natsUrl ? new OutboxRelay(ledger, { url: config.natsUrl }) : null;
    this.sales.useCancellation({
      announce: (saleId) => this.monitor.refresh(saleId),
      endReserved: (saleId) => this.checkout.endReserved(saleId, 'cancelled'),
      voidOpen: async (saleId) => {
        let voided = 0;
        for (let n; (n = await this.payments.voidOpen({ saleId, reason: 'cancelled', limit: 500 })) > 0;) voided += n;
        return voided;
      },
    });
    this.follower = new SaleFollower(this.sales, this.monitor, this.clock, log, config.engineRetentionSec * 1000);
    this.figures = new NodeFigures(redis && { client: redis, key: (saleId) => `${config.redisPrefix}:{sale:${saleId}}:nodes` }, {
      counts: (saleId) => ({ ...this.traffic.read(saleId), streams: this.sse.streamsOf(saleId) }),
      sales: () => [...new Set([...this.traffic.recentSales(), ...this.sse.saleIds()])],
    });
    this.stats = new SaleStats({
      sales: this.sales,
      monitor: this.monitor,
      clock: this.clock,
      checkout: this.checkout,
      payments: this.payments,
      figures: this.figures,
    });
  }

  /** Opens the engine and ledger the configuration names (or the ones given) and wires a node. */
  static async create(opts: RuntimeOptions): Promise<Runtime> {
    const { config } = opts;
    // An outage fails every call at once, in requests and background passes alike: said once, at warn.
    const log = quietDuringOutages(opts.log ?? silent);
    let redis: ReturnType<typeof createRedis> | null = null;
    let engine = opts.engine;
    if (!engine) {
      if (config.redisUrl || config.redisClusterNodes.length) {
        redis = createRedis({
          url: config.redisUrl ?? undefined,
          clusterNodes: config.redisClusterNodes,
          onError: (err) => log.warn({ err }, 'Redis connection failed; reconnecting'),
        });
        // Commands are refused until the client is connected (no offline queue): wait for it.
        await untilReady(redis).catch((err: unknown) => {
          redis!.disconnect();
          throw err;
        });
        engine = new RedisEngine(redis, { ownsClient: true, prefix: config.redisPrefix });
      } else {
        engine = new MemoryEngine();
      }
    } else if (engine instanceof RedisEngine) {
      redis = engine.client;
    }
    const ledger =
      opts.ledger ?? (await openLedger({ databaseUrl: config.databaseUrl ?? undefined, dataDir: config.databaseUrl ? undefined : config.dataDir }));
    // On Redis the sandbox's book goes beside the engine's keys, on its connection and under its prefix.
    const gateway = opts.gateway ?? defaultGateway(config, engine instanceof RedisEngine ? { client: engine.client, prefix: engine.keys.prefix } : null, log);
    const metrics = new Metrics({ defaults: opts.workers !== false && !opts.engine });
    const runtime = new Runtime(
      config,
      instrument(engine, metrics.engineDuration),
      instrument(ledger, metrics.ledgerDuration),
      gateway,
      redis,
      opts,
      log,
      metrics,
    );
    await runtime.auth.init();
    return runtime;
  }

  /** Whether this node runs the background loops (the tier plugins start them when the app is ready). */
  get workers(): boolean {
    return this.opts.workers !== false;
  }

  /** Syncs the clock and loads every current sale into the engine. The loops start with the app. */
  async start(): Promise<void> {
    await this.clock.sync();
    await this.follower.discover();
    this.figures.start();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.monitor.stop();
    this.figures.stop();
    await this.admission.stop();
    this.sse.close();
    await this.outbox?.close();
    if (!this.opts.engine) await this.engine.close();
    if (!this.opts.ledger) await this.ledger.close();
  }
}

/**
 * The configured card network. On Redis the sandbox keeps its book there, so every node sees one
 * network, and the pacing toward the processor is one budget for every node (shared-pacing.ts).
 */
function defaultGateway(config: Readonly<Config>, redis: { client: ReturnType<typeof createRedis>; prefix: string } | null, log: Logger): PaymentGateway {
  const network =
    config.paymentGateway === 'stripe'
      ? new StripeGateway({ apiKey: config.stripeApiKey! })
      : // A card network's round trip is ~25 ms ± 10; at 0 the sandbox answers at once (and without jitter).
        new SandboxGateway({
          latencyMs: config.sandboxLatencyMs,
          jitterMs: config.sandboxLatencyMs === 0 ? 0 : 10,
          timeoutRate: config.sandboxTimeoutPercent / 100,
          timeoutMs: config.sandboxTimeoutMs,
          book: redis ? new RedisSandboxBook(redis.client, { prefix: redis.prefix }) : undefined,
        });
  // Every call has a deadline (SPEC §6): a card network that hangs gets a 503 within 2 s, not a hung checkout.
  const inner = new DeadlineGateway(network);
  // Processors rate-limit (Stripe: ~100/s live, 25/s per endpoint); over budget we wait in line.
  const budget = (name: string, opts: TokenBucketOptions): BucketSpec =>
    redis ? new SharedBucket({ ...opts, client: redis.client, key: `${redis.prefix}:pace:${config.paymentGateway}:${name}`, log }) : opts;
  return config.paymentGateway === 'stripe'
    ? new PacedGateway(inner, {
        shared: budget('shared', { ratePerSec: 90, burst: 20 }),
        // Reads have a budget of their own at Stripe (search a smaller one): a void's check of its intent costs no write.
        perOperation: {
          authorize: budget('authorize', { ratePerSec: 25, burst: 5 }),
          capture: budget('capture', { ratePerSec: 25, burst: 5 }),
          retrieve: budget('retrieve', { ratePerSec: 90, burst: 20 }),
          lookup: budget('lookup', { ratePerSec: 15, burst: 5 }),
        },
      })
    : new PacedGateway(inner, { shared: budget('shared', { ratePerSec: 2000, burst: 500 }) });
}

function pickBuckets(opts: RuntimeOptions['rateLimits'], names: string[]) {
  return Object.fromEntries(Object.entries(opts?.buckets ?? {}).filter(([k]) => names.includes(k)));
}
