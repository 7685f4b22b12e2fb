/**
 * SPEC §6 "the ledger is the truth; the engine is rebuilt from it": the drift check finds each
 * way the engine can disagree with the ledger — phantom stock, lost stock, a lost hold, a hold
 * the ledger already confirmed or ended, a user counted for units they do not have, a sale the
 * engine lost — reports it without changing anything, and with `fix` repairs it. And under a
 * crowd buying while the check runs over and over, it never takes a purchase in flight for
 * drift (a wrong repair would oversell or lock a shopper out).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { summary } from '../../src/checkout/drift-check.js';
import type { Stack } from '../support/stack.js';
import { adminHeaders, admitEveryone, createSale, describeStacksAndCluster, enter, openStack, userToken } from '../support/stack.js';

describeStacksAndCluster('drift check', (kind) => {
  let stack: Stack | null;
  beforeAll(async () => {
    // No background loops: the drift timer and the monitor's rebuild-on-touch would repair what these tests break before they look.
    stack = await openStack(kind, { workers: false });
  });
  afterAll(async () => {
    await stack?.close();
  });

  /** A sale of 10 phones with one confirmed and one reserved order. */
  async function saleWithOrders(s: Stack) {
    const sale = await createSale(s, { items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity: 10, per_user_limit: 2 }] });
    const buy = async (paymentToken?: string) => {
      const user = await userToken(s);
      const ticket = await enter(s, sale.id, user);
      await admitEveryone(s, sale.id);
      const res = await s.app.inject({
        method: 'POST',
        url: `/api/flash-sales/${sale.id}/purchase`,
        headers: { ...user.headers, 'idempotency-key': randomUUID() },
        payload: { ticket: ticket.queue_ticket, sku: 'phone', ...(paymentToken ? { payment_token: paymentToken } : {}) },
      });
      expect(res.statusCode).toBe(201);
      return { user, order: res.json() as { order_id: string; status: string } };
    };
    const paid = await buy('tok_visa');
    const reserved = await buy();
    expect([paid.order.status, reserved.order.status]).toEqual(['confirmed', 'reserved']);
    return { sale, paid, reserved };
  }

  const reconcile = (s: Stack, saleId: string, fix: boolean) =>
    s.app.inject({ method: 'POST', url: `/api/admin/flash-sales/${saleId}/reconcile`, headers: adminHeaders, payload: { fix } });
  const remaining = async (s: Stack, saleId: string) => (await s.runtime.engine.snapshot(saleId, 0)).remaining.phone;

  it('a consistent sale: nothing differs', async (ctx) => {
    if (!stack) return ctx.skip();
    const { sale } = await saleWithOrders(stack);
    const res = await reconcile(stack, sale.id, true);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ drifted: false, fixed: false, engine: 'ok', summary: 'no drift' });
    expect(res.json().skus).toEqual([
      { sku: 'phone', quantity: 10, ledger_sold: 1, ledger_held: 1, engine_stock: 8, engine_held: 1, engine_sold: 1, stock_delta: 0 },
    ]);
  });

  it('phantom stock (the engine has units the ledger sold): reported, then taken away with fix', async (ctx) => {
    if (!stack) return ctx.skip();
    const { sale } = await saleWithOrders(stack);
    await stack.runtime.engine.repair(sale.id, { epoch: (await stack.runtime.engine.inspect(sale.id))!.epoch, restore: [], stock: { phone: 3 }, perUser: [] });
    const dry = await reconcile(stack, sale.id, false);
    expect(dry.json()).toMatchObject({ drifted: true, fixed: false });
    expect(dry.json().skus[0]).toMatchObject({ engine_stock: 11, stock_delta: -3 });
    expect(await remaining(stack, sale.id)).toBe(11);
    const fixed = await reconcile(stack, sale.id, true);
    expect(fixed.json()).toMatchObject({ drifted: true, fixed: true, short: 0 });
    expect(await remaining(stack, sale.id)).toBe(8);
    expect((await reconcile(stack, sale.id, true)).json().drifted).toBe(false);
  });

  it('two repairs at once: one at a time per sale, so a phantom is taken away once, not twice', async (ctx) => {
    if (!stack) return ctx.skip();
    const { sale } = await saleWithOrders(stack);
    await stack.runtime.engine.repair(sale.id, { epoch: (await stack.runtime.engine.inspect(sale.id))!.epoch, restore: [], stock: { phone: 3 }, perUser: [] });
    const answers = await Promise.all([reconcile(stack, sale.id, true), reconcile(stack, sale.id, true)]);
    // Each either repaired, found nothing left to repair, or was told another one is running.
    const outcomes = answers.map((r) => (r.statusCode === 200 ? (r.json().fixed ? 'repaired' : 'nothing') : r.json().error.code));
    expect(outcomes.filter((o) => o === 'repaired')).toEqual(['repaired']);
    expect(outcomes.every((o) => ['repaired', 'nothing', 'REQUEST_IN_PROGRESS'].includes(o))).toBe(true);
    expect(await remaining(stack, sale.id)).toBe(8);
  });

  it('a repair worked out before the sale was rebuilt is not applied to the rebuilt sale', async (ctx) => {
    if (!stack) return ctx.skip();
    const { sale } = await saleWithOrders(stack);
    const seen = (await stack.runtime.engine.inspect(sale.id))!;
    await stack.runtime.engine.dropSale(sale.id);
    await stack.runtime.sales.rebuild(sale.id);
    const result = await stack.runtime.engine.repair(sale.id, { epoch: seen.epoch, restore: [], stock: { phone: -3 }, perUser: [] });
    expect(result).toMatchObject({ stale: true, restored: 0 });
    expect(await remaining(stack, sale.id)).toBe(8);
  });

  it('lost stock (the engine counts units sold that the ledger never sold): given back', async (ctx) => {
    if (!stack) return ctx.skip();
    const { sale } = await saleWithOrders(stack);
    await stack.runtime.engine.repair(sale.id, { epoch: (await stack.runtime.engine.inspect(sale.id))!.epoch, restore: [], stock: { phone: -2 }, perUser: [] });
    const fixed = await stack.runtime.driftCheck.check(sale.id, { fix: true });
    expect(fixed.skus[0]).toMatchObject({ engineSold: 3, ledgerSold: 1, stockDelta: 2 });
    expect(await remaining(stack, sale.id)).toBe(8);
  });

  it('a lost hold of a reserved order comes back, with its units out of stock and counted for its user', async (ctx) => {
    if (!stack) return ctx.skip();
    const { sale, reserved } = await saleWithOrders(stack);
    await stack.runtime.engine.releaseHold(sale.id, reserved.order.order_id);
    expect(await remaining(stack, sale.id)).toBe(9);
    const report = await stack.runtime.driftCheck.check(sale.id, { fix: true });
    expect(report.holds.restored).toEqual([reserved.order.order_id]);
    expect(await remaining(stack, sale.id)).toBe(8);
    const hold = await stack.runtime.engine.getHold(sale.id, reserved.order.order_id);
    expect(hold).toMatchObject({ userId: reserved.user.sub, sku: 'phone', quantity: 1 });
    const counts = (await stack.runtime.engine.inspect(sale.id))!.perUser.find((u) => u.userId === reserved.user.sub);
    expect(counts?.units).toBe(1);
  });

  it('a hold whose order the ledger confirmed is made permanent; one it ended goes back to stock', async (ctx) => {
    if (!stack) return ctx.skip();
    const { sale, reserved } = await saleWithOrders(stack);
    await stack.runtime.ledger.confirmOrder(reserved.order.order_id, null);
    const confirmed = await stack.runtime.driftCheck.check(sale.id, { fix: true });
    expect(confirmed.holds.confirmed).toEqual([reserved.order.order_id]);
    expect(await stack.runtime.engine.getHold(sale.id, reserved.order.order_id)).toBeNull();
    expect(await remaining(stack, sale.id)).toBe(8);

    const other = await saleWithOrders(stack);
    await stack.runtime.ledger.releaseOrder(other.reserved.order.order_id, 'expired');
    const released = await stack.runtime.driftCheck.check(other.sale.id, { fix: true });
    expect(released.holds.released).toEqual([other.reserved.order.order_id]);
    expect(await remaining(stack, other.sale.id)).toBe(9);
  });

  it('a user counted for more units than they have is freed; one counted for fewer is reported, not raised', async (ctx) => {
    if (!stack) return ctx.skip();
    const { sale, paid, reserved } = await saleWithOrders(stack);
    await stack.runtime.engine.repair(sale.id, {
      epoch: (await stack.runtime.engine.inspect(sale.id))!.epoch,
      restore: [],
      stock: {},
      perUser: [
        { userId: paid.user.sub, sku: 'phone', delta: 1 },
        { userId: reserved.user.sub, sku: 'phone', delta: -1 },
      ],
    });
    const report = await stack.runtime.driftCheck.check(sale.id, { fix: true });
    const byUser = new Map(report.perUser.map((u) => [u.userId, u]));
    expect(byUser.get(paid.user.sub)).toMatchObject({ engine: 2, ledger: 1, delta: -1, fixed: true });
    expect(byUser.get(reserved.user.sub)).toMatchObject({ engine: 0, ledger: 1, delta: 1, fixed: false });
    const counts = new Map((await stack.runtime.engine.inspect(sale.id))!.perUser.map((u) => [u.userId, u.units]));
    expect([counts.get(paid.user.sub), counts.get(reserved.user.sub)]).toEqual([1, 0]);
  });

  it('a sale the engine lost: reported missing, rebuilt with fix from one ledger snapshot', async (ctx) => {
    if (!stack) return ctx.skip();
    const { sale, reserved } = await saleWithOrders(stack);
    await stack.runtime.engine.dropSale(sale.id);
    expect((await reconcile(stack, sale.id, false)).json()).toMatchObject({ engine: 'missing', fixed: false });
    expect((await reconcile(stack, sale.id, true)).json()).toMatchObject({ engine: 'rebuilt', fixed: true });
    expect(await remaining(stack, sale.id)).toBe(8);
    expect(await stack.runtime.engine.getHold(sale.id, reserved.order.order_id)).not.toBeNull();
    expect((await stack.runtime.driftCheck.check(sale.id, { fix: false })).drifted).toBe(false);
  });

  it('an unknown sale is 404, a bad body 400, and no admin token 401', async (ctx) => {
    if (!stack) return ctx.skip();
    expect((await reconcile(stack, randomUUID(), false)).json().error.code).toBe('SALE_NOT_FOUND');
    const { sale } = await saleWithOrders(stack);
    const bad = await stack.app.inject({
      method: 'POST',
      url: `/api/admin/flash-sales/${sale.id}/reconcile`,
      headers: adminHeaders,
      payload: { fix: 'yes please' },
    });
    expect(bad.statusCode).toBe(400);
    const anon = await stack.app.inject({ method: 'POST', url: `/api/admin/flash-sales/${sale.id}/reconcile`, payload: {} });
    expect(anon.statusCode).toBe(401);
  });

  it('a crowd buys while the check runs over and over: nothing in flight is taken for drift, and the books agree', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const quantity = 30;
    const sale = await createSale(s, {
      items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity, per_user_limit: 1 }],
    });
    const buyers = await Promise.all(Array.from({ length: 60 }, () => userToken(s)));
    const tickets = await Promise.all(buyers.map((b) => enter(s, sale.id, b)));
    await admitEveryone(s, sale.id);
    let buying = true;
    const reports: Array<{ drifted: boolean; summary: string }> = [];
    const checker = (async () => {
      while (buying) {
        const r = await s.runtime.driftCheck.check(sale.id, { fix: true });
        reports.push({ drifted: r.drifted, summary: `${summary(r)} ${JSON.stringify(r.skus)} ${JSON.stringify(r.holds)}` });
        // A macrotask between checks: the embedded engine and PGlite answer without one, and a
        // loop of microtasks would starve the purchases it watches.
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const answers = await Promise.all(
      buyers.map((b, i) =>
        s.app.inject({
          method: 'POST',
          url: `/api/flash-sales/${sale.id}/purchase`,
          headers: { ...b.headers, 'idempotency-key': randomUUID() },
          // Two in three pay at once; the rest reserve and never pay.
          payload: { ticket: tickets[i].queue_ticket, sku: 'phone', ...(i % 3 ? { payment_token: 'tok_visa' } : {}) },
        }),
      ),
    );
    buying = false;
    await checker;
    expect(reports.length).toBeGreaterThan(0);
    expect(reports.filter((r) => r.drifted)).toEqual([]);
    const won = answers.filter((a) => a.statusCode === 201).length;
    expect(won).toBe(quantity);
    const item = (await s.runtime.ledger.getSale(sale.id))!.items[0];
    const snap = await s.runtime.engine.snapshot(sale.id, 0);
    expect(item.sold + item.held).toBe(quantity);
    expect(snap.remaining.phone + snap.heldUnits + item.sold).toBe(quantity);
    expect((await s.runtime.driftCheck.check(sale.id, { fix: false })).drifted).toBe(false);
  }, 60_000);
});
