/**
 * A node follows a sale (keeps it loaded and watched, so the hold sweeper sweeps it) until its
 * last reservation can have lapsed, and an hour more — not just an hour past its end, which
 * left holds of long reservation windows unswept for good.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { saleInput } from '../ledger/ledger.contract.js';
import { openStack, type Stack } from '../support/stack.js';

const HOUR = 3_600_000;
let stack: Stack;
beforeAll(async () => {
  stack = (await openStack('embedded', { workers: false }))!;
});
afterAll(async () => {
  await stack?.close();
});

it('follows an ended sale while its reservations can still lapse, and lets go an hour after', async () => {
  const now = Date.now();
  const ended = (reservationTtlSec: number) =>
    stack.runtime.ledger.createSale(saleInput({ startsAt: new Date(now - 4 * HOUR), endsAt: new Date(now - 2 * HOUR), reservationTtlSec }));
  // Ended two hours ago: a 10-minute window lapsed long ago, a 3-hour one has an hour to go.
  const shortWindow = await ended(600);
  const longWindow = await ended(3 * 3600);
  // The node's list of sales is a second old at most; written behind its back, wait that out.
  await new Promise((r) => setTimeout(r, 1100));
  await stack.runtime.follower.discover();
  expect(stack.runtime.monitor.watched()).toContain(longWindow.id);
  expect(stack.runtime.monitor.watched()).not.toContain(shortWindow.id);
});
