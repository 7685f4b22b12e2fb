/**
 * The one place Redis keys are built. Every key of one sale carries the hash tag `{sale:<id>}`,
 * so a sale lives in one Cluster slot and each script can touch all of its keys atomically.
 * Leases and used-once tokens are single-key and may live in any slot.
 */

/** The keys of one sale, by what they hold. */
export interface SaleKeys {
  /** Hash: the sale's settings and queue counters (startsAt … epoch, seq, watermark, carry, held). */
  meta: string;
  /** Hash sku → "quantity|perUserLimit|maxPerOrder". */
  items: string;
  /** Hash sku → units available. */
  stock: string;
  /** Hash holdId → JSON [userId, sku, quantity, expiresAt]. */
  holds: string;
  /** Zset holdId by expiresAt. */
  holdexp: string;
  /** Hash "user\tsku" → units held or confirmed. */
  peruser: string;
  /** Hash "user\tkey" → JSON [fingerprint, holdId]. */
  idem: string;
  /** Hash user → place (fifo entrants and those who came after the draw). */
  places: string;
  /** Zset pre-queue entrant by draw; once drawn, ZRANK + 1 is the place. */
  pre: string;
  /** Hash user → shadow place. */
  shadow: string;
  /** Hash bot-flag reason → count. */
  flags: string;
  /** Zset place by admittedAt: admitted tickets not yet used. */
  active: string;
  /** Zset "watermark:time" by watermark: when each advance happened. */
  wmlog: string;
  /** List of users who took a hold, append-only. */
  buyers: string;
}

/** The keys of one queue lane (a mega-drop sale's queue is spread over several). */
export interface LaneKeys {
  /** Hash: seq (the lane's last number), count (its entrants), flag:<reason> (its shadowed entrants). */
  counters: string;
  /** Hash user → place. */
  places: string;
  /** Hash user → shadow place. */
  shadow: string;
}

const SALE_PARTS = [
  'meta',
  'items',
  'stock',
  'holds',
  'holdexp',
  'peruser',
  'idem',
  'places',
  'pre',
  'shadow',
  'flags',
  'active',
  'wmlog',
  'buyers',
] as const satisfies ReadonlyArray<keyof SaleKeys>;

export class EngineKeys {
  constructor(readonly prefix = 'stampede') {}

  sale(saleId: string): SaleKeys {
    const base = `${this.prefix}:{sale:${saleId}}`;
    return Object.fromEntries(SALE_PARTS.map((part) => [part, `${base}:${part}`])) as unknown as SaleKeys;
  }

  /** Every key a sale may have (for dropping it). */
  allOfSale(saleId: string): string[] {
    const keys = this.sale(saleId);
    return SALE_PARTS.map((part) => keys[part]);
  }

  /**
   * The keys of one queue lane of a sale with lanes: in the lane's own slot (`{sale:<id>:<tag>}`,
   * the tag chosen when the sale was loaded so lanes land on different masters), and under the
   * queue's epoch, so a rebuilt queue starts its lanes afresh.
   */
  lane(saleId: string, tag: string, epoch: string): LaneKeys {
    const base = `${this.prefix}:{sale:${saleId}:${tag}}:${epoch}`;
    return { counters: `${base}:q`, places: `${base}:places`, shadow: `${base}:shadow` };
  }

  lease(name: string) {
    return `${this.prefix}:lease:${name}`;
  }

  once(token: string) {
    return `${this.prefix}:once:${token}`;
  }
}
