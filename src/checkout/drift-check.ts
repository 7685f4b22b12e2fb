/**
 * The drift check: compares a sale's engine state (stock, holds, per-user counts) with the
 * ledger, the truth, and repairs the engine. It runs on a timer on one node (a lease), and on
 * demand from `stampede reconcile` and `POST /api/admin/flash-sales/{id}/reconcile`.
 *
 * Engine and ledger cannot be read at one instant together, and a live sale moves between the
 * reads, so the check reads the ledger (one snapshot), then the engine (one step), then the
 * ledger again, and acts only on differences that the order of writes rules out as "in flight":
 * the engine takes a hold before the ledger records its order, and the ledger confirms or ends an
 * order before the engine follows. So:
 * - a hold whose order the ledger confirmed or ended is settled to match (the ledger decided; the
 *   request that decided it would do the same next, so it is not counted as drift);
 * - a hold without any order is in flight or orphaned by a dead node: left to the hold sweeper;
 * - an order reserved in both ledger reads whose hold the engine lacks was lost: it comes back;
 * - units the engine counts sold must lie between the ledger's sold before and after the engine
 *   read (less confirmations the engine has not applied yet); outside, stock moves by the gap;
 * - a user counted for more units than the ledger could know of is freed by the difference.
 * A user counted for fewer than the ledger surely had is reported, not changed: raising a count
 * wrongly would lock a shopper out, and the rebuild path never produces it.
 */
import type { Engine, EngineInspection, EngineRepair } from '../engine/engine.js';
import { randomUUID } from 'node:crypto';
import { StampedeError } from '../errors.js';
import type { Order, SaleRecordSnapshot } from '../ledger/ledger.js';
import type { OrdersRepository } from '../ledger/repositories.js';
import { holdOfOrder } from '../sales/sale-service.js';

/** A repair holds its sale's lease this long at most (renewed by nobody: a check takes well under it). */
const REPAIR_LEASE_MS = 60_000;

export interface SkuDrift {
  sku: string;
  quantity: number;
  ledgerSold: number;
  ledgerHeld: number;
  engineStock: number;
  engineHeld: number;
  /** Units the engine counts sold: quantity less stock less held. */
  engineSold: number;
  /** How far engine stock moves to match the ledger (negative: phantom units taken away). */
  stockDelta: number;
}

export interface DriftReport {
  saleId: string;
  checkedAt: string;
  /** `missing`: the engine does not hold the sale; `rebuilt`: it did not, and was rebuilt from the ledger. */
  engine: 'ok' | 'missing' | 'rebuilt';
  skus: SkuDrift[];
  holds: {
    /** Holds of orders the ledger confirmed: made permanent (with fix). Not drift: usually a confirmation in flight. */
    confirmed: string[];
    /** Holds of orders the ledger ended: returned to stock (with fix). Not drift: usually an ending in flight. */
    released: string[];
    /** Reserved orders whose hold the engine lost: restored. */
    restored: string[];
    /** Holds without an order yet (a purchase in flight, or a node that died): the hold sweeper's. */
    pending: number;
  };
  perUser: Array<{ userId: string; sku: string; engine: number; ledger: number; delta: number; fixed: boolean }>;
  /** True when anything differed beyond what is in flight. */
  drifted: boolean;
  /** True when the differences were repaired. */
  fixed: boolean;
  /** Stock units the repair could not take (stock already at zero): the next check tries again. */
  short: number;
  /** The sale was rebuilt between the engine read and the repair, so nothing was changed: check again. */
  stale: boolean;
}

/** What the check needs of the sales tier: the ledger's consistent picture, and a rebuild. */
export interface DriftSales {
  ledgerPicture(saleId: string): Promise<SaleRecordSnapshot | null>;
  rebuild(saleId: string): Promise<boolean>;
}

export class DriftCheck {
  constructor(
    private readonly engine: Pick<Engine, 'inspect' | 'repair' | 'confirmHold' | 'releaseHold' | 'acquireLease' | 'releaseLease'>,
    private readonly orders: Pick<OrdersRepository, 'getOrder'>,
    private readonly sales: DriftSales,
    private readonly log: { warn(obj: object, msg: string): void } = console,
  ) {}

  /**
   * One check of one sale. With `fix`, one repair at a time per sale across every node and path
   * (the timer, the admin route, the CLI): a second one meanwhile is refused, since each repair
   * moves stock by amounts worked out from its own reads.
   */
  async check(saleId: string, opts: { fix: boolean }): Promise<DriftReport> {
    if (!opts.fix) return this.run(saleId, false);
    const lease = `drift:${saleId}`;
    const owner = randomUUID();
    if (!(await this.engine.acquireLease(lease, owner, REPAIR_LEASE_MS))) {
      throw new StampedeError('REQUEST_IN_PROGRESS', 'Another reconcile of this sale is running; retry shortly', { retryAfter: 1 });
    }
    try {
      return await this.run(saleId, true);
    } finally {
      await this.engine.releaseLease(lease, owner).catch(() => {});
    }
  }

