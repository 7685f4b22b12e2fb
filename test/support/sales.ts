import { randomUUID } from 'node:crypto';
import type { Engine, EngineSale, SaleLoad } from '../../src/engine/engine.js';

/** An open sale (started a second ago, ends in an hour) with generous queue settings. */
export function engineSale(overrides: Partial<EngineSale> = {}): EngineSale {
  const now = Date.now();
  return {
    id: randomUUID(),
    startsAt: now - 1000,
    endsAt: now + 3_600_000,
    cancelled: false,
    mode: 'fifo',
    admissionRatePerSec: 1_000_000,
    admittedTtlSec: 600,
    maxActive: 1_000_000,
    reservationTtlSec: 600,
    items: [{ sku: 'phone', quantity: 100, perUserLimit: 1, maxPerOrder: 1 }],
    ...overrides,
  };
}

export const freshLoad = (sale: EngineSale): SaleLoad => ({ sale, sold: {}, holds: [], perUser: [] });

/**
 * Calls `admit` until nobody is left waiting: it admits nothing twice running and the watermark
 * covers every entrant (or nothing moves for a while). A sale with queue lanes learns its
 * entrants at each step, and its places may have gaps, so the step runs at least twice.
 */
export async function admitAll(engine: Engine, saleId: string): Promise<number> {
  let still = 0;
  for (;;) {
    const { admitted } = await engine.admit(saleId);
    if (admitted > 0) {
      still = 0;
      continue;
    }
    const snap = await engine.snapshot(saleId, 0);
    if ((still > 0 && snap.watermark >= snap.entered) || ++still > 10) return snap.watermark;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Enters `n` users (u0..u{n-1}) and admits them all; returns their places by user id. */
export async function enterAndAdmit(engine: Engine, saleId: string, users: string[]): Promise<Map<string, number>> {
  const places = new Map<string, number>();
  for (const user of users) {
    const r = await engine.enterQueue(saleId, user, { draw: Math.random() });
    places.set(user, r.place);
  }
  await admitAll(engine, saleId);
  return places;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
