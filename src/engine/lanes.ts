/**
 * Queue lanes: one sale's queue spread over S counters (a mega-drop, `queue.shards` > 1), so its
 * entries land on S Redis hash slots instead of one. Both engines use this arithmetic; the Redis
 * engine's `enterLane` and `admit` scripts repeat it in Lua, and the contract suite holds the two
 * together.
 *
 * A user's lane is fixed by their id (`laneOf`), so entering again finds the same place. Lane k's
 * n-th entrant gets place `(n − 1) × S + k + 1`: the lanes' places interleave, and place p belongs
 * to lane `(p − 1) mod S`. Within a lane the order is exact; across lanes a place is off by how far
 * the lanes' counts drift apart (docs/capacity.md measures it).
 *
 * A lane whose next place would land at or below the admission watermark skips ahead past it (a
 * lane that fell behind, or lost its counter): the skipped numbers are holes below the line, never
 * admitted and never counted as waiting, and nobody arriving late is let in ahead of the line.
 * Above the watermark, each lane's places 1..seq are all taken (holes exist only below it), so the
 * admission step counts waiting people exactly from the lanes' counters.
 */

/** FNV-1a (32 bit) of the id's UTF-16 code units: cheap, stable, and the same in every process. */
export function laneOf(userId: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    h ^= userId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}

/** The place of lane `lane`'s `seq`-th number. */
export const lanePlace = (seq: number, lane: number, shards: number) => (seq - 1) * shards + lane + 1;

/** How many of lane `lane`'s numbers lie at or below place `w`. */
export const laneNumbersUpTo = (w: number, lane: number, shards: number) => (w >= lane + 1 ? Math.floor((w - lane - 1) / shards) + 1 : 0);

/** The first number lane `lane` may hand out with the watermark at `floor`: its place is above it. */
export const laneFirstAbove = (floor: number, lane: number, shards: number) => laneNumbersUpTo(floor, lane, shards) + 1;

/** Taken places at or below `w`, given each lane's last number (`seqs[k]`). */
export function takenUpTo(w: number, seqs: number[]): number {
  let n = 0;
  for (let k = 0; k < seqs.length; k++) n += Math.min(seqs[k], laneNumbersUpTo(w, k, seqs.length));
  return n;
}

/** The highest place handed out. */
export function topPlace(seqs: number[]): number {
  let top = 0;
  for (let k = 0; k < seqs.length; k++) if (seqs[k] > 0) top = Math.max(top, lanePlace(seqs[k], k, seqs.length));
  return top;
}

/**
 * One admission step over lanes: the lowest watermark above `watermark` that lets in `n` of the
 * people waiting (all of them when fewer wait), and their places in place order.
 */
export function advanceOverLanes(watermark: number, n: number, seqs: number[]): { watermark: number; places: number[] } {
  const top = topPlace(seqs);
  if (n <= 0 || top <= watermark) return { watermark, places: [] };
  const below = takenUpTo(watermark, seqs);
  let lo = watermark + 1;
  let hi = top;
  if (takenUpTo(hi, seqs) - below > n) {
    // The smallest w with taken(w) − below ≥ n.
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (takenUpTo(mid, seqs) - below >= n) hi = mid;
      else lo = mid + 1;
    }
  }
  const places: number[] = [];
  const S = seqs.length;
  for (let k = 0; k < S; k++) {
    const upTo = Math.min(seqs[k], laneNumbersUpTo(hi, k, S));
    for (let seq = Math.min(seqs[k], laneNumbersUpTo(watermark, k, S)) + 1; seq <= upTo; seq++) places.push(lanePlace(seq, k, S));
  }
  places.sort((a, b) => a - b);
  return { watermark: hi, places };
}