  private async run(saleId: string, fix: boolean): Promise<DriftReport> {
    const before = await this.sales.ledgerPicture(saleId);
    if (!before) throw new StampedeError('SALE_NOT_FOUND');
    const report: DriftReport = {
      saleId,
      checkedAt: new Date().toISOString(),
      engine: 'ok',
      skus: [],
      holds: { confirmed: [], released: [], restored: [], pending: 0 },
      perUser: [],
      drifted: false,
      fixed: false,
      short: 0,
      stale: false,
    };
    const engine = await this.engine.inspect(saleId);
    if (!engine) {
      report.engine = fix && (await this.sales.rebuild(saleId)) ? 'rebuilt' : 'missing';
      report.fixed = report.engine === 'rebuilt';
      return report;
    }
    const after = await this.sales.ledgerPicture(saleId);
    if (!after) throw new StampedeError('SALE_NOT_FOUND');
    const repair = await this.compare(before, engine, after, report);
    if (report.drifted) {
      this.log.warn({ saleId, report: summary(report) }, fix ? 'engine drifted from the ledger: repairing' : 'engine drifted from the ledger');
    }
    if (fix) {
      // Settling holds the ledger already decided is what the request in flight (or the sweeper)
      // would do next; exactly once either way.
      for (const id of report.holds.confirmed) await this.engine.confirmHold(saleId, id);
      for (const id of report.holds.released) await this.engine.releaseHold(saleId, id);
    }
    if (fix && report.drifted) {
      const repaired = await this.engine.repair(saleId, repair);
      report.short = repaired.short;
      report.stale = repaired.stale;
      report.fixed = !repaired.stale;
    }
    return report;
  }

  private async compare(before: SaleRecordSnapshot, engine: EngineInspection, after: SaleRecordSnapshot, report: DriftReport): Promise<EngineRepair> {
    const reservedAfter = byId(after.reserved);
    const inEngine = new Map(engine.holds.map((h) => [h.holdId, h]));
    const fix: EngineRepair = { epoch: engine.epoch, restore: [], stock: {}, perUser: [] };

    // Holds the ledger has moved on from, or not heard of yet.
    const confirmedUnits = new Map<string, number>();
    const notReservedAfter = new Map<string, number>();
    for (const hold of engine.holds) {
      if (reservedAfter.has(hold.holdId)) continue;
      add(notReservedAfter, userSkuOf(hold), hold.quantity);
      const order = await this.orders.getOrder(hold.holdId);
      if (!order || order.status === 'reserved') report.holds.pending++;
      else if (order.status === 'confirmed') {
        report.holds.confirmed.push(hold.holdId);
        add(confirmedUnits, hold.sku, hold.quantity);
      } else report.holds.released.push(hold.holdId);
    }
    // Orders reserved before and after the engine read, whose hold the engine does not have.
    for (const order of before.reserved) {
      if (!reservedAfter.has(order.id) || inEngine.has(order.id)) continue;
      report.holds.restored.push(order.id);
      fix.restore.push(holdOfOrder(order));
    }

    const engineHeld = new Map<string, number>();
    for (const hold of engine.holds) add(engineHeld, hold.sku, hold.quantity);
    const soldAfter = new Map(after.sale.items.map((i) => [i.sku, i.sold]));
    for (const item of before.sale.items) {
      const stock = engine.stock[item.sku] ?? 0;
      const held = engineHeld.get(item.sku) ?? 0;
      const engineSold = item.quantity - stock - held;
      // Consistent: sold(before) ≤ engineSold + confirmations not applied yet, and engineSold ≤ sold(after).
      const missing = item.sold - (engineSold + (confirmedUnits.get(item.sku) ?? 0));
      const extra = engineSold - (soldAfter.get(item.sku) ?? item.sold);
      const stockDelta = missing > 0 ? -missing : extra > 0 ? extra : 0;
      if (stockDelta !== 0) fix.stock[item.sku] = stockDelta;
      report.skus.push({
        sku: item.sku,
        quantity: item.quantity,
        ledgerSold: item.sold,
        ledgerHeld: item.held,
        engineStock: stock,
        engineHeld: held,
        engineSold,
        stockDelta,
      });
    }

    // Per user: more than the ledger could know of is freed; fewer than it surely had is reported.
    // Surely: units confirmed before the engine read, and orders reserved in both ledger reads.
    const ledgerBefore = new Map(before.perUser.map((u) => [userSkuOf(u), u.units]));
    const ledgerAfter = new Map(after.perUser.map((u) => [userSkuOf(u), u.units]));
    const reservedUnitsBefore = new Map<string, number>();
    for (const o of before.reserved) add(reservedUnitsBefore, userSkuOf(o), o.quantity);
    const reservedThroughout = new Map<string, number>();
    for (const o of before.reserved) if (reservedAfter.has(o.id)) add(reservedThroughout, userSkuOf(o), o.quantity);
    const restoredUnits = new Map<string, number>();
    for (const hold of fix.restore) add(restoredUnits, userSkuOf(hold), hold.quantity);
    const counted = new Map(engine.perUser.map((u) => [userSkuOf(u), u.units]));
    for (const key of new Set([...counted.keys(), ...ledgerBefore.keys(), ...ledgerAfter.keys()])) {
      const [userId, sku] = splitUserSku(key);
      const units = (counted.get(key) ?? 0) + (restoredUnits.get(key) ?? 0);
      const most = Math.max(ledgerBefore.get(key) ?? 0, ledgerAfter.get(key) ?? 0);
      const confirmedBefore = (ledgerBefore.get(key) ?? 0) - (reservedUnitsBefore.get(key) ?? 0);
      const least = confirmedBefore + (reservedThroughout.get(key) ?? 0);
      const over = units - (notReservedAfter.get(key) ?? 0) - most;
      if (over > 0) {
        fix.perUser.push({ userId, sku, delta: -over });
        report.perUser.push({ userId, sku, engine: units, ledger: most, delta: -over, fixed: true });
      } else if (units < least) {
        report.perUser.push({ userId, sku, engine: units, ledger: least, delta: least - units, fixed: false });
      }
    }

    // Holds the ledger confirmed or ended are most often a request between its ledger write and
    // its engine step: settled, but not drift. Drift is what no request in flight explains.
    report.drifted = report.holds.restored.length + report.perUser.length > 0 || report.skus.some((s) => s.stockDelta !== 0);
    return fix;
  }
}

