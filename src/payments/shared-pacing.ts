/**
 * Pacing shared by every node. A processor's limit is per account, not per node: with N nodes each
 * pacing on its own, N × the limit reaches it at T=0 and the surplus captures are refused. So on
 * Redis the bucket lives there — one key per bucket, one script call per gateway call (GCRA:
 * `lua/pacing/pace-1.lua`) that reserves the next free slot and says how long to wait for it. The
 * waits happen here, in the node; the order is the order calls reached Redis.
 *
 * When Redis does not answer, a call is paced by the node's own bucket instead (logged once per
 * outage): a card network must not wait for Redis. That bucket has the whole rate, so N nodes
 * could send N times it — but with Redis down no hold is taken and no purchase starts, so the
 * calls still made are the few settling what was in flight.
 */
import type { Cluster, Redis } from 'ioredis';
import { isUnavailable } from '../errors.js';
import { defineScripts, loadScripts, type ScriptRunner } from '../engine/redis/script-loader.js';
import { GatewayUnavailableError } from './gateway.js';
import { TokenBucket, type Pacer, type TokenBucketOptions } from './pacing.js';

const scripts = loadScripts(new URL('../engine/redis/lua/pacing/', import.meta.url), { pace: 1 });

export interface SharedBucketOptions extends TokenBucketOptions {
  client: Redis | Cluster;
  /** The bucket's Redis key (one per processor account and budget). */
  key: string;
  log?: { warn(obj: object, msg: string): void };
}

export class SharedBucket implements Pacer {
  private readonly run: ScriptRunner<'pace'>;
  private readonly fallback: TokenBucket;
  private readonly intervalUs: number;
  private readonly maxWaitUs: number;
  private outage = false;
  private counters = { calls: 0, waited: 0, rejected: 0, waiting: 0 };

  constructor(private readonly opts: SharedBucketOptions) {
    if (!(opts.ratePerSec > 0) || !(opts.burst >= 1)) throw new RangeError('SharedBucket needs ratePerSec > 0 and burst >= 1');
    this.run = defineScripts(opts.client, scripts, 'pacing_');
    this.intervalUs = Math.max(1, Math.round(1_000_000 / opts.ratePerSec));
    this.maxWaitUs = opts.maxWaitMs === undefined || !Number.isFinite(opts.maxWaitMs) ? -1 : Math.round(opts.maxWaitMs * 1000);
    this.fallback = new TokenBucket(opts);
  }

  get calls(): number {
    return this.counters.calls;
  }

  get waited(): number {
    return this.counters.waited + this.fallback.waited;
  }

  get rejected(): number {
    return this.counters.rejected + this.fallback.rejected;
  }

  get queueLength(): number {
    return this.counters.waiting + this.fallback.queueLength;
  }

  async take(): Promise<void> {
    this.counters.calls += 1;
    let waitUs: number;
    try {
      waitUs = Number(await this.run('pace', [this.opts.key], [this.intervalUs, this.opts.burst, this.maxWaitUs]));
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      if (!this.outage) this.opts.log?.warn({ err, key: this.opts.key }, "payment pacing: Redis is not answering; pacing on this node's share until it does");
      this.outage = true;
      return this.fallback.take();
    }
    this.outage = false;
    if (waitUs < 0) {
      this.counters.rejected += 1;
      throw new GatewayUnavailableError(`Payment gateway pacing: the wait exceeds ${this.opts.maxWaitMs} ms`);
    }
    if (waitUs === 0) return;
    this.counters.waited += 1;
    this.counters.waiting += 1;
    try {
      await new Promise((r) => setTimeout(r, Math.ceil(waitUs / 1000)));
    } finally {
      this.counters.waiting -= 1;
    }
  }
}
