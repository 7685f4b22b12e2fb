/**
 * Request rate limits, over rate-limiter-flexible. Each bucket is one or more fixed-window
 * limits that must all have room (a request spends one point of each, shortest window first); a request that finds none gets `RATE_LIMITED` (429) with a
 * `Retry-After`.
 *
 * SPEC §2: polling status every second or two must never be limited; a burst of dozens of
 * requests a second from one user or address is, and gets 429. The seed figures:
 *   ip        STAMPEDE_IP_RATE_LIMIT per second per client address (50 by default; 0 = off)
 *   read      20 per second per user or ticket: a page load bursts a handful of reads
 *             (detail, inventory, status) and 1/s polling uses 1 of 20; a loop does not fit
 *   purchase  1 per second AND 10 per minute per user: a double click is one purchase, and a
 *             script hammering checkout gets nowhere (idempotency answers honest retries)
 *   enter     5 per 10 seconds per user: entering again returns the same place, so more is noise
 *
 * With Redis the counters are shared by every API node (`RateLimiterRedis`); without, they live
 * in this process (`LocalWindow` below: synchronous, no timer per key). Two options keep Redis round trips off the hot path:
 *   - `inMemoryBlockOnConsumed = points`: once a key has spent its window, this node refuses it
 *     from memory until the window ends, with no Redis call. Safe: Redis would refuse it too,
 *     and we never reset a key early. A bot's flood costs us memory lookups, not Redis traffic.
 *   - `insuranceLimiter` (an in-memory limiter with the same figures) plus
 *     `rejectIfRedisNotReady`: when Redis is down or reconnecting, limits hold per node at once
 *     instead of queueing in ioredis or failing every request at the peak of a sale.
 */