/** One line's worth of a report, for logs and the CLI. */
export function summary(r: DriftReport): string {
  if (r.engine !== 'ok') return `engine ${r.engine}`;
  if (r.stale) return 'the sale was rebuilt during the check: nothing changed; check again';
  const parts = r.skus.filter((s) => s.stockDelta !== 0).map((s) => `${s.sku} stock ${s.stockDelta > 0 ? '+' : ''}${s.stockDelta}`);
  const h = r.holds;
  if (h.restored.length) parts.push(`${h.restored.length} holds restored`);
  const freed = r.perUser.filter((u) => u.fixed).length;
  if (freed) parts.push(`${freed} users' counts lowered`);
  const low = r.perUser.length - freed;
  if (low) parts.push(`${low} users counted low (reported only)`);
  const settled = h.confirmed.length + h.released.length;
  return (parts.length ? parts.join(', ') : 'no drift') + (settled ? ` (${settled} holds caught up with the ledger)` : '');
}

/** The report as the admin API and `stampede reconcile --json` print it (snake_case, as every answer). */
export function driftJson(r: DriftReport) {
  return {
    sale_id: r.saleId,
    checked_at: r.checkedAt,
    engine: r.engine,
    drifted: r.drifted,
    fixed: r.fixed,
    short: r.short,
    stale: r.stale,
    summary: summary(r),
    skus: r.skus.map((s) => ({
      sku: s.sku,
      quantity: s.quantity,
      ledger_sold: s.ledgerSold,
      ledger_held: s.ledgerHeld,
      engine_stock: s.engineStock,
      engine_held: s.engineHeld,
      engine_sold: s.engineSold,
      stock_delta: s.stockDelta,
    })),
    holds: { ...r.holds },
    per_user: r.perUser.map((u) => ({ user_id: u.userId, sku: u.sku, engine: u.engine, ledger: u.ledger, delta: u.delta, fixed: u.fixed })),
  };
}

const byId = (orders: Order[]) => new Map(orders.map((o) => [o.id, o]));
const userSkuOf = (u: { userId: string; sku: string }) => `${u.userId}\t${u.sku}`;
function splitUserSku(key: string): [string, string] {
  const tab = key.lastIndexOf('\t');
  return [key.slice(0, tab), key.slice(tab + 1)];
}
function add(map: Map<string, number>, key: string, n: number) {
  map.set(key, (map.get(key) ?? 0) + n);
}
