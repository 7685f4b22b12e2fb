/** The two waiting limits every tier shares: a deadline on a call, and a bound on calls at once. */
import { expect, it } from 'vitest';
import { countEach, withDeadline } from '../src/async-limits.js';

it('withDeadline answers with the call when it is in time, and with late() when it is not (the call runs on)', async () => {
  expect(await withDeadline(Promise.resolve(7), 1000, () => new Error('late'))).toBe(7);
  await expect(withDeadline(Promise.reject(new Error('refused')), 1000, () => new Error('late'))).rejects.toThrow('refused');
  let finished = false;
  const slow = new Promise<void>((r) => setTimeout(r, 200)).then(() => void (finished = true));
  await expect(withDeadline(slow, 10, () => new Error('late'))).rejects.toThrow('late');
  await slow;
  expect(finished).toBe(true);
});

it('countEach never runs more than its limit at once, reaches every item, and counts the true answers', async () => {
  let running = 0;
  let most = 0;
  const seen: number[] = [];
  const items = Array.from({ length: 57 }, (_, i) => i);
  const yes = await countEach(items, 5, async (i) => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, i % 3));
    running--;
    seen.push(i);
    return i % 2 === 0;
  });
  expect(most).toBe(5);
  expect(seen.sort((a, b) => a - b)).toEqual(items);
  expect(yes).toBe(29);
  expect(await countEach([], 5, async () => true)).toBe(0);
});