import type { Cluster, Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { StampedeError } from '../errors.js';

/** The buckets the HTTP layer consumes from. */
export type RateBucket = 'ip' | 'read' | 'purchase' | 'enter';

/** One fixed-window limit: `points` requests per `durationSec` (whole seconds) per key. */
export interface RateLimit {
  points: number;
  durationSec: number;
}

/** The seed figures (see the file header). `ip` comes from `ipPerSec`. */
export const DEFAULT_RATE_BUCKETS: Readonly<Record<Exclude<RateBucket, 'ip'>, readonly RateLimit[]>> = {
  read: [{ points: 20, durationSec: 1 }],
  purchase: [
    { points: 1, durationSec: 1 },
    { points: 10, durationSec: 60 },
  ],
  enter: [{ points: 5, durationSec: 10 }],
};

/** Options of {@link RateLimits}. */
export interface RateLimitsOptions {
  /** Shared counters for every node; omit for one process (tests, `npm start`). */
  redis?: Redis | Cluster;
  /** Prefix of every Redis key (a test uses a unique one). */
  keyPrefix?: string;
  /** Requests per second per client address; 0 turns the `ip` bucket off (load tests). */
  ipPerSec?: number;
  /** Replaces a bucket's limits; an empty list turns that bucket off. */
  buckets?: Partial<Record<RateBucket, readonly RateLimit[]>>;
}

/**
 * One fixed-window limit kept in this process, as `RateLimiterMemory` counts it (a key's window
 * starts with its first request) but synchronous and without a timer per key: a status poll is
 * the commonest request of a drop, and the promise and timer of each consume were 2 % of it.
 * Keys live in two generations rotated every window, so a key is forgotten at most two windows
 * after its last request, without a sweep.
 */
export class LocalWindow {
  private current = new Map<string, { spent: number; resetAt: number }>();
  private older = new Map<string, { spent: number; resetAt: number }>();
  private rotateAt = 0;
  readonly points: number;
  readonly duration: number;
  private readonly windowMs: number;

  constructor(limit: RateLimit) {
    this.points = limit.points;
    this.duration = limit.durationSec;
    this.windowMs = limit.durationSec * 1000;
  }

  /** Spends one point of `key`; returns 0, or the ms until the key's window ends when it has none left. */
  take(key: string, now = performance.now()): number {
    if (now >= this.rotateAt) {
      // Everything in `older` began more than a window ago: all of it has ended.
      this.older = this.current;
      this.current = new Map();
      this.rotateAt = now + this.windowMs;
    }
    let w = this.current.get(key) ?? this.older.get(key);
    if (!w || w.resetAt <= now) this.current.set(key, (w = { spent: 0, resetAt: now + this.windowMs }));
    if (w.spent >= this.points) return w.resetAt - now;
    w.spent++;
    return 0;
  }
}

/** The rate limits of one API node. */
export class RateLimits {
  private readonly limiters = new Map<RateBucket, RateLimiterAbstract[]>();
  /** Without Redis: the same limits, kept here and spent synchronously. */
  private readonly local = new Map<RateBucket, LocalWindow[]>();
  private readonly shared: boolean;

  constructor(opts: RateLimitsOptions = {}) {
    const keyPrefix = opts.keyPrefix ?? 'stampede:rl';
    const ipPerSec = opts.ipPerSec ?? 50;
    const figures: Record<RateBucket, readonly RateLimit[]> = {
      ip: ipPerSec > 0 ? [{ points: ipPerSec, durationSec: 1 }] : [],
      ...DEFAULT_RATE_BUCKETS,
      ...opts.buckets,
    };
    this.shared = opts.redis !== undefined;
    for (const [bucket, limits] of Object.entries(figures) as Array<[RateBucket, readonly RateLimit[]]>) {
      const shortestFirst = [...limits].sort((a, b) => a.durationSec - b.durationSec);
      shortestFirst.forEach(check);
      if (opts.redis)
        this.limiters.set(
          bucket,
          shortestFirst.map((limit, i) => build(`${keyPrefix}:${bucket}:${i}`, limit, opts.redis!)),
        );
      else
        this.local.set(
          bucket,
          shortestFirst.map((limit) => new LocalWindow(limit)),
        );
    }
  }

  /** The limits in force for a bucket (for `X-RateLimit-*` headers and the admin page). */
  limits(bucket: RateBucket): RateLimit[] {
    return (this.limiters.get(bucket) ?? this.local.get(bucket) ?? []).map((l) => ({ points: l.points, durationSec: l.duration }));
  }

  /**
   * {@link consume} for limits kept in this process, without a promise: throws `RATE_LIMITED`
   * at once. Limits shared through Redis cannot answer synchronously: use `consume`.
   */
  spend(bucket: RateBucket, key: string): void {
    if (this.shared) throw new Error('shared rate limits are spent with consume()');
    const windows = this.local.get(bucket);
    if (!windows) return;
    // Monotonic: a wall clock stepped back would block every key counted for as long as the step.
    const now = performance.now();
    // Shortest window first, stopping at the first refusal (see consume).
    for (const w of windows) {
      const waitMs = w.take(key, now);
      if (waitMs > 0) throw new StampedeError('RATE_LIMITED', undefined, { retryAfter: Math.max(1, Math.ceil(waitMs / 1000)) });
    }
  }

  /**
   * Spends one request of `key` (an address, user or ticket id) in `bucket`. Throws
   * `RATE_LIMITED` with `retryAfter` (whole seconds, at least 1) when any of the bucket's
   * limits is spent.
   */
  async consume(bucket: RateBucket, key: string): Promise<void> {
    if (!this.shared) return this.spend(bucket, key);
    const limiters = this.limiters.get(bucket);
    if (!limiters || limiters.length === 0) return;
    // One limit after another, shortest window first: a request refused by the per-second
    // limit (a double click) does not also spend the per-minute budget, and a refused key is
    // answered from the in-memory block without touching Redis again.
    for (const limiter of limiters) {
      try {
        await limiter.consume(key);
      } catch (err) {
        if (err instanceof RateLimiterRes) {
          throw new StampedeError('RATE_LIMITED', undefined, { retryAfter: Math.max(1, Math.ceil(err.msBeforeNext / 1000)) });
        }
        // Only without a working insurance limiter; not the client's fault.
        throw new StampedeError('UNAVAILABLE', `rate limiter failed: ${(err as Error)?.message}`, { retryAfter: 1 });
      }
    }
  }
}

function check(limit: RateLimit): void {
  // Whole seconds: the Redis store sets its expiry with `EX`, which would round 0.5 s to 0.
  if (!Number.isInteger(limit.points) || limit.points < 1 || !Number.isInteger(limit.durationSec) || limit.durationSec < 1) {
    throw new RangeError(`a rate limit needs whole points ≥ 1 and whole durationSec ≥ 1, got ${JSON.stringify(limit)}`);
  }
}

function build(keyPrefix: string, limit: RateLimit, redis: Redis | Cluster): RateLimiterAbstract {
  const figures = { keyPrefix, points: limit.points, duration: limit.durationSec };
  return new RateLimiterRedis({
    ...figures,
    storeClient: redis,
    useRedisPackage: false,
    inMemoryBlockOnConsumed: limit.points,
    rejectIfRedisNotReady: true,
    insuranceLimiter: new RateLimiterMemory(figures),
  });
}
