/**
 * A log of watermark advances, `[watermark after the step, time of the step]` in order: the
 * engine's own (embedded engine) and each node's picture of it (the sale monitor).
 */
export type WatermarkLog = Array<[watermark: number, at: number]>;

/** Index of the first advance that reached `place` (binary search); the last index when none did. */
export function firstReaching(log: WatermarkLog, place: number): number {
  let lo = 0;
  let hi = log.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (log[mid][0] >= place) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
