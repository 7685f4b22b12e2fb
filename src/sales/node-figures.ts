/**
 * The live counters only a node can count — requests per second, refusals by reason, event
 * streams held — summed over every node (and every worker process) for the admin's stats. Each
 * node writes its own figures of each sale it served lately, once a second, into one Redis hash
 * per sale (field: the node's id, in the sale's slot, gone 10 s after the last write); a read sums
 * the fields written in the last 5 s, this node's own taken live. On the embedded engine there is
 * one node, and its own figures are the sum.
 *
 * Counters, not decisions: a write or read Redis refuses is skipped (the next second tries again),
 * and a read that fails answers this node's own figures, saying how many nodes they cover.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

export interface NodeCounts {
  requestsPerSec: number;
  rejections: Record<string, number>;
  streams: number;
}

/** Figures older than this are a node that stopped (or lost Redis): not counted. */
const FRESH_MS = 5000;
const KEEP_MS = 10_000;
export const PUBLISH_EVERY_MS = 1000;

export class NodeFigures {
  readonly nodeId = randomUUID().slice(0, 12);
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: { client: Redis | Cluster; key: (saleId: string) => string } | null,
    /** This node's figures for a sale, and the sales it has figures for. */
    private readonly own: { counts(saleId: string): NodeCounts; sales(): string[] },
  ) {}

  /** Starts writing this node's figures every second (nothing to do without Redis). */
  start(): void {
    if (!this.redis || this.timer) return;
    this.timer = setInterval(() => void this.publish(), PUBLISH_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Writes this node's figures of every sale it counted lately. */
  async publish(): Promise<void> {
    if (!this.redis) return;
    const { client, key } = this.redis;
    await Promise.all(
      this.own.sales().map(async (saleId) => {
        const k = key(saleId);
        try {
          // One transaction: a node that dies between the two must not leave the hash without its expiry.
          const reply = await client
            .multi()
            .hset(k, this.nodeId, JSON.stringify({ ...this.own.counts(saleId), at: Date.now() }))
            .pexpire(k, KEEP_MS)
            .exec();
          if (!reply) throw new Error('transaction aborted');
        } catch {
          // A counter: the next second writes again.
        }
      }),
    );
  }

  /** Every node's figures of the sale, summed (this node's live), and how many nodes they cover. */
  async read(saleId: string): Promise<NodeCounts & { nodes: number }> {
    const mine = this.own.counts(saleId);
    if (!this.redis) return { ...mine, nodes: 1 };
    let fields: Record<string, string>;
    try {
      fields = await this.redis.client.hgetall(this.redis.key(saleId));
    } catch {
      return { ...mine, nodes: 1 };
    }
    const sum: NodeCounts & { nodes: number } = { requestsPerSec: mine.requestsPerSec, rejections: { ...mine.rejections }, streams: mine.streams, nodes: 1 };
    const now = Date.now();
    for (const [node, raw] of Object.entries(fields)) {
      if (node === this.nodeId) continue;
      let other: NodeCounts & { at: number };
      try {
        other = JSON.parse(raw);
      } catch {
        continue;
      }
      // Node clocks differ a little; a stopped node's last write ages out.
      if (!(Math.abs(now - other.at) <= FRESH_MS)) continue;
      sum.nodes += 1;
      sum.requestsPerSec += Number(other.requestsPerSec) || 0;
      sum.streams += Number(other.streams) || 0;
      for (const [code, n] of Object.entries(other.rejections ?? {})) sum.rejections[code] = (sum.rejections[code] ?? 0) + (Number(n) || 0);
    }
    return sum;
  }
}
