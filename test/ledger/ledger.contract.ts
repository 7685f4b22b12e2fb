/**
 * The ledger contract: one suite, run against PGlite and PostgreSQL. The ledger is the second
 * wall against oversell, so the stock tests here attack it directly, without an engine in front.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerConflictError, LedgerOversellError, type Ledger, type NewOrder, type NewPayment, type SaleInput } from '../../src/ledger/ledger.js';
import { loadMigrations, migrate } from '../../src/ledger/migrate.js';
import type { SqlClient } from '../../src/ledger/sql-client.js';
import { SqlLedger } from '../../src/ledger/sql-ledger.js';

/** A migrated ledger and raw SQL access to the same database. */
export interface LedgerFixture {
  ledger: Ledger;
  db: SqlClient;
  cleanup(): Promise<void>;
}

const HOUR = 3_600_000;

export function saleInput(overrides: Partial<SaleInput> = {}): SaleInput {
  const now = Date.now();
  return {
    name: 'Phone drop',
    startsAt: new Date(now - 1000),
    endsAt: new Date(now + HOUR),
    items: [{ sku: 'phone', name: 'Phone', priceCents: 49_900, currency: 'EUR', quantity: 100, perUserLimit: 1, maxPerOrder: 1 }],
    queue: { mode: 'fifo', admissionRatePerSec: 100, admittedTtlSec: 600, maxActive: 1000 },
    reservationTtlSec: 600,
    botProtection: { powDifficulty: 0, captcha: 'none', allowlist: [] },
    ...overrides,
  };
}

const newOrder = (saleId: string, extra: Partial<NewOrder> = {}): NewOrder => ({
  id: randomUUID(),
  saleId,
  sku: 'phone',
  userId: `u-${randomUUID()}`,
  quantity: 1,
  idempotencyKey: randomUUID(),
  reservationExpiresAt: new Date(Date.now() + 600_000),
  ...extra,
});

const newAuth = (saleId: string, extra: Partial<NewPayment> = {}): NewPayment => ({
  id: randomUUID(),
  saleId,
  userId: 'alice',
  ticketPlace: 1,
  orderId: null,
  kind: 'authorization',
  gateway: 'sandbox',
  amountCents: 49_900,
  currency: 'EUR',
  expiresAt: new Date(Date.now() + 30 * 60_000),
  ...extra,
});

const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: unknown) => (e instanceof LedgerOversellError ? 'oversell' : Promise.reject(e)),
  );

