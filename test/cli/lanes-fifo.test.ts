/**
 * The FIFO-deviation measure of queue lanes (tools/lanes-fifo.ts): exact on hand-made orders,
 * and on the engine's own places zero for one lane and not zero for three.
 */
import { expect, it } from 'vitest';
import { fifoDeviation, main } from '../../tools/lanes-fifo.js';

it('counts who got ahead of an earlier arrival, the largest head start lost and the rank displacement', () => {
  expect(fifoDeviation([1, 2, 3, 4], 1)).toEqual({ shards: 1, users: 4, overtaking: 0, lostArrivals: 0, displacement: { p50: 0, p99: 0, max: 0 } });
  // Arrival 1 and 2 got places 1 and 2, ahead of arrival 0 (place 3); arrival 3 (place 4) did not.
  expect(fifoDeviation([3, 1, 2, 4], 2)).toMatchObject({ overtaking: 2, lostArrivals: 2, displacement: { max: 2 } });
  // Equal places (a shadow place looks like the next real one) are no overtaking.
  expect(fifoDeviation([2, 2, 3], 1)).toMatchObject({ overtaking: 0, lostArrivals: 0 });
});

it("on the engine's places: one lane is exact, three lanes drift", async () => {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => (lines.push(chunk), true)) as typeof process.stdout.write;
  try {
    expect(await main(['--users', '3000', '--shards', '1,3'])).toBe(0);
  } finally {
    process.stdout.write = write;
  }
  const rows = lines
    .join('')
    .split('\n')
    .filter((l) => /^\| \d+ \|/.test(l));
  expect(rows[0]).toBe('| 1 | 0 (0.0 %) | 0 arrivals = 0 ms | 0 / 0 / 0 |');
  expect(rows[1]).toMatch(/^\| 3 \| [1-9]/);
});
