/**
 * One sale's hot state in the embedded engine, and the pure steps on it that several engine
 * methods share (the queue's counts, the pre-queue draw, lapsed admissions).
 */
import type { EngineHold, EngineSale } from '../engine.js';
import { firstReaching, type WatermarkLog } from '../watermark-log.js';

export interface SaleState {
  sale: EngineSale;
  epoch: string;
  stock: Map<string, number>;
  holds: Map<string, EngineHold>;
  perUser: Map<string, number>;
  idempotency: Map<string, { fingerprint: string; holdId: string }>;
  places: Map<string, number>;
  /** Pre-queue entrants and their lottery draws (randomized mode, before the draw). */
  prequeue: Map<string, number>;
  /** Drawn order of the pre-queue: user → place. */
  drawnPlaces: Map<string, number> | null;
  shadow: Map<string, number>;
  flags: Map<string, number>;
  seq: number;
  /**
   * Queue lanes (`queueShards` > 1): each lane's last number, its entrants (fewer: skipped numbers)
   * and its shadowed entrants by reason. As in Redis, the snapshot's entrants and flags are the
   * lanes' totals as of the last admission step (`laneEntered`, `flags`).
   */
  lanes: Array<{ seq: number; count: number; flags: Map<string, number> }>;
  laneEntered: number;
  laneWaiting: number;
  /** People the steps admitted, and those found admitted late (placed at or below the line): lanes only. */
  stepAdmitted: number;
  late: number;
  watermark: number;
  /** Watermark advances in order: [watermark after the step, time of the step]. */
  watermarkLog: WatermarkLog;
  /** Admitted, unused tickets: place → admitted at (a late admission has a placeholder: −its number). */
  active: Map<number, number>;
  lastTickAt: number;
  carry: number;
  buyers: string[];
}

/**
 * Drops admissions that lapsed unused and returns how many are still active. The map is in
 * admission order, so the lapsed ones are at its front: the cost is the number dropped.
 */
export function purgeLapsed(s: SaleState, now: number): number {
  const cutoff = now - s.sale.admittedTtlSec * 1000;
  for (const [place, at] of s.active) {
    if (at > cutoff) break;
    s.active.delete(place);
  }
  return s.active.size;
}

export function prequeued(s: SaleState): number {
  return s.drawnPlaces ? s.drawnPlaces.size : s.prequeue.size;
}

export function entered(s: SaleState): number {
  return prequeued(s) + (s.lanes.length ? s.laneEntered : s.seq);
}

/** The pre-queue lottery: places 1..n in the order of the entrants' uniform draws. */
export function draw(s: SaleState): void {
  if (s.drawnPlaces) return;
  const order = [...s.prequeue].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
  s.drawnPlaces = new Map(order.map(([user], i) => [user, i + 1]));
  s.prequeue.clear();
}

/** When the watermark first reached `place` (binary search of the advance log). */
export function admittedAt(s: SaleState, place: number): number {
  return s.watermarkLog[firstReaching(s.watermarkLog, place)]?.[1] ?? 0;
}
