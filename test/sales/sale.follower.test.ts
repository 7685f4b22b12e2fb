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

it("lets a past sale's engine data go after the retention period; a sale not started yet keeps it", async () => {
  const { SaleFollower } = await import('../../src/sales/sale-follower.js');
  const now = Date.now();
  const past = await stack.runtime.ledger.createSale(
    saleInput({ startsAt: new Date(now - 4 * HOUR), endsAt: new Date(now - 3 * HOUR), reservationTtlSec: 60 }),
  );
  const future = await stack.runtime.ledger.createSale(
    saleInput({ startsAt: new Date(now + 3 * HOUR), endsAt: new Date(now + 4 * HOUR), reservationTtlSec: 60 }),
  );
  await stack.runtime.sales.rebuild(past.id);
  await stack.runtime.sales.rebuild(future.id);
  await new Promise((r) => setTimeout(r, 1100));
  const silent = { info() {} };
  const follower = new SaleFollower(stack.runtime.sales, stack.runtime.monitor, stack.runtime.clock, silent, 50);
  await follower.discover();
  for (let i = 0; i < 100 && (await stack.runtime.engine.hasSale(past.id)); i++) await new Promise((r) => setTimeout(r, 50));
  expect(await stack.runtime.engine.hasSale(past.id)).toBe(false);
  expect(await stack.runtime.engine.hasSale(future.id)).toBe(true);
  // The ledger keeps the record for good.
  expect((await stack.runtime.ledger.getSale(past.id))?.id).toBe(past.id);
});
