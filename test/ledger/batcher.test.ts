import { describe, expect, it } from 'vitest';
import { Batcher } from '../../src/ledger/batcher.js';

/** A runner that records each batch it got and answers synchronously, as PGlite does on this thread. */
function recording() {
  const batches: number[][] = [];
  const run = async (_key: string, inputs: number[]) => {
    batches.push([...inputs]);
    return inputs.map((n) => (n < 0 ? new Error(`bad ${n}`) : n * 10));
  };
  return { batches, run };
}

describe('Batcher', () => {
  it('runs an idle key at once, and gathers only behind a batch in flight (the default, for PostgreSQL)', async () => {
    const { batches, run } = recording();
    const b = new Batcher(run);
    const answers = await Promise.all([1, 2, 3].map((n) => b.submit('k', n)));
    expect(answers).toEqual([10, 20, 30]);
    expect(batches[0]).toEqual([1]);
    expect(batches.flat()).toEqual([1, 2, 3]);
  });

  it('with gatherTurn, every call of one turn goes in one batch, each answered in order, a failing input failing alone', async () => {
    const { batches, run } = recording();
    const b = new Batcher(run, { gatherTurn: true });
    const settled = await Promise.allSettled([1, -2, 3, 4].map((n) => b.submit('k', n)));
    expect(batches).toEqual([[1, -2, 3, 4]]);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual([10, 'bad -2', 30, 40]);
    // The key is idle again: the next turn's calls make the next batch, and other keys their own.
    const again = await Promise.all([b.submit('k', 5), b.submit('other', 6), b.submit('k', 7)]);
    expect(again).toEqual([50, 60, 70]);
    expect(batches.slice(1)).toEqual([[5, 7], [6]]);
  });

  it('with gatherTurn, no batch is larger than maxBatch and none is lost', async () => {
    const { batches, run } = recording();
    const b = new Batcher(run, { gatherTurn: true, maxBatch: 4 });
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit('k', i)));
    expect(answers).toEqual(Array.from({ length: 10 }, (_, i) => i * 10));
    expect(batches.map((x) => x.length)).toEqual([4, 4, 2]);
  });
});