export function ledgerContract(name: string, open: () => Promise<LedgerFixture | null>) {
  describe(`ledger contract: ${name}`, () => {
    let fx: LedgerFixture | null;
    let ledger: Ledger;
    let db: SqlClient;
    beforeAll(async () => {
      fx = await open();
      if (fx) ({ ledger, db } = fx);
    });
    afterAll(async () => {
      await fx?.cleanup();
    });
    const test = (title: string, fn: () => Promise<void>) =>
      it(title, async (ctx) => {
        if (!fx) return ctx.skip();
        await fn();
      });
    const item = async (saleId: string, sku = 'phone') => (await ledger.getSale(saleId))!.items.find((i) => i.sku === sku)!;
    const topicsOf = async (key: string, id: string) =>
      (await db.query<{ topic: string }>(`SELECT topic FROM outbox WHERE payload->>'${key}' = $1 ORDER BY id`, [id])).rows.map((r) => r.topic);

    test('migrations are recorded, and running them again applies nothing', async () => {
      const files = await loadMigrations();
      const { rows } = await db.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
      expect(rows).toEqual(files.map((m) => ({ version: m.version, name: m.name })));
      expect(await migrate(db)).toEqual([]);
      await ledger.migrate();
      await ledger.ping();
    });

    test('a sale is created, read, listed, updated and cancelled, each with its event', async () => {
      const input = saleInput({
        items: [...saleInput().items, { sku: 'case', name: 'Case', priceCents: 1500, currency: 'EUR', quantity: 5, perUserLimit: 2, maxPerOrder: 2 }],
      });
      const sale = await ledger.createSale(input);
      expect(sale).toMatchObject({
        name: 'Phone drop',
        startsAt: input.startsAt,
        endsAt: input.endsAt,
        queue: input.queue,
        botProtection: input.botProtection,
        cancelledAt: null,
      });
      expect(sale.items.map((i) => [i.sku, i.sold, i.held])).toEqual([
        ['phone', 0, 0],
        ['case', 0, 0],
      ]);
      expect(await ledger.getSale(sale.id)).toEqual(sale);
      expect((await ledger.listSales()).map((s) => s.id)).toContain(sale.id);

      const later = new Date(input.endsAt.getTime() + HOUR);
      const updated = await ledger.updateSale(sale.id, { name: 'Renamed', endsAt: later, items: [{ ...input.items[0], quantity: 7 }] });
      expect(updated).toMatchObject({ name: 'Renamed', endsAt: later, startsAt: input.startsAt });
      expect(updated.items.map((i) => [i.sku, i.quantity])).toEqual([['phone', 7]]);

      const cancelled = await ledger.cancelSale(sale.id);
      expect(cancelled.cancelledAt).toBeInstanceOf(Date);
      expect((await ledger.cancelSale(sale.id)).cancelledAt).toEqual(cancelled.cancelledAt);
      await expect(ledger.updateSale(sale.id, { name: 'x' })).rejects.toBeInstanceOf(LedgerConflictError);
      expect(await topicsOf('sale_id', sale.id)).toEqual(['sale.created', 'sale.updated', 'sale.cancelled']);
    });

    test('an unknown sale reads as null, and changing it is refused', async () => {
      expect(await ledger.getSale(randomUUID())).toBeNull();
      expect(await ledger.getSale('not-a-uuid')).toBeNull();
      await expect(ledger.cancelSale(randomUUID())).rejects.toThrow(/no sale/);
      expect(await ledger.orderCounts('nope')).toEqual({ reserved: 0, confirmed: 0, expired: 0, cancelled: 0, failed: 0 });
    });

    test('items can no longer be replaced once a unit is held', async () => {
      const sale = await ledger.createSale(saleInput());
      await ledger.reserveOrder(newOrder(sale.id));
      await expect(ledger.updateSale(sale.id, { items: [{ ...saleInput().items[0], quantity: 1000 }] })).rejects.toBeInstanceOf(LedgerConflictError);
      expect((await item(sale.id)).quantity).toBe(100);
      expect((await ledger.updateSale(sale.id, { name: 'Still renamable' })).name).toBe('Still renamable');
    });

    test('reserve then confirm moves units from held to sold; counts follow', async () => {
      const sale = await ledger.createSale(saleInput({ items: [{ ...saleInput().items[0], perUserLimit: 3, maxPerOrder: 3 }] }));
      const order = await ledger.reserveOrder(newOrder(sale.id, { quantity: 3 }));
      expect(order).toMatchObject({ status: 'reserved', quantity: 3, unitPriceCents: 49_900, amountCents: 149_700, currency: 'EUR', paymentId: null });
      expect(await item(sale.id)).toMatchObject({ held: 3, sold: 0 });

      const confirmed = await ledger.confirmOrder(order.id, 'pay-1');
      expect(confirmed).toMatchObject({ id: order.id, status: 'confirmed', paymentId: 'pay-1' });
      expect(await ledger.getOrder(order.id)).toEqual(confirmed);
      expect(await item(sale.id)).toMatchObject({ held: 0, sold: 3 });
      expect(await ledger.orderCounts(sale.id)).toEqual({ reserved: 0, confirmed: 1, expired: 0, cancelled: 0, failed: 0 });
      expect(await ledger.listOrders(sale.id, { status: 'confirmed' })).toEqual([confirmed]);
      expect(await ledger.listOrders(sale.id, { status: 'reserved' })).toEqual([]);
      expect(await topicsOf('order_id', order.id)).toEqual(['order.reserved', 'order.confirmed']);
    });

    test('a released hold goes back to stock and can be bought again', async () => {
      const sale = await ledger.createSale(saleInput({ items: [{ ...saleInput().items[0], quantity: 1 }] }));
      const first = await ledger.reserveOrder(newOrder(sale.id));
      await expect(ledger.reserveOrder(newOrder(sale.id))).rejects.toBeInstanceOf(LedgerOversellError);
      expect(await ledger.releaseOrder(first.id, 'expired')).toMatchObject({ status: 'expired' });
      expect(await item(sale.id)).toMatchObject({ held: 0, sold: 0 });
      expect(await ledger.releaseOrder(first.id, 'cancelled')).toBeNull();
      const second = await ledger.reserveOrder(newOrder(sale.id));
      expect(await item(sale.id)).toMatchObject({ held: 1 });
      expect(await ledger.orderCounts(sale.id)).toMatchObject({ reserved: 1, expired: 1 });
      expect(await topicsOf('order_id', first.id)).toEqual(['order.reserved', 'order.expired']);
      await ledger.releaseOrder(second.id, 'failed');
    });

    test('the ledger refuses the 101st unit, and the CHECK refuses a raw overselling write', async () => {
      const sale = await ledger.createSale(saleInput());
      for (let i = 0; i < 100; i++) await ledger.reserveOrder(newOrder(sale.id));
      const before = await db.query<{ n: number }>('SELECT count(*) AS n FROM outbox');
      await expect(ledger.reserveOrder(newOrder(sale.id))).rejects.toBeInstanceOf(LedgerOversellError);
      // The refusal left nothing behind: no order, no event, no held unit.
      expect((await db.query<{ n: number }>('SELECT count(*) AS n FROM outbox')).rows).toEqual(before.rows);
      expect(await ledger.orderCounts(sale.id)).toMatchObject({ reserved: 100 });
      expect(await item(sale.id)).toMatchObject({ held: 100, sold: 0 });
      await expect(db.query('UPDATE items SET sold = quantity + 1 WHERE sale_id = $1', [sale.id])).rejects.toMatchObject({ code: '23514' });
      await expect(db.query('UPDATE items SET held = held + 1 WHERE sale_id = $1', [sale.id])).rejects.toMatchObject({ code: '23514' });
      await expect(db.query('UPDATE items SET held = -1, sold = 0 WHERE sale_id = $1', [sale.id])).rejects.toMatchObject({ code: '23514' });
    });

    test('150 concurrent reservations of a 100-unit item: exactly 100 succeed', async () => {
      const sale = await ledger.createSale(saleInput());
      const results = await Promise.all(Array.from({ length: 150 }, () => outcome(ledger.reserveOrder(newOrder(sale.id)))));
      expect(results.filter((r) => r === 'ok')).toHaveLength(100);
      expect(results.filter((r) => r === 'oversell')).toHaveLength(50);
      expect(await item(sale.id)).toMatchObject({ held: 100, sold: 0 });
      expect((await ledger.orderCounts(sale.id)).reserved).toBe(100);
    });

    test('a crowd of reservations and confirmations over two items, with a reused key and doubled confirms, lands as if one by one', async () => {
      const sale = await ledger.createSale(
        saleInput({
          items: [
            { ...saleInput().items[0], quantity: 30 },
            { sku: 'case', name: 'Case', priceCents: 1500, currency: 'EUR', quantity: 30, perUserLimit: 1, maxPerOrder: 1 },
          ],
        }),
      );
      const phones = Array.from({ length: 40 }, () => newOrder(sale.id));
      const cases = Array.from({ length: 19 }, () => newOrder(sale.id, { sku: 'case' }));
      // The same user and key twice, in the middle of the crowd: one order, one refusal.
      cases.splice(
        9,
        0,
        newOrder(sale.id, { sku: 'case', userId: 'dora', idempotencyKey: 'same' }),
        newOrder(sale.id, { sku: 'case', userId: 'dora', idempotencyKey: 'same' }),
      );
      const settled = await Promise.allSettled([...phones, ...cases].map((o) => ledger.reserveOrder(o)));
      const reasons = settled.map((s) =>
        s.status === 'fulfilled'
          ? 'ok'
          : s.reason instanceof LedgerOversellError
            ? 'oversell'
            : s.reason instanceof LedgerConflictError
              ? 'conflict'
              : String(s.reason),
      );
      expect(reasons.slice(0, 40).filter((r) => r === 'ok')).toHaveLength(30);
      expect(reasons.slice(0, 40).filter((r) => r === 'oversell')).toHaveLength(10);
      expect(reasons.slice(40).sort()).toEqual([...Array(20).fill('ok'), 'conflict'].sort());
      expect(await item(sale.id)).toMatchObject({ held: 30, sold: 0 });
      expect(await item(sale.id, 'case')).toMatchObject({ held: 20, sold: 0 });

      const orders = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
      const confirms = await Promise.all(orders.flatMap((o) => [ledger.confirmOrder(o.id, `pay-${o.id}`), ledger.confirmOrder(o.id, 'second')]));
      for (let i = 0; i < orders.length; i++) {
        const [a, b] = [confirms[2 * i], confirms[2 * i + 1]];
        expect([a, b].filter((x) => x !== null)).toHaveLength(1);
        expect((await ledger.getOrder(orders[i].id))!.paymentId).toBe((a ?? b)!.paymentId);
      }
      expect(await item(sale.id)).toMatchObject({ held: 0, sold: 30 });
      expect(await item(sale.id, 'case')).toMatchObject({ held: 0, sold: 20 });
      const events = await db.query<{ topic: string; n: number }>(
        `SELECT topic, count(*)::int AS n FROM outbox WHERE payload->>'sale_id' = $1 AND topic LIKE 'order.%' GROUP BY topic ORDER BY topic`,
        [sale.id],
      );
      expect(events.rows).toEqual([
        { topic: 'order.confirmed', n: 50 },
        { topic: 'order.reserved', n: 50 },
      ]);
    });

    test('confirming twice, even concurrently, confirms once and sells once', async () => {
      const sale = await ledger.createSale(saleInput());
      const order = await ledger.reserveOrder(newOrder(sale.id));
      const answers = await Promise.all([ledger.confirmOrder(order.id, 'p1'), ledger.confirmOrder(order.id, 'p2')]);
      expect(answers.filter((a) => a !== null)).toHaveLength(1);
      expect(await ledger.confirmOrder(order.id, 'p3')).toBeNull();
      expect(await item(sale.id)).toMatchObject({ held: 0, sold: 1 });
      expect((await ledger.getOrder(order.id))!.paymentId).toBe(answers.find((a) => a)!.paymentId);
    });

    test('a confirmation that captures records the capture in the same statement, also when the order had already ended', async () => {
      const sale = await ledger.createSale(saleInput());
      const authorise = async (userId: string) => {
        const auth = await ledger.insertPayment(newAuth(sale.id, { userId }));
        return (await ledger.transitionPayment(auth.id, ['pending'], 'authorized', { gatewayRef: `ch_${userId}` }))!;
      };
      const auth = await authorise('erin');
      const order = await ledger.reserveOrder(newOrder(sale.id, { userId: 'erin' }));
      expect(await ledger.confirmOrder(order.id, auth.id, { capturedCents: 49_900 })).toMatchObject({ status: 'confirmed', paymentId: auth.id });
      expect(await ledger.getPayment(auth.id)).toMatchObject({
        status: 'captured',
        capturedCents: 49_900,
        orderId: order.id,
        endedReason: 'captured',
        gatewayRef: 'ch_erin',
      });
      // (The order's own event names its payment too.)
      expect((await topicsOf('payment_id', auth.id)).sort()).toEqual(['order.confirmed', 'payment.authorized', 'payment.captured']);
      // Again: nothing moves twice.
      expect(await ledger.confirmOrder(order.id, auth.id, { capturedCents: 49_900 })).toBeNull();
      expect(await topicsOf('payment_id', auth.id)).toHaveLength(3);

      // The window passed while the card was being captured: no order, but the money moved and the ledger says so.
      const late = await authorise('finn');
      const lapsed = await ledger.reserveOrder(newOrder(sale.id, { userId: 'finn' }));
      await ledger.releaseOrder(lapsed.id, 'expired');
      expect(await ledger.confirmOrder(lapsed.id, late.id, { capturedCents: 49_900 })).toBeNull();
      expect(await ledger.getPayment(late.id)).toMatchObject({ status: 'captured', orderId: lapsed.id });
      expect(await item(sale.id)).toMatchObject({ held: 0, sold: 1 });
      // A voided authorisation is not captured by a confirmation.
      const voided = await authorise('gus');
      await ledger.transitionPayment(voided.id, ['authorized'], 'voided', { endedReason: 'sold_out' });
      const third = await ledger.reserveOrder(newOrder(sale.id, { userId: 'gus' }));
      await ledger.confirmOrder(third.id, voided.id, { capturedCents: 49_900 });
      expect((await ledger.getPayment(voided.id))!.status).toBe('voided');
      await expect(ledger.confirmOrder(third.id, null, { capturedCents: 1 })).rejects.toBeInstanceOf(RangeError);
    });

    test('a refund is recorded on the payment and on its order at once; stray captures are the ones no confirmed order owns', async () => {
      const sale = await ledger.createSale(saleInput());
      const captured = async (userId: string, orderId: string, lapsed: boolean) => {
        const auth = await ledger.insertPayment(newAuth(sale.id, { userId }));
        await ledger.transitionPayment(auth.id, ['pending'], 'authorized', { gatewayRef: `ch_${userId}` });
        if (lapsed) await ledger.releaseOrder(orderId, 'expired');
        await ledger.confirmOrder(orderId, auth.id, { capturedCents: 49_900 });
        return auth;
      };
      const paid = await ledger.reserveOrder(newOrder(sale.id, { userId: 'hana' }));
      const owned = await captured('hana', paid.id, false);
      const lapsed = await ledger.reserveOrder(newOrder(sale.id, { userId: 'ivo' }));
      const late = await captured('ivo', lapsed.id, true);
      // A charge recorded for an order still reserved: its confirmation may be on its way, so not stray.
      const pending = await ledger.reserveOrder(newOrder(sale.id, { userId: 'jun' }));
      const charge = await ledger.insertPayment(
        newAuth(sale.id, { id: `charge_${pending.id}`, userId: 'jun', kind: 'charge', orderId: pending.id, ticketPlace: 0 }),
      );
      await ledger.transitionPayment(charge.id, ['pending'], 'captured', { gatewayRef: 'ch_jun', capturedCents: 49_900 });

      const window = { since: new Date(Date.now() - HOUR), before: new Date(Date.now() + 60_000), limit: 1000 };
      const strays = async () => (await ledger.strayCaptures(window)).filter((p) => p.saleId === sale.id).map((p) => p.id);
      expect(await strays()).toEqual([late.id]);
      expect((await ledger.paymentsOfOrder(lapsed.id)).map((p) => p.id)).toEqual([late.id]);
      expect((await ledger.paymentsOfOrder(pending.id)).map((p) => p.id)).toEqual([charge.id]);
      expect((await ledger.paymentsOfOrder(paid.id)).map((p) => p.id)).toEqual([owned.id]);

      expect(await ledger.recordRefund(late.id, 49_900, 'refunded:expired')).toMatchObject({
        status: 'refunded',
        capturedCents: 49_900,
        refundedCents: 49_900,
        orderId: lapsed.id,
        endedReason: 'refunded:expired',
      });
      // The order says so; its status and the item's counts stay as they were.
      expect(await ledger.getOrder(lapsed.id)).toMatchObject({ status: 'expired', refundedCents: 49_900 });
      expect(await ledger.getOrder(paid.id)).toMatchObject({ status: 'confirmed', refundedCents: 0 });
      expect(await item(sale.id)).toMatchObject({ sold: 1, held: 1 });
      expect(await topicsOf('payment_id', late.id)).toContain('payment.refunded');
      // Once: a second record finds nothing captured.
      expect(await ledger.recordRefund(late.id, 49_900, 'refunded:expired')).toBeNull();
      expect(await strays()).toEqual([]);
      expect((await ledger.paymentCounts(sale.id)).refunded).toBe(1);
      await expect(ledger.recordRefund(owned.id, 0, 'nothing')).rejects.toBeInstanceOf(RangeError);
    });

    test('a confirmed order cannot be released', async () => {
      const sale = await ledger.createSale(saleInput());
      const order = await ledger.reserveOrder(newOrder(sale.id));
      await ledger.confirmOrder(order.id, null);
      expect(await ledger.releaseOrder(order.id, 'cancelled')).toBeNull();
      expect(await item(sale.id)).toMatchObject({ held: 0, sold: 1 });
      expect(await ledger.confirmOrder(randomUUID(), null)).toBeNull();
    });

    test('an idempotency key is used once per user and sale; the refused insert holds nothing', async () => {
      const sale = await ledger.createSale(saleInput());
      await ledger.reserveOrder(newOrder(sale.id, { userId: 'bob', idempotencyKey: 'k' }));
      await expect(ledger.reserveOrder(newOrder(sale.id, { userId: 'bob', idempotencyKey: 'k' }))).rejects.toBeInstanceOf(LedgerConflictError);
      expect(await item(sale.id)).toMatchObject({ held: 1 });
      await ledger.reserveOrder(newOrder(sale.id, { userId: 'carol', idempotencyKey: 'k' }));
      await expect(ledger.reserveOrder(newOrder(sale.id, { quantity: 0 }))).rejects.toBeInstanceOf(RangeError);
    });

    test('units per user count reserved and confirmed orders only', async () => {
      const sale = await ledger.createSale(saleInput({ items: [{ ...saleInput().items[0], perUserLimit: 5, maxPerOrder: 5 }] }));
      const a1 = await ledger.reserveOrder(newOrder(sale.id, { userId: 'a', quantity: 2 }));
      await ledger.confirmOrder(a1.id, null);
      await ledger.reserveOrder(newOrder(sale.id, { userId: 'a', quantity: 1 }));
      const b1 = await ledger.reserveOrder(newOrder(sale.id, { userId: 'b', quantity: 4 }));
      await ledger.releaseOrder(b1.id, 'cancelled');
      await ledger.reserveOrder(newOrder(sale.id, { userId: 'c', quantity: 1 }));
      expect(await ledger.unitsPerUser(sale.id)).toEqual([
        { userId: 'a', sku: 'phone', units: 3 },
        { userId: 'c', sku: 'phone', units: 1 },
      ]);
    });

    test('a sale snapshot is one instant: orders confirmed while it is read count exactly once', async () => {
      const sale = await ledger.createSale(saleInput());
      const orders = [];
      for (let i = 0; i < 40; i++) orders.push(await ledger.reserveOrder(newOrder(sale.id, { userId: `u${i}`, quantity: 1 })));
      // Confirm orders one by one while snapshots are taken: in each, sold + held is the same total.
      const confirming = (async () => {
        for (const o of orders) await ledger.confirmOrder(o.id, null);
      })();
      const snaps = [];
      for (let i = 0; i < 15; i++) snaps.push(await ledger.saleSnapshot(sale.id));
      await confirming;
      snaps.push(await ledger.saleSnapshot(sale.id));
      for (const snap of snaps) {
        const item = snap!.sale.items.find((it) => it.sku === 'phone')!;
        const held = snap!.reserved.filter((o) => o.sku === 'phone').reduce((n, o) => n + o.quantity, 0);
        expect(item.sold + held).toBe(40);
        expect(item.held).toBe(held);
        expect(snap!.perUser.reduce((n, u) => n + u.units, 0)).toBe(40);
      }
      expect(snaps.at(-1)!.reserved).toEqual([]);
      expect(await ledger.saleSnapshot('00000000-0000-4000-8000-000000000000')).toBeNull();
      expect(await ledger.saleSnapshot('not-a-uuid')).toBeNull();
    });

    test('expired reservations are the reserved orders whose window has passed', async () => {
      const sale = await ledger.createSale(saleInput());
      const past = (ms: number) => new Date(Date.now() - ms);
      const old = await ledger.reserveOrder(newOrder(sale.id, { reservationExpiresAt: past(60_000) }));
      const older = await ledger.reserveOrder(newOrder(sale.id, { reservationExpiresAt: past(120_000) }));
      const gone = await ledger.reserveOrder(newOrder(sale.id, { reservationExpiresAt: past(90_000) }));
      await ledger.releaseOrder(gone.id, 'cancelled');
      await ledger.reserveOrder(newOrder(sale.id));
      const mine = (await ledger.expiredReservations(new Date(), 1000)).filter((o) => o.saleId === sale.id);
      expect(mine.map((o) => o.id)).toEqual([older.id, old.id]);
      expect((await ledger.expiredReservations(past(100_000), 1000)).filter((o) => o.saleId === sale.id).map((o) => o.id)).toEqual([older.id]);
      expect(await ledger.expiredReservations(new Date(), 1)).toHaveLength(1);
    });

    test('a payment transition is compare-and-set: of two concurrent ones, one wins', async () => {
      const sale = await ledger.createSale(saleInput());
      const auth = await ledger.insertPayment(newAuth(sale.id));
      expect(auth).toMatchObject({ status: 'pending', capturedCents: 0, gatewayRef: null, ticketPlace: 1 });
      expect(await ledger.transitionPayment(auth.id, ['pending'], 'authorized', { gatewayRef: 'ch_1' })).toMatchObject({
        status: 'authorized',
        gatewayRef: 'ch_1',
      });
      const [capture, voided] = await Promise.all([
        ledger.transitionPayment(auth.id, ['authorized'], 'captured', { capturedCents: 49_900, orderId: 'o1', endedReason: 'captured' }),
        ledger.transitionPayment(auth.id, ['authorized'], 'voided', { endedReason: 'sold_out' }),
      ]);
      expect([capture, voided].filter((p) => p !== null)).toHaveLength(1);
      const final = (await ledger.getPayment(auth.id))!;
      expect(final.status).toBe((capture ?? voided)!.status);
      expect(final.gatewayRef).toBe('ch_1');
      expect(await ledger.transitionPayment(auth.id, ['authorized', 'pending'], 'voided')).toBeNull();
      expect(await ledger.getPayment('nope')).toBeNull();
    });

    test('a crowd of inserts and transitions lands as if one by one: races on one payment still have one winner', async () => {
      const sale = await ledger.createSale(saleInput());
      // 40 shoppers pre-authorise at once; one of them twice (a second live authorisation is refused).
      const asks = Array.from({ length: 40 }, (_, i) => newAuth(sale.id, { userId: `crowd-${i}` }));
      asks.splice(20, 0, newAuth(sale.id, { userId: 'crowd-7' }));
      const inserted = await Promise.allSettled(asks.map((a) => ledger.insertPayment(a)));
      expect(inserted.filter((r) => r.status === 'rejected')).toHaveLength(1);
      const auths = inserted.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      expect(auths).toHaveLength(40);

      // All authorised at once; then for each, a capture and a void race, and a late second void follows.
      const authorised = await Promise.all(auths.map((a) => ledger.transitionPayment(a.id, ['pending'], 'authorized', { gatewayRef: `ref-${a.id}` })));
      expect(authorised.every((a) => a?.status === 'authorized')).toBe(true);
      const raced = await Promise.all(
        auths.flatMap((a) => [
          ledger.transitionPayment(a.id, ['authorized'], 'captured', { capturedCents: 49_900, endedReason: 'captured' }),
          ledger.transitionPayment(a.id, ['authorized'], 'voided', { endedReason: 'sold_out' }),
          ledger.transitionPayment(a.id, ['authorized'], 'voided', { endedReason: 'late' }),
        ]),
      );
      for (let i = 0; i < auths.length; i++) {
        const answers = raced.slice(3 * i, 3 * i + 3);
        expect(answers.filter((a) => a !== null)).toHaveLength(1);
        const final = (await ledger.getPayment(auths[i].id))!;
        expect(final.status).toBe(answers.find((a) => a)!.status);
        expect(final.gatewayRef).toBe(`ref-${auths[i].id}`);
      }
      // And a chain submitted at once runs in order: pending → authorized → captured, both succeed.
      const chain = await ledger.insertPayment(newAuth(sale.id, { userId: 'chain' }));
      const [a, b] = await Promise.all([
        ledger.transitionPayment(chain.id, ['pending'], 'authorized', { gatewayRef: 'ch' }),
        ledger.transitionPayment(chain.id, ['authorized'], 'captured', { capturedCents: 100 }),
      ]);
      expect([a?.status, b?.status]).toEqual(['authorized', 'captured']);
      const events = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE payload->>'sale_id' = $1 AND topic LIKE 'payment.%'`, [
        sale.id,
      ]);
      expect(events.rows[0].n).toBe(40 + 40 + 2);
    });

    test('live and open authorisations, and payment counts', async () => {
      const sale = await ledger.createSale(saleInput());
      const first = await ledger.insertPayment(newAuth(sale.id));
      await ledger.transitionPayment(first.id, ['pending'], 'voided', { endedReason: 'superseded' });
      const live = await ledger.insertPayment(newAuth(sale.id, { expiresAt: new Date(Date.now() - 1000) }));
      await ledger.insertPayment(newAuth(sale.id, { userId: 'bob', kind: 'charge', ticketPlace: 0 }));
      const bobs = await ledger.insertPayment(newAuth(sale.id, { userId: 'bob' }));
      await ledger.transitionPayment(bobs.id, ['pending'], 'authorized');

      expect((await ledger.liveAuthorization(sale.id, 'alice'))?.id).toBe(live.id);
      expect(await ledger.liveAuthorization(sale.id, 'nobody')).toBeNull();
      expect((await ledger.openAuthorizations({ saleId: sale.id, limit: 10 })).map((p) => p.id)).toEqual([live.id, bobs.id]);
      expect(await ledger.openAuthorizations({ saleId: sale.id, limit: 1 })).toHaveLength(1);
      const expired = await ledger.openAuthorizations({ expiredBefore: new Date(), limit: 1000 });
      expect(expired.filter((p) => p.saleId === sale.id).map((p) => p.id)).toEqual([live.id]);
      expect(await ledger.paymentCounts(sale.id)).toEqual({ pending: 2, authorized: 1, captured: 0, voided: 1, failed: 0, refunded: 0 });
    });

    test('outbox: appended events are pending, oldest first, until published', async () => {
      // Other tests write events too; publish them so this one sees only its own.
      for (let batch = await ledger.pendingEvents(500); batch.length > 0; batch = await ledger.pendingEvents(500)) {
        await ledger.markPublished(batch.map((e) => e.id));
      }
      await ledger.appendEvent('test.one', { n: 1, nested: { ok: true } });
      await ledger.appendEvent('test.two', { n: 2 });
      const pending = await ledger.pendingEvents(10);
      expect(pending.map((e) => [e.topic, e.payload])).toEqual([
        ['test.one', { n: 1, nested: { ok: true } }],
        ['test.two', { n: 2 }],
      ]);
      expect(typeof pending[0].id).toBe('number');
      expect(pending[0].createdAt).toBeInstanceOf(Date);
      expect(await ledger.pendingEvents(1)).toHaveLength(1);
      await ledger.markPublished([pending[0].id]);
      expect((await ledger.pendingEvents(10)).map((e) => e.topic)).toEqual(['test.two']);
      await ledger.markPublished([]);
      await ledger.markPublished([pending[1].id]);
      expect(await ledger.pendingEvents(10)).toEqual([]);
    });

    test('a unit of work commits together or not at all', async () => {
      if (!(ledger instanceof SqlLedger)) return;
      const sale = await ledger.createSale(saleInput());
      const order = newOrder(sale.id);
      await expect(
        ledger.transaction(async (uow) => {
          await uow.reserveOrder(order);
          await uow.appendEvent('test.rolled_back', { sale_id: sale.id });
          throw new Error('payment service fell over');
        }),
      ).rejects.toThrow('fell over');
      expect(await ledger.getOrder(order.id)).toBeNull();
      expect(await item(sale.id)).toMatchObject({ held: 0 });
      expect(await topicsOf('sale_id', sale.id)).toEqual(['sale.created']);
    });
  });
}
