/**
 * Differential test: random sequences of operations applied to the embedded engine (the
 * reference) and to the Redis engine on the same sale must give the same answers — the same
 * results, the same refusals — step by step, and leave the same state.
 *
 * Redis's clock cannot be moved, so everything time-dependent is made deterministic: sales
 * start in the past (or an `open` step moves startsAt there), end far ahead, admission and
 * reservation windows are an hour, and the admission rate is so high that only the active cap,
 * the stock and the queue decide how far the watermark moves. Times the engines stamp (hold
 * expiry, snapshot clock) and the random epoch are compared loosely or not at all.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, EngineHold, EngineSale, SaleLoad } from '../../src/engine/engine.js';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { StampedeError } from '../../src/errors.js';
import { redisTestEngine, type RedisTestEngine } from '../support/redis.js';

const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'x0', 'x1'];
const SKUS = ['a', 'b', 'c', 'zz'];
const HOUR = 3_600_000;
/** Expiry times of holds restored from the ledger: fixed, so expiredHolds order is deterministic. */
const PAST = [1000, 2000, 2000];

type Op =
  | { op: 'enter'; user: string; draw: number; shadow: string | null }
  | { op: 'placeOf'; user: string }
  | { op: 'admit' }
  | {
      op: 'reserve';
      user: string;
      admitted: number | null;
      place: number | 'own';
      sku: string;
      quantity: number;
      key: string;
      fingerprint: string;
      reuseHold: number | null;
    }
  | { op: 'confirm' | 'release' | 'getHold'; hold: number }
  | { op: 'expired'; past: boolean; limit: number }
  | { op: 'snapshot'; from: number }
  | {
      op: 'update';
      deltas: number[];
      dropB: boolean;
      addC: boolean;
      maxActive: number | null;
      open: boolean;
      cancel: boolean;
      end: boolean;
      flipMode: boolean;
    };

const user = fc.constantFrom(...USERS);
const oneIn = (n: number) => fc.nat({ max: n - 1 }).map((x) => x === 0);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('enter' as const),
      user,
      draw: fc.constantFrom(0, 0.25, 0.5, 0.5, 0.999),
      shadow: fc.oneof({ arbitrary: fc.constant(null), weight: 5 }, fc.constantFrom('fast_entry', 'pow')),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ op: fc.constant('placeOf' as const), user }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('admit' as const) }), weight: 4 },
  {
    arbitrary: fc.record({
      op: fc.constant('reserve' as const),
      user,
      admitted: fc.oneof(fc.constant(null), fc.nat()),
      place: fc.oneof({ arbitrary: fc.constant('own' as const), weight: 4 }, fc.integer({ min: -1, max: 8 })),
      sku: fc.constantFrom('a', 'a', 'b', 'b', ...SKUS),
      quantity: fc.integer({ min: 0, max: 3 }),
      key: fc.constantFrom('k0', 'k1', 'k2'),
      fingerprint: fc.constantFrom('f0', 'f1'),
      reuseHold: fc.oneof({ arbitrary: fc.constant(null), weight: 12 }, fc.nat()),
    }),
    weight: 8,
  },
  { arbitrary: fc.record({ op: fc.constantFrom('confirm' as const, 'release' as const, 'getHold' as const), hold: fc.nat() }), weight: 4 },
  { arbitrary: fc.record({ op: fc.constant('expired' as const), past: fc.boolean(), limit: fc.integer({ min: -2, max: 5 }) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('snapshot' as const), from: fc.integer({ min: -3, max: 5 }) }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('update' as const),
      deltas: fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 2, maxLength: 2 }),
      dropB: fc.boolean(),
      addC: fc.boolean(),
      maxActive: fc.option(fc.integer({ min: 1, max: 4 }), { freq: 2 }),
      open: fc.boolean(),
      cancel: oneIn(10),
      end: oneIn(15),
      flipMode: oneIn(8),
    }),
    weight: 2,
  },
);

const scenarioArb = fc.record({
  mode: fc.constantFrom('fifo' as const, 'randomized_prequeue' as const),
  startsLater: oneIn(4),
  maxActive: fc.integer({ min: 1, max: 8 }),
  items: fc.tuple(
    ...['a', 'b'].map((sku) =>
      fc.record({
        sku: fc.constant(sku),
        quantity: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 6 }), weight: 5 }, fc.constant(0)),
        perUserLimit: fc.integer({ min: 1, max: 3 }),
        maxPerOrder: fc.integer({ min: 1, max: 3 }),
      }),
    ),
  ),
  sold: fc.record({ a: fc.integer({ min: 0, max: 2 }) }),
  holds: fc.array(
    fc.record({
      holdId: fc.constantFrom('L0', 'L1', 'L2'),
      userId: user,
      sku: fc.constantFrom('a', 'b', 'c'),
      quantity: fc.integer({ min: 1, max: 2 }),
      expiresAt: fc.constantFrom(...PAST, -1),
    }),
    { maxLength: 3 },
  ),
  perUser: fc.array(fc.record({ userId: user, sku: fc.constantFrom('a', 'b'), units: fc.integer({ min: 0, max: 2 }) }), { maxLength: 2 }),
  /** Entered (and one admit) before the random steps, so most runs have tickets to buy with. */
  preamble: fc.uniqueArray(user, { maxLength: 5 }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }),
});

