/**
 * A log of watermark advances, `[watermark after the step, time of the step]` in order: the
 * engine's own, and each node's copy of it (the sale monitor reads it with each snapshot).
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

/** The advances past watermark `above`, in order (a copy). */
export function advancesAbove(log: WatermarkLog, above: number): WatermarkLog {
  if (!log.length || log[log.length - 1][0] <= above) return [];
  return log.slice(firstReaching(log, above + 1));
}
