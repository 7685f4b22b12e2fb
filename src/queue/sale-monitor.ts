/**
 * Every node keeps a live picture of each running sale — watermark, stock, status — read from
 * the engine a few times a second in one snapshot call. Status, inventory and the SSE push are
 * served from this picture, so a shopper polling every second costs no engine call at all, and
 * a change is fanned out once to every connection on the node.
 */
import { EventEmitter } from 'node:events';
import type { Engine, SaleSnapshot } from '../engine/engine.js';
import type { EngineClock } from '../engine/engine-clock.js';
import type { SaleStatus } from '../sales/sale-schema.js';
import { firstReaching, type WatermarkLog } from '../engine/watermark-log.js';
import { isUnavailable } from '../errors.js';

export interface LiveSale {
  saleId: string;
  snapshot: SaleSnapshot;
  status: SaleStatus;
  /** Tickets admitted per second over the last few seconds. */
  drainPerSec: number;
  /**
   * Users who took a hold, with when this node first saw them (Date.now()). The sold-out fast
   * path must not answer them (they may be replaying), and the void sweeper spares new ones (a
   * hold is in the engine before its order is in the ledger).
   */
  buyers: Map<string, number>;
  soldOutSkus: Set<string>;
  /**
   * Set when reading the engine again failed: this is the last picture it gave, served as it is
   * (SPEC §6: waiting shoppers keep their answers while the engine is away). A picture read
   * afterwards replaces this one.
   */
  stale?: boolean;
}

export type ChangeKind = 'position' | 'inventory' | 'status';

export interface SaleMonitorEvents {
  change: [LiveSale, Set<ChangeKind>];
}

const DRAIN_WINDOW_MS = 10_000;

/** Status from the engine's view of the sale at engine time `now`. */
export function saleStatus(s: Pick<SaleSnapshot, 'cancelled' | 'startsAt' | 'endsAt' | 'remaining'>, now: number): SaleStatus {
  if (s.cancelled) return 'cancelled';
  if (now >= s.endsAt) return 'ended';
  if (now < s.startsAt) return 'scheduled';
  for (const units of Object.values(s.remaining)) if (units > 0) return 'open';
  return 'sold_out';
}

export class SaleMonitor extends EventEmitter<SaleMonitorEvents> {
  private readonly live = new Map<string, LiveSale>();
  private readonly history = new Map<string, Array<[number, number]>>();
  /** The engine's record of watermark advances, copied as snapshots bring it: [watermark, engine time]. */
  private readonly admissions = new Map<string, WatermarkLog>();
  private readonly inflight = new Map<string, Promise<LiveSale | undefined>>();
  private timer: NodeJS.Timeout | null = null;
  /** When reading the engine last failed for want of it (a deadline, a lost connection); null once a read succeeds. */
  private unavailableSince: number | null = null;

  constructor(
    private readonly engine: Engine,
    private readonly clock: EngineClock,
    private readonly opts: { intervalMs?: number; onError?: (err: unknown, saleId: string) => void } = {},
  ) {
    super();
    this.setMaxListeners(0);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const id of this.live.keys()) void this.refresh(id).catch((err: unknown) => this.opts.onError?.(err, id));
    }, this.opts.intervalMs ?? 100);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Starts following a sale (idempotent) and returns its first picture. */
  async watch(saleId: string): Promise<LiveSale | undefined> {
    return this.live.get(saleId) ?? this.refresh(saleId);
  }

  unwatch(saleId: string): void {
    this.live.delete(saleId);
    this.history.delete(saleId);
    this.admissions.delete(saleId);
    this.clock.forget(saleId);
  }

  get(saleId: string): LiveSale | undefined {
    const live = this.live.get(saleId);
    if (live) live.status = saleStatus(live.snapshot, this.clock.now(saleId));
    return live;
  }

  watched(): string[] {
    return [...this.live.keys()];
  }

  /** Whether the engine could not be read lately: a sale without a picture yet cannot get one now. */
  get engineUnavailable(): boolean {
    return this.unavailableSince !== null;
  }

  /** Reads the engine now (coalescing concurrent callers) and emits what changed. */
  refresh(saleId: string): Promise<LiveSale | undefined> {
    let p = this.inflight.get(saleId);
    if (!p) {
      p = this.read(saleId).finally(() => this.inflight.delete(saleId));
      this.inflight.set(saleId, p);
    }
    return p;
  }

  private async read(saleId: string): Promise<LiveSale | undefined> {
    const prev = this.live.get(saleId);
    const before = this.clock.localNow();
    let snap: SaleSnapshot;
    const log = this.admissions.get(saleId);
    try {
      snap = await this.engine.snapshot(saleId, prev?.snapshot.buyersNext ?? 0, log?.at(-1)?.[0] ?? 0);
      // The queue was rebuilt (a new epoch): its advances start again, so read them all.
      if (prev && prev.snapshot.epoch !== snap.epoch && log?.length) {
        this.admissions.delete(saleId);
        snap = await this.engine.snapshot(saleId, 0, 0);
      }
    } catch (err) {
      if (isUnavailable(err)) {
        this.unavailableSince ??= Date.now();
        if (prev) prev.stale = true;
      }
      this.opts.onError?.(err, saleId);
      return prev;
    }
    this.unavailableSince = null;
    const localAt = (before + this.clock.localNow()) / 2;
    this.clock.observe(snap.now, localAt, saleId);

    const buyers = prev?.buyers ?? new Map<string, number>();
    for (const user of snap.buyers) if (!buyers.has(user)) buyers.set(user, Date.now());
    const soldOutSkus = new Set(
      Object.entries(snap.remaining)
        .filter(([, n]) => n <= 0)
        .map(([sku]) => sku),
    );
    const next: LiveSale = {
      saleId,
      snapshot: snap,
      status: saleStatus(snap, this.clock.now(saleId)),
      drainPerSec: this.drain(saleId, snap.watermark, localAt),
      buyers,
      soldOutSkus,
    };
    this.live.set(saleId, next);

    // The engine's own record of the advances, so every node dates an admission alike.
    const advances = this.admissions.get(saleId) ?? [];
    for (const step of snap.advances) if (!advances.length || advances[advances.length - 1][0] < step[0]) advances.push(step);
    this.admissions.set(saleId, advances);

    const changes = new Set<ChangeKind>();
    // The pre-queue draw changes every pre-queue entrant's place at once: a position change.
    if (!prev || prev.snapshot.watermark !== snap.watermark || prev.snapshot.entered !== snap.entered || prev.snapshot.drawn !== snap.drawn)
      changes.add('position');
    if (!prev || JSON.stringify(prev.snapshot.remaining) !== JSON.stringify(snap.remaining)) changes.add('inventory');
    if (!prev || prev.status !== next.status) changes.add('status');
    if (changes.size) this.emit('change', next, changes);
    return next;
  }

  /**
   * When the watermark first reached `place` (engine time), from the engine's record of its
   * advances: the time the engine dates the admission by at purchase, the same on every node.
   */
  admittedAt(saleId: string, place: number): number | null {
    const log = this.admissions.get(saleId);
    if (!log?.length || log[log.length - 1][0] < place) return null;
    return log[firstReaching(log, place)][1];
  }

  private drain(saleId: string, watermark: number, at: number): number {
    let h = this.history.get(saleId);
    if (!h) this.history.set(saleId, (h = []));
    h.push([at, watermark]);
    while (h.length > 2 && at - h[0][0] > DRAIN_WINDOW_MS) h.shift();
    const [t0, w0] = h[0];
    return at - t0 >= 1000 ? ((watermark - w0) * 1000) / (at - t0) : 0;
  }
}
