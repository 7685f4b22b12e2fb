/**
 * Solves the sale's proof-of-work for the simulated shoppers, as their browsers would, with the
 * server's own `solveChallenge`. Solving is real CPU work (about 1 µs a hash here, difficulty 1
 * ≈ 2,500 hashes), so it runs in worker threads to keep the event loop that times every request
 * free. On a small machine the shoppers' solving competes with the server for the same cores,
 * and a backlog of challenges waiting for a worker delays arrivals: both are in the report.
 */
import { Worker } from 'node:worker_threads';
import { solveChallenge, type PowChallenge } from '../../src/defence/proof-of-work.js';
import { Samples } from '../samples.js';
import { now } from './client.js';

// Worker threads do not inherit tsx's loader: the worker registers it, then loads the TypeScript.
const WORKER_BOOT = `
  const { workerData } = require('node:worker_threads');
  import('tsx/esm/api').then(({ register }) => { register(); return import(workerData.url); });
`;

export class Solver {
  /** Time to solve one challenge once it was fetched (ms). */
  readonly solveMs = new Samples();
  private readonly workers: Worker[] = [];
  private readonly load = new Map<Worker, number>();
  private slots: number;
  private readonly queue: Array<() => void> = [];
  private readonly pending = new Map<number, (r: { payload?: string; error?: string }) => void>();
  private next = 0;

  /** `threads` 0 solves on the calling thread (tests, where workers cannot load TypeScript). */
  constructor(threads: number) {
    // A few challenges per worker in hand at once: fetching overlaps solving, and none waits long.
    this.slots = threads * 4;
    for (let i = 0; i < threads; i++) {
      const w = new Worker(WORKER_BOOT, { eval: true, workerData: { url: new URL('./pow-worker.ts', import.meta.url).href } });
      w.on('error', (err) => {
        for (const [id, r] of this.pending) {
          r({ error: String(err) });
          this.pending.delete(id);
        }
      });
      w.on('message', ({ id, payload, error }) => {
        this.pending.get(id)?.({ payload, error });
        this.pending.delete(id);
        this.load.set(w, this.load.get(w)! - 1);
      });
      this.workers.push(w);
      this.load.set(w, 0);
    }
  }

  /**
   * Fetches a challenge once a worker is free, then solves it: the server dates a challenge
   * from its issue, so a challenge must not wait in our queue (a bot would look slow, a person
   * would see it expire). Null when `fetch` says the sale asks for none.
   */
  async solve(fetch: () => Promise<PowChallenge | null>): Promise<string | null> {
    if (!this.workers.length) {
      const challenge = await fetch();
      if (!challenge) return null;
      const started = now();
      const payload = await solveChallenge(challenge);
      this.solveMs.add(now() - started);
      return payload;
    }
    await this.acquire();
    try {
      const challenge = await fetch();
      if (!challenge) return null;
      const started = now();
      const w = this.workers.reduce((a, b) => (this.load.get(b)! < this.load.get(a)! ? b : a));
      this.load.set(w, this.load.get(w)! + 1);
      const id = this.next++;
      const r = await new Promise<{ payload?: string; error?: string }>((resolve) => {
        this.pending.set(id, resolve);
        w.postMessage({ id, challenge });
      });
      if (!r.payload) throw new Error(r.error ?? 'no solution');
      this.solveMs.add(now() - started);
      return r.payload;
    } finally {
      this.release();
    }
  }

  /** Challenges waiting for a free worker right now. */
  get backlog(): number {
    return this.queue.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private acquire(): Promise<void> {
    if (this.slots > 0) {
      this.slots--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push(resolve));
  }

  private release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.slots++;
  }
}