const outcome = async <T>(p: Promise<T>): Promise<{ ok: T } | { refused: string }> => {
  try {
    return { ok: await p };
  } catch (e) {
    if (e instanceof StampedeError) return { refused: e.code };
    throw e;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A hold the engines stamped themselves: equal up to the few ms between the two calls. */
function sameHold(mem: EngineHold | null, red: EngineHold | null, where: string) {
  if (!mem || !red) return expect(red, where).toEqual(mem);
  expect({ ...red, expiresAt: 0 }, where).toEqual({ ...mem, expiresAt: 0 });
  if (mem.expiresAt < HOUR) expect(red.expiresAt, where).toBe(mem.expiresAt);
  else expect(Math.abs(red.expiresAt - mem.expiresAt), where).toBeLessThan(5000);
}

describe('engine differential: redis answers exactly as memory', () => {
  let fx: RedisTestEngine | null;
  const memory = new MemoryEngine({ clock: Date.now });
  beforeAll(async () => {
    fx = await redisTestEngine();
  });
  afterAll(async () => {
    await fx?.cleanup();
    await memory.close();
  });

  it('random operation sequences give the same results, refusals and state', async (ctx) => {
    if (!fx) return ctx.skip();
    const redis: Engine = fx.engine;

    await fc.assert(
      fc.asyncProperty(scenarioArb, async (sc) => {
        const t0 = Date.now();
        let sale: EngineSale = {
          id: randomUUID(),
          startsAt: sc.startsLater ? t0 + HOUR : t0 - 1000,
          endsAt: t0 + 24 * HOUR,
          cancelled: false,
          mode: sc.mode,
          admissionRatePerSec: 1e9,
          admittedTtlSec: 3600,
          maxActive: sc.maxActive,
          reservationTtlSec: 3600,
          items: sc.items,
        };
        const load: SaleLoad = {
          sale,
          sold: sc.sold,
          perUser: sc.perUser,
          holds: sc.holds.map((h) => ({ ...h, expiresAt: h.expiresAt < 0 ? t0 + 48 * HOUR : h.expiresAt })),
        };
        const both = async <T>(f: (e: Engine) => Promise<T>) => {
          const m = await outcome(f(memory));
          const r = await outcome(f(redis));
          return [m, r] as const;
        };
        const same = async <T>(where: string, f: (e: Engine) => Promise<T>) => {
          const [m, r] = await both(f);
          expect(r, where).toEqual(m);
          return m;
        };

        await same('loadSale', (e) => e.loadSale(load));
        const holdIds = [...new Set(load.holds.map((h) => h.holdId)), 'nope'];
        const places = new Map<string, number>();
        let watermark = 0;
        /** Hold ids are minted in order, so same-ms ties sort alike in both engines — until one is reused. */
        let reused = false;
        try {
          const preamble: Op[] = sc.preamble.map((u) => ({ op: 'enter', user: u, draw: 0.5, shadow: null }));
          if (preamble.length) preamble.push({ op: 'admit' });
          for (const [step, op] of [...preamble, ...sc.ops].entries()) {
            const where = `step ${step}: ${JSON.stringify(op)}`;
            switch (op.op) {
              case 'enter': {
                const [m, r] = await both((e) => e.enterQueue(sale.id, op.user, { draw: op.draw, shadowReason: op.shadow ?? undefined }));
                const strip = (x: typeof m) => ('ok' in x ? { ...x.ok, epoch: '' } : x);
                expect(strip(r), where).toEqual(strip(m));
                if ('ok' in m && m.ok.place > 0) places.set(op.user, m.ok.place);
                break;
              }
              case 'placeOf': {
                const m = await same(where, (e) => e.placeOf(sale.id, op.user));
                if ('ok' in m && m.ok) places.set(op.user, m.ok);
                break;
              }
              case 'admit':
                // At least a millisecond since the last step, so the (huge) rate never binds.
                await sleep(2);
                await same(where, (e) => e.admit(sale.id));
                break;
              case 'reserve': {
                const holdId = op.reuseHold !== null ? holdIds[op.reuseHold % holdIds.length] : `h${String(step).padStart(3, '0')}`;
                reused ||= op.reuseHold !== null;
                // Mostly an admitted user buying with their own ticket, else anyone with any place.
                const admitted = [...places].filter(([, p]) => p <= watermark);
                const [who, own] = op.admitted !== null && admitted.length ? admitted[op.admitted % admitted.length] : [op.user, places.get(op.user) ?? 0];
                const place = op.place === 'own' ? own : op.place;
                const req = { userId: who, place, sku: op.sku, quantity: op.quantity, idempotencyKey: op.key, fingerprint: op.fingerprint, holdId };
                const [m, r] = await both((e) => e.reserve(sale.id, req));
                if ('ok' in m && 'ok' in r && m.ok.kind === 'held' && r.ok.kind === 'held') {
                  sameHold(m.ok.hold, r.ok.hold, where);
                  expect(r.ok.remaining, where).toBe(m.ok.remaining);
                  if (!holdIds.includes(holdId)) holdIds.unshift(holdId);
                } else {
                  expect(r, where).toEqual(m);
                }
                break;
              }
              case 'confirm':
                await same(where, (e) => e.confirmHold(sale.id, holdIds[op.hold % holdIds.length]));
                break;
              case 'release':
                await same(where, (e) => e.releaseHold(sale.id, holdIds[op.hold % holdIds.length]));
                break;
              case 'getHold': {
                const [m, r] = await both((e) => e.getHold(sale.id, holdIds[op.hold % holdIds.length]));
                if ('ok' in m && 'ok' in r) sameHold(m.ok, r.ok, where);
                else expect(r, where).toEqual(m);
                break;
              }
              case 'expired': {
                // Restored holds expire at fixed times; the engines stamp the others a few ms apart.
                const ordered = op.past || !reused;
                const before = op.past ? 1500 + 1000 * (op.limit & 1) : t0 + 100 * HOUR;
                const [m, r] = await both((e) => e.expiredHolds(sale.id, before, ordered ? op.limit : 100));
                if (!('ok' in m && 'ok' in r)) throw new Error(`${where}: expiredHolds refused`);
                const byId = (a: EngineHold, b: EngineHold) => (a.holdId < b.holdId ? -1 : 1);
                const [mh, rh] = ordered ? [m.ok, r.ok] : [[...m.ok].sort(byId), [...r.ok].sort(byId)];
                expect(
                  rh.map((h) => h.holdId),
                  where,
                ).toEqual(mh.map((h) => h.holdId));
                mh.forEach((h, i) => sameHold(h, rh[i], where));
                break;
              }
              case 'snapshot':
                break; // every step ends with one
              case 'update': {
                const items = sale.items.filter((i) => !(op.dropB && i.sku === 'b')).map((i, n) => ({ ...i, quantity: i.quantity + (op.deltas[n] ?? 0) }));
                if (op.addC && !items.some((i) => i.sku === 'c')) items.push({ sku: 'c', quantity: 2, perUserLimit: 2, maxPerOrder: 2 });
                const next: EngineSale = {
                  ...sale,
                  items,
                  maxActive: op.maxActive ?? sale.maxActive,
                  startsAt: op.open ? t0 - 1000 : sale.startsAt,
                  cancelled: sale.cancelled || op.cancel,
                  endsAt: op.end ? t0 - 500 : sale.endsAt,
                  mode: op.flipMode ? (sale.mode === 'fifo' ? 'randomized_prequeue' : 'fifo') : sale.mode,
                };
                const m = await same(where, (e) => e.updateSale(next));
                if ('ok' in m) sale = next;
                break;
              }
            }
            const from = op.op === 'snapshot' ? op.from : 0;
            const [m, r] = await both((e) => e.snapshot(sale.id, from));
            // Times are each engine's own clock: the advances are compared by watermark.
            const strip = (x: typeof m) => ('ok' in x ? { ...x.ok, now: 0, epoch: '', advances: x.ok.advances.map(([watermark]) => [watermark, 0]) } : x);
            expect(strip(r), `snapshot after ${where}`).toEqual(strip(m));
            if ('ok' in m) watermark = m.ok.watermark;
          }
          for (const u of USERS) await same(`placeOf ${u} at the end`, (e) => e.placeOf(sale.id, u));
        } finally {
          await memory.dropSale(sale.id);
          await redis.dropSale(sale.id);
        }
      }),
      { numRuns: 100, interruptAfterTimeLimit: 18_000 },
    );
  }, 30_000);
});
