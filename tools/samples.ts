/**
 * Measured values (latencies in ms, delays) kept whole in a growable typed array: a rehearsal
 * records a few hundred thousand, which costs a few MB, and exact percentiles beat a sketch
 * when the report is about the tail.
 */
export class Samples {
  private data = new Float64Array(1024);
  private n = 0;
  private sorted = true;

  get count(): number {
    return this.n;
  }

  add(v: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = v;
    this.sorted = false;
  }

  values(): Float64Array {
    if (!this.sorted) {
      this.data.subarray(0, this.n).sort();
      this.sorted = true;
    }
    return this.data.subarray(0, this.n);
  }

  /** The q-quantile (0..1) by nearest rank; NaN when empty. */
  quantile(q: number): number {
    const v = this.values();
    if (!v.length) return NaN;
    return v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
  }

  get max(): number {
    return this.n ? this.values()[this.n - 1] : NaN;
  }
  get mean(): number {
    let s = 0;
    for (let i = 0; i < this.n; i++) s += this.data[i];
    return this.n ? s / this.n : NaN;
  }

  summary(): Summary {
    return { count: this.n, p50: this.quantile(0.5), p90: this.quantile(0.9), p99: this.quantile(0.99), max: this.max, mean: this.mean };
  }

  /** Counts per bucket for a histogram chart: bucket edges grow by powers of two from `first`. */
  histogram(first = 1, buckets = 16): { edges: number[]; counts: number[] } {
    const edges = Array.from({ length: buckets }, (_, i) => first * 2 ** i);
    const counts = new Array(buckets + 1).fill(0);
    for (const v of this.values()) {
      let i = 0;
      while (i < buckets && v > edges[i]) i++;
      counts[i]++;
    }
    return { edges, counts };
  }
}

export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** `12.3` / `1,234` / `—` for a number of milliseconds in a table. */
export function ms(v: number): string {
  if (!Number.isFinite(v)) return '—';
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1);
}
