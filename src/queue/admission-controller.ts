/**
 * Moves each open sale's admission watermark forward. Any number of nodes run this loop; for
 * each sale only the holder of the sale's lease in the engine calls `admit`, and `admit` itself
 * takes its time and allowance from the engine, so two leaders racing for a moment still admit
 * at the configured rate and never past the active cap or the stock.
 */
import type { Engine } from '../engine/engine.js';
import type { LiveSale, SaleMonitor } from './sale-monitor.js';

export interface AdmissionControllerOptions {
  /** This node's name in the lease. */
  nodeId: string;
  tickMs?: number;
  leaseMs?: number;
  onError?: (err: unknown) => void;
  /** Called after a step that admitted someone (the monitor refreshes, so waiting streams hear at once). */
  onAdmitted?: (saleId: string) => void;
}

export class AdmissionController {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly leases = new Map<string, number>();

  constructor(
    private readonly engine: Engine,
    private readonly monitor: SaleMonitor,
    private readonly opts: AdmissionControllerOptions,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs ?? 100);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.leases.keys()].map((saleId) => this.engine.releaseLease(`admission:${saleId}`, this.opts.nodeId).catch(() => {})));
    this.leases.clear();
  }

  /** One pass over the watched sales. Exposed for tests. */
  async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const saleId of this.monitor.watched()) {
        // Each sale on its own: one whose shard (or one of whose lanes' masters) does not
        // answer must not stop the steps of the sales after it.
        try {
          const live = this.monitor.get(saleId);
          if (!live || !this.needsStep(live)) continue;
          if (!(await this.lead(saleId))) continue;
          const { admitted } = await this.engine.admit(saleId);
          if (admitted > 0) this.opts.onAdmitted?.(saleId);
        } catch (err) {
          this.opts.onError?.(err);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * An open sale with people waiting needs a step. A sale with queue lanes needs one every tick
   * until it sells out or ends, also before it opens: the step is what reads the lanes, so
   * until it runs nobody, not even this check, knows that anyone entered.
   */
  private needsStep(live: LiveSale): boolean {
    if (live.snapshot.queueShards > 1) return live.status === 'open' || live.status === 'scheduled';
    return live.status === 'open' && live.snapshot.waiting > 0;
  }

  /** Holds (renewing at a third of its life) the sale's admission lease. */
  private async lead(saleId: string): Promise<boolean> {
    const leaseMs = this.opts.leaseMs ?? 3000;
    const until = this.leases.get(saleId) ?? 0;
    const now = Date.now();
    if (until - now > (leaseMs * 2) / 3) return true;
    const mine = await this.engine.acquireLease(`admission:${saleId}`, this.opts.nodeId, leaseMs);
    if (mine) this.leases.set(saleId, now + leaseMs);
    else this.leases.delete(saleId);
    return mine;
  }
}
