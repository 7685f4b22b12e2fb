/**
 * The engine contract: one suite, run against the embedded engine and against Redis. Whatever
 * passes here is what the tiers may rely on; a caller must not be able to tell engines apart.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, ReserveRequest } from '../../src/engine/engine.js';
import { StampedeError } from '../../src/errors.js';
import { laneOf } from '../../src/engine/lanes.js';
import { admitAll, engineSale, enterAndAdmit, freshLoad, sleep } from '../support/sales.js';

export interface EngineFixture {
  engine: Engine;
  cleanup(): Promise<void>;
}

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'OK';
  } catch (e) {
    if (e instanceof StampedeError) return e.code;
    throw e;
  }
};

export function engineContract(name: string, open: () => Promise<EngineFixture | null>) {
  describe(`engine contract: ${name}`, () => {
    let fx: EngineFixture | null;
    let engine: Engine;
    beforeAll(async () => {
      fx = await open();
      if (fx) engine = fx.engine;
    });
    afterAll(async () => {
      await fx?.cleanup();
    });
    const test = (title: string, fn: () => Promise<void>, timeout?: number) =>
      it(
        title,
        async (ctx) => {
          if (!fx) return ctx.skip();
          await fn();
        },
        timeout,
      );

    const req = (userId: string, place: number, extra: Partial<ReserveRequest> = {}): ReserveRequest => ({
      userId,
      place,
      sku: 'phone',
      quantity: 1,
      idempotencyKey: randomUUID(),
      fingerprint: 'f',
      holdId: randomUUID(),
      ...extra,
    });

    test('loading a sale twice keeps the first state', async () => {
      const sale = engineSale();
      expect(await engine.loadSale(freshLoad(sale))).toBe(true);
      expect(await engine.hasSale(sale.id)).toBe(true);
      expect(await engine.loadSale(freshLoad({ ...sale, items: [{ ...sale.items[0], quantity: 5 }] }))).toBe(false);
      expect((await engine.snapshot(sale.id, 0)).remaining).toEqual({ phone: 100 });
      await engine.dropSale(sale.id);
      expect(await engine.hasSale(sale.id)).toBe(false);
      expect(await codeOf(engine.snapshot(sale.id, 0))).toBe('SALE_NOT_FOUND');
    });

    test('1,000 concurrent holds on a 100-unit item: exactly 100 succeed, the rest are sold out', async () => {
      const sale = engineSale();
      await engine.loadSale(freshLoad(sale));
      const users = Array.from({ length: 1000 }, (_, i) => `u${i}`);
      const places = await enterAndAdmit(engine, sale.id, users);
      const results = await Promise.all(users.map((u) => codeOf(engine.reserve(sale.id, req(u, places.get(u)!)))));
      expect(results.filter((r) => r === 'OK')).toHaveLength(100);
      expect(results.filter((r) => r === 'SOLD_OUT')).toHaveLength(900);
      const snap = await engine.snapshot(sale.id, 0);
      expect(snap.remaining.phone).toBe(0);
      expect(snap.heldUnits).toBe(100);
      expect(new Set(snap.buyers).size).toBe(100);
    });

    test('a greedy user firing parallel holds with fresh keys gets only their limit', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 100, perUserLimit: 2, maxPerOrder: 2 }] });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(engine, sale.id, ['greedy']);
      const results = await Promise.all(Array.from({ length: 50 }, () => codeOf(engine.reserve(sale.id, req('greedy', places.get('greedy')!)))));
      expect(results.filter((r) => r === 'OK')).toHaveLength(2);
      expect(results.filter((r) => r === 'LIMIT_REACHED')).toHaveLength(48);
      expect(await codeOf(engine.reserve(sale.id, req('greedy', 1, { quantity: 1 })))).toBe('LIMIT_REACHED');
      expect((await engine.snapshot(sale.id, 0)).remaining.phone).toBe(98);
    });

    test('the same idempotency key answers the first hold; other parameters are refused', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 10, perUserLimit: 3, maxPerOrder: 3 }] });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(engine, sale.id, ['a']);
      const first = req('a', places.get('a')!, { idempotencyKey: 'k1', fingerprint: 'sku=phone;q=1' });
      const answers = await Promise.all(Array.from({ length: 20 }, () => engine.reserve(sale.id, { ...first, holdId: randomUUID() })));
      const held = answers.filter((a) => a.kind === 'held');
      expect(held).toHaveLength(1);
      const holdId = held[0].kind === 'held' ? held[0].hold.holdId : '';
      for (const a of answers) if (a.kind === 'replay') expect(a.holdId).toBe(holdId);
      expect(await codeOf(engine.reserve(sale.id, { ...first, fingerprint: 'sku=phone;q=2' }))).toBe('IDEMPOTENCY_KEY_REUSED');
      // The key belongs to the user: another user's identical key is a new request.
      await enterAndAdmit(engine, sale.id, ['b']);
      const other = await engine.reserve(sale.id, { ...first, userId: 'b', place: (await engine.placeOf(sale.id, 'b'))!, holdId: randomUUID() });
      expect(other.kind).toBe('held');
      expect((await engine.snapshot(sale.id, 0)).remaining.phone).toBe(8);
    });

    test('refusals: not admitted, unknown sku, too large, not open, ended, cancelled', async () => {
      const sale = engineSale({ maxActive: 1 });
      await engine.loadSale(freshLoad(sale));
      await engine.enterQueue(sale.id, 'first', { draw: 0.5 });
      const second = await engine.enterQueue(sale.id, 'second', { draw: 0.5 });
      await admitAll(engine, sale.id);
      expect((await engine.snapshot(sale.id, 0)).watermark).toBe(1);
      expect(await codeOf(engine.reserve(sale.id, req('second', second.place)))).toBe('NOT_ADMITTED');
      expect(await codeOf(engine.reserve(sale.id, req('x', 0)))).toBe('NOT_ADMITTED');
      expect(await codeOf(engine.reserve(sale.id, req('first', 1, { sku: 'nope' })))).toBe('UNKNOWN_SKU');
      expect(await codeOf(engine.reserve(sale.id, req('first', 1, { quantity: 2 })))).toBe('ORDER_TOO_LARGE');

      const later = engineSale({ startsAt: Date.now() + 60_000 });
      await engine.loadSale(freshLoad(later));
      expect(await codeOf(engine.reserve(later.id, req('first', 1)))).toBe('SALE_NOT_OPEN');
      const ended = engineSale({ startsAt: Date.now() - 60_000, endsAt: Date.now() - 1 });
      await engine.loadSale(freshLoad(ended));
      expect(await codeOf(engine.reserve(ended.id, req('first', 1)))).toBe('SALE_ENDED');
      expect(await codeOf(engine.enterQueue(ended.id, 'u', { draw: 0 }))).toBe('SALE_ENDED');
      await engine.updateSale({ ...sale, cancelled: true });
      expect(await codeOf(engine.reserve(sale.id, req('first', 1)))).toBe('SALE_CANCELLED');
      expect(await codeOf(engine.enterQueue(sale.id, 'third', { draw: 0 }))).toBe('SALE_CANCELLED');
      expect(await codeOf(engine.reserve(randomUUID(), req('first', 1)))).toBe('SALE_NOT_FOUND');
    });

    test('sold out (nothing left) differs from insufficient stock (some left)', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 3, perUserLimit: 5, maxPerOrder: 5 }] });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(engine, sale.id, ['a', 'b']);
      expect((await engine.reserve(sale.id, req('a', places.get('a')!, { quantity: 2 }))).kind).toBe('held');
      expect(await codeOf(engine.reserve(sale.id, req('b', places.get('b')!, { quantity: 2 })))).toBe('INSUFFICIENT_STOCK');
      expect((await engine.reserve(sale.id, req('b', places.get('b')!, { quantity: 1 }))).kind).toBe('held');
      expect(await codeOf(engine.reserve(sale.id, req('b', places.get('b')!, { quantity: 1 })))).toBe('SOLD_OUT');
    });

    test('a hold ends exactly once: concurrent releases and confirms, one wins', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 1, perUserLimit: 1, maxPerOrder: 1 }] });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(engine, sale.id, ['a', 'b']);
      const r = await engine.reserve(sale.id, req('a', places.get('a')!));
      if (r.kind !== 'held') throw new Error('expected a hold');
      expect(await engine.getHold(sale.id, r.hold.holdId)).toMatchObject({ userId: 'a', sku: 'phone', quantity: 1 });
      const ends = await Promise.all([
        ...Array.from({ length: 10 }, () => engine.releaseHold(sale.id, r.hold.holdId)),
        ...Array.from({ length: 10 }, () => engine.confirmHold(sale.id, r.hold.holdId)),
      ]);
      expect(ends.filter(Boolean)).toHaveLength(1);
      const snap = await engine.snapshot(sale.id, 0);
      expect(snap.heldUnits).toBe(0);
      const released = ends.slice(0, 10).some(Boolean);
      expect(snap.remaining.phone).toBe(released ? 1 : 0);
      expect(await engine.getHold(sale.id, r.hold.holdId)).toBeNull();
    });

    test('a hold released with its key forgotten lets that key run again; a plain release or a confirm keeps the key', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 5, perUserLimit: 3, maxPerOrder: 1 }] });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(engine, sale.id, ['a']);
      const attempt = (key: string) => engine.reserve(sale.id, { ...req('a', places.get('a')!, { idempotencyKey: key }), holdId: randomUUID() });
      const holdOf = (r: Awaited<ReturnType<typeof attempt>>) => (r.kind === 'held' ? r.hold.holdId : r.holdId);
      const forget = (key: string) => ({ userId: 'a', idempotencyKey: key });

      // The order could not be recorded: release and forget; the same key then takes a new hold.
      const first = await attempt('k1');
      expect(first.kind).toBe('held');
      expect(await engine.releaseHold(sale.id, holdOf(first), forget('k1'))).toBe(true);
      const retried = await attempt('k1');
      expect(retried.kind).toBe('held');
      expect(holdOf(retried)).not.toBe(holdOf(first));

      // A plain release keeps the key: a retry still answers the first hold.
      const plain = await attempt('k2');
      expect(await engine.releaseHold(sale.id, holdOf(plain))).toBe(true);
      expect(await attempt('k2')).toEqual({ kind: 'replay', holdId: holdOf(plain) });

      // A confirmed hold is not live: a plain release does nothing and the key stays.
      const bought = await attempt('k3');
      expect(await engine.confirmHold(sale.id, holdOf(bought))).toBe(true);
      expect(await engine.releaseHold(sale.id, holdOf(bought))).toBe(false);
      expect(await attempt('k3')).toEqual({ kind: 'replay', holdId: holdOf(bought) });

      // A hold already gone (swept) with its order never written: forgetting still drops its key,
      // without touching stock (the caller asked the ledger first; see CheckoutService.replay).
      const swept = await attempt('k5');
      expect(await engine.releaseHold(sale.id, holdOf(swept))).toBe(true);
      expect(await engine.releaseHold(sale.id, holdOf(swept), forget('k5'))).toBe(false);
      const fresh = await attempt('k5');
      expect(fresh.kind).toBe('held');
      expect(await engine.releaseHold(sale.id, holdOf(fresh))).toBe(true);

      // Forgetting names the hold: another hold's release cannot drop the key of a live one.
      const live = await attempt('k4');
      // A hold carries the key that took it, for whoever must release it without an order.
      expect((await engine.getHold(sale.id, holdOf(live)))?.idempotencyKey).toBe('k4');
      expect(await engine.releaseHold(sale.id, holdOf(retried), forget('k4'))).toBe(true);
      expect(await attempt('k4')).toEqual({ kind: 'replay', holdId: holdOf(live) });
      expect((await engine.snapshot(sale.id, 0)).remaining.phone).toBe(5 - 1 - 1);
    });

    test('released stock can be bought again, and the releasing user may buy again', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 1, perUserLimit: 1, maxPerOrder: 1 }] });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(engine, sale.id, ['a', 'b']);
      const r = await engine.reserve(sale.id, req('a', places.get('a')!));
      expect(await codeOf(engine.reserve(sale.id, req('b', places.get('b')!)))).toBe('SOLD_OUT');
      if (r.kind !== 'held') throw new Error('expected a hold');
      expect(await engine.releaseHold(sale.id, r.hold.holdId)).toBe(true);
      expect(await engine.releaseHold(sale.id, r.hold.holdId)).toBe(false);
      const again = await engine.reserve(sale.id, req('b', places.get('b')!));
      expect(again.kind).toBe('held');
      if (again.kind === 'held') expect(await engine.confirmHold(sale.id, again.hold.holdId)).toBe(true);
      expect((await engine.snapshot(sale.id, 0)).remaining.phone).toBe(0);
    });

    test('expired holds are listed oldest first and only once their window passed', async () => {
      const sale = engineSale({ reservationTtlSec: 1, items: [{ sku: 'phone', quantity: 10, perUserLimit: 1, maxPerOrder: 1 }] });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(engine, sale.id, ['a', 'b', 'c']);
      const ids: string[] = [];
      for (const u of ['a', 'b', 'c']) {
        const r = await engine.reserve(sale.id, req(u, places.get(u)!));
        if (r.kind === 'held') ids.push(r.hold.holdId);
        await sleep(3);
      }
      const now = await engine.now();
      expect(await engine.expiredHolds(sale.id, now, 10)).toEqual([]);
      const later = await engine.expiredHolds(sale.id, now + 2000, 2);
      expect(later.map((h) => h.holdId)).toEqual(ids.slice(0, 2));
      await engine.confirmHold(sale.id, ids[0]);
      expect((await engine.expiredHolds(sale.id, now + 2000, 10)).map((h) => h.holdId)).toEqual(ids.slice(1));
    });

    test('entering is idempotent per user and places are 1..n without gaps under concurrency', async () => {
      const sale = engineSale();
      await engine.loadSale(freshLoad(sale));
      const users = Array.from({ length: 300 }, (_, i) => `u${i}`);
      const all = await Promise.all([...users, ...users].map((u) => engine.enterQueue(sale.id, u, { draw: Math.random() })));
      const byUser = new Map<string, number>();
      all.forEach((r, i) => {
        const u = [...users, ...users][i];
        if (byUser.has(u)) expect(r.place).toBe(byUser.get(u));
        else byUser.set(u, r.place);
      });
      expect([...byUser.values()].sort((a, b) => a - b)).toEqual(users.map((_, i) => i + 1));
      expect(all.filter((r) => r.fresh)).toHaveLength(300);
      expect((await engine.snapshot(sale.id, 0)).entered).toBe(300);
    });

    test('fifo: admission never admits a later place before an earlier one, and honours the active cap', async () => {
      const sale = engineSale({ maxActive: 7 });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(
        engine,
        sale.id,
        Array.from({ length: 20 }, (_, i) => `u${i}`),
      );
      const snap = await engine.snapshot(sale.id, 0);
      expect(snap.watermark).toBe(7);
      expect(snap.active).toBe(7);
      // Admitted means exactly the places at or under the watermark.
      for (const [u, place] of places) {
        const code = await codeOf(engine.reserve(sale.id, req(u, place, { sku: 'nope' })));
        expect(code).toBe(place <= 7 ? 'UNKNOWN_SKU' : 'NOT_ADMITTED');
      }
      // A purchase frees its slot; the next place (and only it) comes in.
      await engine.reserve(sale.id, req('u0', places.get('u0')!));
      await admitAll(engine, sale.id);
      expect((await engine.snapshot(sale.id, 0)).watermark).toBe(8);
    });

    test('the snapshot carries the record of watermark advances above the one asked for, dated by the engine that enforces them', async () => {
      const sale = engineSale({ admissionRatePerSec: 20, admittedTtlSec: 1 });
      await engine.loadSale(freshLoad(sale));
      for (let i = 0; i < 10; i++) await engine.enterQueue(sale.id, `u${i}`, { draw: 0 });
      const steps: number[] = [];
      while (steps.length < 3) {
        const { watermark, admitted } = await engine.admit(sale.id);
        if (admitted) steps.push(watermark);
        await sleep(60);
      }
      const snap = await engine.snapshot(sale.id, 0);
      const advances = snap.advances;
      expect(advances.map(([watermark]) => watermark)).toEqual(steps);
      expect(advances.at(-1)![0]).toBe(snap.watermark);
      for (let i = 1; i < advances.length; i++) expect(advances[i][1]).toBeGreaterThanOrEqual(advances[i - 1][1]);
      for (const [, at] of advances) expect(Math.abs(at - snap.now)).toBeLessThan(60_000);
      // Only what is above the watermark asked for: a node reads each advance once.
      expect((await engine.snapshot(sale.id, 0, steps[0])).advances).toEqual(advances.slice(1));
      expect((await engine.snapshot(sale.id, 0, snap.watermark)).advances).toEqual([]);
      // The purchase window the engine enforces runs from the advance that reached the place.
      const [, firstAt] = advances[0];
      await sleep(Math.max(0, firstAt + 1000 - (await engine.now())) + 30);
      expect(await codeOf(engine.reserve(sale.id, req('u0', 1)))).toBe('ADMISSION_EXPIRED');
    });

    test('admission stops while no stock is left to buy', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 1, perUserLimit: 1, maxPerOrder: 1 }] });
      await engine.loadSale(freshLoad(sale));
      const first = await engine.enterQueue(sale.id, 'a', { draw: 0 });
      await admitAll(engine, sale.id);
      await engine.reserve(sale.id, req('a', first.place));
      await engine.enterQueue(sale.id, 'b', { draw: 0 });
      await sleep(5);
      expect((await engine.admit(sale.id)).admitted).toBe(0);
      expect((await engine.snapshot(sale.id, 0)).watermark).toBe(1);
    });

    test('admission lapses after admitted_ttl_sec and the slot is refilled', async () => {
      const sale = engineSale({ admittedTtlSec: 1, maxActive: 1 });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(engine, sale.id, ['a', 'b']);
      expect((await engine.snapshot(sale.id, 0)).watermark).toBe(1);
      await sleep(1100);
      expect(await codeOf(engine.reserve(sale.id, req('a', places.get('a')!)))).toBe('ADMISSION_EXPIRED');
      await admitAll(engine, sale.id);
      expect((await engine.snapshot(sale.id, 0)).watermark).toBe(2);
      expect((await engine.reserve(sale.id, req('b', places.get('b')!))).kind).toBe('held');
    });

    test('the admission rate is honoured by the engine clock', async () => {
      const sale = engineSale({ admissionRatePerSec: 20 });
      await engine.loadSale(freshLoad(sale));
      for (let i = 0; i < 100; i++) await engine.enterQueue(sale.id, `u${i}`, { draw: 0 });
      const start = Date.now();
      await engine.admit(sale.id);
      while (Date.now() - start < 500) {
        await engine.admit(sale.id);
        await sleep(20);
      }
      const { watermark } = await engine.snapshot(sale.id, 0);
      // 0.5 s at 20/s, plus at most one second of carried allowance.
      expect(watermark).toBeGreaterThanOrEqual(5);
      expect(watermark).toBeLessThanOrEqual(32);
    });

    test('randomized pre-queue: early entrants get a random permutation of 1..n, later ones follow', async () => {
      const sale = engineSale({ mode: 'randomized_prequeue', startsAt: Date.now() + 700 });
      await engine.loadSale(freshLoad(sale));
      const early = Array.from({ length: 200 }, (_, i) => `e${i}`);
      for (const u of early) expect((await engine.enterQueue(sale.id, u, { draw: Math.random() })).place).toBe(0);
      expect((await engine.snapshot(sale.id, 0)).prequeued).toBe(200);
      expect(await engine.placeOf(sale.id, 'e0')).toBeNull();
      await sleep(Math.max(0, sale.startsAt - Date.now()) + 50);
      const late = await engine.enterQueue(sale.id, 'late', { draw: 0 });
      expect(late.place).toBe(201);
      const drawn = await Promise.all(early.map((u) => engine.placeOf(sale.id, u)));
      expect([...drawn].sort((a, b) => a! - b!)).toEqual(early.map((_, i) => i + 1));
      // Not the entry order: 200 entrants keeping their order by chance is vanishingly unlikely.
      expect(drawn).not.toEqual(early.map((_, i) => i + 1));
      expect((await engine.enterQueue(sale.id, 'e5', { draw: 0.1 })).place).toBe(drawn[5]);
      expect((await engine.snapshot(sale.id, 0)).drawn).toBe(true);
    });

    test('shadow places look like the next real place and are never counted or admitted', async () => {
      const sale = engineSale();
      await engine.loadSale(freshLoad(sale));
      await engine.enterQueue(sale.id, 'human', { draw: 0 });
      const bot = await engine.enterQueue(sale.id, 'bot', { draw: 0, shadowReason: 'fast_entry' });
      expect(bot).toMatchObject({ place: 2, shadow: true, fresh: true });
      expect(await engine.enterQueue(sale.id, 'bot', { draw: 0 })).toMatchObject({ place: 2, shadow: true, fresh: false });
      const human2 = await engine.enterQueue(sale.id, 'human2', { draw: 0 });
      expect(human2.place).toBe(2);
      await admitAll(engine, sale.id);
      const snap = await engine.snapshot(sale.id, 0);
      expect(snap.entered).toBe(2);
      expect(snap.flags).toEqual({ fast_entry: 1 });
    });

    test('a sale rebuilt from the ledger keeps sold units, holds and per-user counts', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 10, perUserLimit: 2, maxPerOrder: 2 }] });
      const hold = { holdId: randomUUID(), userId: 'a', sku: 'phone', quantity: 2, expiresAt: Date.now() + 60_000 };
      await engine.loadSale({ sale, sold: { phone: 3 }, holds: [hold], perUser: [{ userId: 'a', sku: 'phone', units: 2 }] });
      const snap = await engine.snapshot(sale.id, 0);
      expect(snap.remaining.phone).toBe(5);
      expect(snap.heldUnits).toBe(2);
      const places = await enterAndAdmit(engine, sale.id, ['a']);
      expect(await codeOf(engine.reserve(sale.id, req('a', places.get('a')!)))).toBe('LIMIT_REACHED');
      expect(await engine.releaseHold(sale.id, hold.holdId)).toBe(true);
      expect((await engine.snapshot(sale.id, 0)).remaining.phone).toBe(7);
    });

    test('changing quantity moves stock by the difference and never below zero', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 5, perUserLimit: 5, maxPerOrder: 5 }] });
      await engine.loadSale(freshLoad(sale));
      const places = await enterAndAdmit(engine, sale.id, ['a']);
      await engine.reserve(sale.id, req('a', places.get('a')!, { quantity: 3 }));
      await engine.updateSale({ ...sale, items: [{ ...sale.items[0], quantity: 8 }] });
      expect((await engine.snapshot(sale.id, 0)).remaining.phone).toBe(5);
      expect(await codeOf(engine.updateSale({ ...sale, items: [{ ...sale.items[0], quantity: 2 }] }))).toBe('INVALID_SALE');
      expect((await engine.snapshot(sale.id, 0)).remaining.phone).toBe(5);
    });

    test('leases: one owner at a time, renewable, free after expiry', async () => {
      const name = `lease-${randomUUID()}`;
      const got = await Promise.all(['n1', 'n2', 'n3'].map((o) => engine.acquireLease(name, o, 300)));
      expect(got.filter(Boolean)).toHaveLength(1);
      const owner = ['n1', 'n2', 'n3'][got.indexOf(true)];
      expect(await engine.acquireLease(name, owner, 300)).toBe(true);
      const other = owner === 'n1' ? 'n2' : 'n1';
      expect(await engine.acquireLease(name, other, 300)).toBe(false);
      await sleep(350);
      expect(await engine.acquireLease(name, other, 300)).toBe(true);
      await engine.releaseLease(name, owner);
      expect(await engine.acquireLease(name, owner, 300)).toBe(false);
      await engine.releaseLease(name, other);
      expect(await engine.acquireLease(name, owner, 300)).toBe(true);
    });

    test('useOnce: a token is accepted once', async () => {
      const token = `t-${randomUUID()}`;
      const results = await Promise.all(Array.from({ length: 10 }, () => engine.useOnce(token, 10_000)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    test('a retired sale is forgotten after its retention period, and kept until then', async () => {
      const sale = engineSale({ items: [{ sku: 'phone', quantity: 5, perUserLimit: 1, maxPerOrder: 1 }] });
      await engine.loadSale(freshLoad(sale));
      await enterAndAdmit(engine, sale.id, ['a']);
      await engine.retire(sale.id, 60_000);
      expect(await engine.hasSale(sale.id)).toBe(true);
      await engine.retire(sale.id, 50);
      // Gone within a few seconds however busy the machine; every key of it (the places too).
      for (let i = 0; i < 100 && (await engine.hasSale(sale.id)); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await engine.hasSale(sale.id)).toBe(false);
      expect(await engine.placeOf(sale.id, 'a').catch(() => null)).toBeNull();
    });

    // Queue lanes (a mega-drop): the queue spread over S counters, each in a slot of its own.
    const inLane = (lane: number, shards: number, count: number, tag = randomUUID().slice(0, 6)) => {
      const users: string[] = [];
      for (let i = 0; users.length < count; i++) if (laneOf(`${tag}-${i}`, shards) === lane) users.push(`${tag}-${i}`);
      return users;
    };

    test('queue lanes: places interleave by lane, distinct, and entering again finds the same one', async () => {
      const sale = engineSale({ queueShards: 3 });
      await engine.loadSale(freshLoad(sale));
      const users = Array.from({ length: 60 }, (_, i) => `lane-user-${i}`);
      const first = await Promise.all(users.map((u) => engine.enterQueue(sale.id, u, { draw: 0 })));
      const places = first.map((r) => r.place);
      expect(new Set(places).size).toBe(60);
      first.forEach((r, i) => {
        expect(r.fresh).toBe(true);
        expect((r.place - 1) % 3).toBe(laneOf(users[i], 3));
      });
      // Within a lane, places are 1st, 2nd, 3rd … of that lane: no gaps without a floor.
      for (let lane = 0; lane < 3; lane++) {
        const mine = places.filter((p) => (p - 1) % 3 === lane).sort((a, b) => a - b);
        expect(mine).toEqual(mine.map((_, n) => n * 3 + lane + 1));
      }
      const again = await engine.enterQueue(sale.id, users[7], { draw: 0 });
      expect(again).toMatchObject({ place: places[7], fresh: false, shadow: false, epoch: first[7].epoch });
      expect(await engine.placeOf(sale.id, users[7])).toBe(places[7]);
      expect(await engine.placeOf(sale.id, 'never-entered')).toBeNull();
      // The snapshot counts entrants as of the last admission step, and admission lets in all 60.
      await admitAll(engine, sale.id);
      const snap = await engine.snapshot(sale.id, 0);
      expect(snap.entered).toBe(60);
      expect(snap.watermark).toBe(Math.max(...places));
      await engine.dropSale(sale.id);
    });

    test('queue lanes: a step lets in exactly n waiting people, in place order, over places no lane gave out', async () => {
      // Six in lane 0 (places 1, 4, 7, 10, 13, 16), one in lane 2 (place 3); lane 1 is empty.
      const sale = engineSale({ queueShards: 3, maxActive: 5 });
      await engine.loadSale(freshLoad(sale));
      const zero = inLane(0, 3, 6);
      const two = inLane(2, 3, 1);
      for (const u of [...zero, ...two]) await engine.enterQueue(sale.id, u, { draw: 0 });
      await sleep(5);
      // The active cap lets 5 in: places 1, 3, 4, 7, 10.
      expect(await engine.admit(sale.id)).toEqual({ watermark: 10, admitted: 5 });
      const snap = await engine.snapshot(sale.id, 0);
      expect(snap).toMatchObject({ watermark: 10, active: 5, entered: 7, waiting: 2, queueShards: 3 });
      expect(await codeOf(engine.reserve(sale.id, req(zero[4], 13)))).toBe('NOT_ADMITTED');
      expect(await codeOf(engine.reserve(sale.id, req(zero[3], 10)))).toBe('OK');
      // The hold freed a slot: the next step lets in exactly one more (place 13), not the holes.
      await sleep(5);
      expect(await engine.admit(sale.id)).toEqual({ watermark: 13, admitted: 1 });
      await engine.dropSale(sale.id);
    });

    test('queue lanes: a newcomer gets a place above the watermark it was given, and the skipped numbers are never waited for', async () => {
      const sale = engineSale({ queueShards: 3 });
      await engine.loadSale(freshLoad(sale));
      for (const u of inLane(0, 3, 6)) await engine.enterQueue(sale.id, u, { draw: 0 });
      const watermark = await admitAll(engine, sale.id);
      expect(watermark).toBe(16);
      // Lane 1 gave no place yet: its next would be 2, far below the line. With the line at 16
      // it starts above it, at 17.
      const [late] = inLane(1, 3, 1);
      const { epoch } = await engine.snapshot(sale.id, 0);
      expect((await engine.enterQueue(sale.id, late, { draw: 0, floor: { watermark, epoch } })).place).toBe(17);
      await sleep(5);
      expect(await engine.admit(sale.id)).toEqual({ watermark: 17, admitted: 1 });
      // Without a floor, or with one of another queue's epoch (a picture from before a rebuild),
      // a lane hands out its next number: lane 2's first places are 3 and 6.
      const [stale, older] = inLane(2, 3, 2);
      expect((await engine.enterQueue(sale.id, stale, { draw: 0 })).place).toBe(3);
      expect((await engine.enterQueue(sale.id, older, { draw: 0, floor: { watermark, epoch: 'gone' } })).place).toBe(6);
      await engine.dropSale(sale.id);
    });

    test('queue lanes: someone placed at or below the line (a stale floor) is in at once, and counts against the active cap from the next step', async () => {
      const sale = engineSale({ queueShards: 3, maxActive: 4 });
      await engine.loadSale(freshLoad(sale));
      const zero = inLane(0, 3, 6);
      for (const u of zero) await engine.enterQueue(sale.id, u, { draw: 0 });
      await sleep(5);
      // The cap lets 4 in: places 1, 4, 7, 10.
      expect(await engine.admit(sale.id)).toEqual({ watermark: 10, admitted: 4 });
      // A newcomer whose node still saw the line at 0: lane 1's first place, 2, is below the line.
      const [late] = inLane(1, 3, 1);
      const { epoch } = await engine.snapshot(sale.id, 0);
      expect((await engine.enterQueue(sale.id, late, { draw: 0, floor: { watermark: 0, epoch } })).place).toBe(2);
      expect(await codeOf(engine.reserve(sale.id, req(late, 2)))).toBe('OK');
      // One of the four buys, freeing a slot; the late one is counted now, so no one more comes in.
      expect(await codeOf(engine.reserve(sale.id, req(zero[0], 1)))).toBe('OK');
      await sleep(5);
      expect(await engine.admit(sale.id)).toEqual({ watermark: 10, admitted: 0 });
      expect((await engine.snapshot(sale.id, 0)).active).toBe(4);
      await engine.dropSale(sale.id);
    });

    test('queue lanes: a shadow entrant gets its lane’s next place without taking it, and is counted by reason', async () => {
      const sale = engineSale({ queueShards: 2 });
      await engine.loadSale(freshLoad(sale));
      const [bot, human] = inLane(1, 2, 2);
      const shadow = await engine.enterQueue(sale.id, bot, { draw: 0, shadowReason: 'headless' });
      expect(shadow).toMatchObject({ place: 2, shadow: true, fresh: true });
      expect(await engine.enterQueue(sale.id, bot, { draw: 0 })).toMatchObject({ place: 2, shadow: true, fresh: false });
      expect(await engine.enterQueue(sale.id, human, { draw: 0 })).toMatchObject({ place: 2, shadow: false });
      await engine.admit(sale.id);
      const snap = await engine.snapshot(sale.id, 0);
      expect(snap.flags).toEqual({ headless: 1 });
      expect(snap.entered).toBe(1);
      await engine.dropSale(sale.id);
    });

    test('queue lanes: 1,000 concurrent holds on 100 units across 4 lanes: exactly 100, the per-user limit exact', async () => {
      const sale = engineSale({ queueShards: 4 });
      await engine.loadSale(freshLoad(sale));
      const users = Array.from({ length: 500 }, (_, i) => `lu${i}`);
      const places = await enterAndAdmit(engine, sale.id, users);
      // Every user tries twice at once with different keys: the limit is 1 each.
      const tries = users.flatMap((u) => [u, u]).map((u) => codeOf(engine.reserve(sale.id, req(u, places.get(u)!))));
      const results = await Promise.all(tries);
      expect(results.filter((r) => r === 'OK')).toHaveLength(100);
      const snap = await engine.snapshot(sale.id, 0);
      expect(snap.remaining.phone).toBe(0);
      expect(new Set(snap.buyers).size).toBe(100);
      await engine.dropSale(sale.id);
    });

    test('queue lanes: entering an ended or cancelled sale is refused', async () => {
      const sale = engineSale({ queueShards: 3, endsAt: Date.now() + 400 });
      await engine.loadSale(freshLoad(sale));
      await engine.snapshot(sale.id, 0);
      await sleep(600);
      expect(await codeOf(engine.enterQueue(sale.id, 'late', { draw: 0 }))).toBe('SALE_ENDED');
      const cancelled = engineSale({ queueShards: 3 });
      await engine.loadSale(freshLoad(cancelled));
      await engine.updateSale({ ...cancelled, cancelled: true });
      await engine.snapshot(cancelled.id, 0);
      expect(await codeOf(engine.enterQueue(cancelled.id, 'any', { draw: 0 }))).toBe('SALE_CANCELLED');
      await engine.dropSale(sale.id);
      await engine.dropSale(cancelled.id);
    });

    test('the engine clock is within a second of real time', async () => {
      expect(Math.abs((await engine.now()) - Date.now())).toBeLessThan(1000);
    });
  });
}
