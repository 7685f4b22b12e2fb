/**
 * Requests per second and refusals by reason, per sale, over the last minute on this node —
 * the live counters of the admin stats and the dashboard's charts.
 */
const WINDOW_SEC = 60;

interface Counts {
  seconds: Int32Array;
  stamp: Float64Array;
  rejections: Map<string, number>;
}

export class SaleTraffic {
  private readonly sales = new Map<string, Counts>();

  record(saleId: string, code?: string): void {
    let c = this.sales.get(saleId);
    if (!c) this.sales.set(saleId, (c = { seconds: new Int32Array(WINDOW_SEC), stamp: new Float64Array(WINDOW_SEC), rejections: new Map() }));
    const sec = Math.floor(Date.now() / 1000);
    const slot = sec % WINDOW_SEC;
    if (c.stamp[slot] !== sec) {
      c.stamp[slot] = sec;
      c.seconds[slot] = 0;
    }
    c.seconds[slot]++;
    if (code) c.rejections.set(code, (c.rejections.get(code) ?? 0) + 1);
  }

  /** The sales this node counted a request of in the last minute. */
  recentSales(): string[] {
    const since = Math.floor(Date.now() / 1000) - WINDOW_SEC;
    const recent: string[] = [];
    for (const [saleId, c] of this.sales) if (c.stamp.some((s) => s > since)) recent.push(saleId);
    return recent;
  }

  /** Mean requests per second over the last `overSec` whole seconds, and all refusals so far. */
  read(saleId: string, overSec = 5): { requestsPerSec: number; rejections: Record<string, number> } {
    const c = this.sales.get(saleId);
    if (!c) return { requestsPerSec: 0, rejections: {} };
    const now = Math.floor(Date.now() / 1000);
    let total = 0;
    for (let s = now - overSec; s < now; s++) {
      const slot = ((s % WINDOW_SEC) + WINDOW_SEC) % WINDOW_SEC;
      if (c.stamp[slot] === s) total += c.seconds[slot];
    }
    return { requestsPerSec: total / overSec, rejections: Object.fromEntries(c.rejections) };
  }
}
