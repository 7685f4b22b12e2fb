/**
 * The embedded engine: the whole hot state of every sale in this process's memory. Each method
 * runs to completion without awaiting, so every step is atomic exactly as a Lua script is in
 * Redis. It is the reference the Redis scripts are tested against (same contract suite), and it
 * is what `npm start`, demos and single-process tests run on.
 */
import { randomUUID } from 'node:crypto';
import type {
  AdmitResult,
  Engine,
  EngineHold,
  EngineInspection,
  EngineRepair,
  EngineSale,
  EnterOptions,
  EnterResult,
  ReserveRequest,
  ReserveResult,
  SaleLoad,
  SaleSnapshot,
} from '../engine.js';
import { refuse } from '../engine-refusals.js';
import { initialState, userSku } from '../initial-state.js';
import { admittedAt, draw, entered, prequeued, purgeLapsed, type SaleState } from './sale-state.js';
import { advancesAbove } from '../watermark-log.js';
import { advanceOverLanes, laneFirstAbove, laneOf, lanePlace, takenUpTo } from '../lanes.js';

export class MemoryEngine implements Engine {
  readonly kind = 'memory' as const;
  private readonly sales = new Map<string, SaleState>();
  private readonly leases = new Map<string, { owner: string; until: number }>();
  private readonly used = new Map<string, number>();
  private readonly retiring = new Map<string, NodeJS.Timeout>();
  private readonly clock: () => number;

  /** `clock` lets tests move the engine's time; production uses the process clock. */
  constructor(opts: { clock?: () => number } = {}) {
    this.clock = opts.clock ?? Date.now;
  }

  async now() {
    return this.clock();
  }
  async ping() {}
  async close() {
    for (const timer of this.retiring.values()) clearTimeout(timer);
    this.retiring.clear();
    this.sales.clear();
  }

  async loadSale(load: SaleLoad): Promise<boolean> {
    if (this.sales.has(load.sale.id)) return false;
    const { stock, holds, perUser, buyers } = initialState(load);
    this.sales.set(load.sale.id, {
      sale: structuredClone(load.sale),
      epoch: randomUUID().slice(0, 8),
      stock,
      holds,
      perUser,
      idempotency: new Map(),
      places: new Map(),
      prequeue: new Map(),
      drawnPlaces: null,
      shadow: new Map(),
      flags: new Map(),
      seq: 0,
      lanes: lanesOf(load.sale),
      laneEntered: 0,
      laneWaiting: 0,
      stepAdmitted: 0,
      late: 0,
      watermark: 0,
      watermarkLog: [],
      active: new Map(),
      lastTickAt: this.clock(),
      carry: 0,
      buyers,
    });
    return true;
  }

  async hasSale(saleId: string) {
    return this.sales.has(saleId);
  }

  async updateSale(sale: EngineSale): Promise<void> {
    const s = this.state(sale.id);
    const next = new Map<string, number>();
    for (const item of sale.items) {
      const old = s.sale.items.find((i) => i.sku === item.sku);
      const current = s.stock.get(item.sku) ?? 0;
      const value = old ? current + item.quantity - old.quantity : item.quantity;
      if (value < 0) refuse('INVALID_SALE');
      next.set(item.sku, value);
    }
    for (const old of s.sale.items) {
      if (!next.has(old.sku) && (s.stock.get(old.sku) ?? 0) !== old.quantity) refuse('INVALID_SALE');
    }
    s.stock = next;
    // Lanes are fixed for the sale's life (the API refuses a change): places already given depend on them.
    s.sale = { ...structuredClone(sale), queueShards: s.sale.queueShards };
  }

  async dropSale(saleId: string) {
    this.sales.delete(saleId);
  }

  async retire(saleId: string, afterMs: number) {
    clearTimeout(this.retiring.get(saleId));
    const timer = setTimeout(
      () => {
        this.retiring.delete(saleId);
        this.sales.delete(saleId);
      },
      Math.max(1, Math.min(afterMs, 2 ** 31 - 1)),
    );
    timer.unref();
    this.retiring.set(saleId, timer);
  }

  async inspect(saleId: string): Promise<EngineInspection | null> {
    const s = this.sales.get(saleId);
    if (!s) return null;
    return {
      stock: Object.fromEntries(s.stock),
      holds: [...s.holds.values()].map((h) => ({ ...h })),
      perUser: [...s.perUser].map(([field, units]) => {
        const tab = field.lastIndexOf('\t');
        return { userId: field.slice(0, tab), sku: field.slice(tab + 1), units };
      }),
      epoch: s.epoch,
    };
  }

  async repair(saleId: string, fix: EngineRepair) {
    const s = this.sales.get(saleId);
    if (!s || s.epoch !== fix.epoch) return { restored: 0, short: 0, stale: true };
    let restored = 0;
    let short = 0;
    const addStock = (sku: string, delta: number) => {
      const now = (s.stock.get(sku) ?? 0) + delta;
      if (now < 0) short -= now;
      s.stock.set(sku, Math.max(0, now));
    };
    const addUser = (userId: string, sku: string, delta: number) => {
      const key = userSku(userId, sku);
      s.perUser.set(key, Math.max(0, (s.perUser.get(key) ?? 0) + delta));
    };
    for (const hold of fix.restore) {
      if (s.holds.has(hold.holdId)) continue;
      s.holds.set(hold.holdId, { ...hold });
      addStock(hold.sku, -hold.quantity);
      addUser(hold.userId, hold.sku, hold.quantity);
      restored++;
    }
    for (const [sku, delta] of Object.entries(fix.stock)) addStock(sku, delta);
    for (const u of fix.perUser) addUser(u.userId, u.sku, u.delta);
    return { restored, short, stale: false };
  }

  async snapshot(saleId: string, buyersFrom: number, admittedFrom = 0): Promise<SaleSnapshot> {
    const s = this.state(saleId);
    let heldUnits = 0;
    for (const h of s.holds.values()) heldUnits += h.quantity;
    const now = this.clock();
    const active = purgeLapsed(s, now);
    return {
      now,
      epoch: s.epoch,
      startsAt: s.sale.startsAt,
      endsAt: s.sale.endsAt,
      cancelled: s.sale.cancelled,
      watermark: s.watermark,
      entered: entered(s),
      prequeued: prequeued(s),
      drawn: s.drawnPlaces !== null,
      active,
      remaining: Object.fromEntries(s.stock),
      heldUnits,
      buyers: s.buyers.slice(buyersFrom),
      buyersNext: s.buyers.length,
      flags: Object.fromEntries(s.flags),
      advances: advancesAbove(s.watermarkLog, admittedFrom),
      queueShards: Math.max(1, s.lanes.length),
      waiting: s.lanes.length ? s.laneWaiting : Math.max(0, entered(s) - s.watermark),
    };
  }

  async enterQueue(saleId: string, userId: string, opts: EnterOptions): Promise<EnterResult> {
    const s = this.state(saleId);
    const now = this.clock();
    if (s.sale.cancelled) refuse('SALE_CANCELLED');
    if (now >= s.sale.endsAt) refuse('SALE_ENDED');
    const randomized = s.sale.mode === 'randomized_prequeue';
    if (randomized && now >= s.sale.startsAt) draw(s);
    const found = (place: number, shadow = false): EnterResult => ({ place, epoch: s.epoch, fresh: false, shadow });

    const placed = s.places.get(userId);
    if (placed !== undefined) return found(placed);
    if (s.shadow.has(userId)) return found(s.shadow.get(userId)!, true);
    if (s.drawnPlaces?.has(userId)) return found(s.drawnPlaces.get(userId)!);
    if (s.prequeue.has(userId)) return found(0);

    if (s.lanes.length) return this.enterLane(s, userId, opts);
    if (opts.shadowReason) {
      // A place that looks like the next real one, in a space the watermark never serves.
      const place = randomized && s.drawnPlaces === null ? 0 : entered(s) + 1;
      s.shadow.set(userId, place);
      s.flags.set(opts.shadowReason, (s.flags.get(opts.shadowReason) ?? 0) + 1);
      return { place, epoch: s.epoch, fresh: true, shadow: true };
    }
    if (randomized && s.drawnPlaces === null) {
      s.prequeue.set(userId, opts.draw);
      return { place: 0, epoch: s.epoch, fresh: true, shadow: false };
    }
    s.seq += 1;
    const place = prequeued(s) + s.seq;
    s.places.set(userId, place);
    return { place, epoch: s.epoch, fresh: true, shadow: false };
  }

  /** `enterQueue` for a sale with lanes: what `enterLane-3.lua` does in the lane's own slot. */
  private enterLane(s: SaleState, userId: string, opts: EnterOptions): EnterResult {
    const shards = s.lanes.length;
    const k = laneOf(userId, shards);
    const lane = s.lanes[k];
    const floor = opts.floor?.epoch === s.epoch ? opts.floor.watermark : 0;
    lane.seq = Math.max(lane.seq, laneFirstAbove(floor, k, shards) - 1);
    if (opts.shadowReason) {
      const place = lanePlace(lane.seq + 1, k, shards);
      s.shadow.set(userId, place);
      lane.flags.set(opts.shadowReason, (lane.flags.get(opts.shadowReason) ?? 0) + 1);
      return { place, epoch: s.epoch, fresh: true, shadow: true };
    }
    lane.seq += 1;
    lane.count += 1;
    const place = lanePlace(lane.seq, k, shards);
    s.places.set(userId, place);
    return { place, epoch: s.epoch, fresh: true, shadow: false };
  }

  async placeOf(saleId: string, userId: string): Promise<number | null> {
    const s = this.state(saleId);
    if (s.sale.mode === 'randomized_prequeue' && this.clock() >= s.sale.startsAt) draw(s);
    return s.places.get(userId) ?? s.drawnPlaces?.get(userId) ?? s.shadow.get(userId) ?? null;
  }

  async admit(saleId: string): Promise<AdmitResult> {
    const s = this.state(saleId);
    const now = this.clock();
    const sale = s.sale;
    const seqs = s.lanes.map((lane) => lane.seq);
    const laneWaiting = () => seqs.reduce((a, b) => a + b, 0) - takenUpTo(s.watermark, seqs);
    const idle = (): AdmitResult => {
      s.lastTickAt = now;
      s.carry = 0;
      if (s.lanes.length) s.laneWaiting = laneWaiting();
      return { watermark: s.watermark, admitted: 0 };
    };
    if (s.lanes.length) {
      s.laneEntered = s.lanes.reduce((n, lane) => n + lane.count, 0);
      s.flags = new Map();
      for (const lane of s.lanes) for (const [reason, n] of lane.flags) s.flags.set(reason, (s.flags.get(reason) ?? 0) + n);
    }
    if (sale.cancelled || now < sale.startsAt || now >= sale.endsAt) return idle();
    if (sale.mode === 'randomized_prequeue') draw(s);
    let stock = 0;
    for (const v of s.stock.values()) stock += v;
    if (stock <= 0) return idle();

    purgeLapsed(s, now);
    // Late admissions (lanes): in by the line without a step (admit-6.lua says when); they count
    // against the active cap and the rate from the step that finds them.
    let late = 0;
    if (s.lanes.length) {
      const lateNow = s.laneEntered - s.stepAdmitted - laneWaiting();
      late = Math.max(0, lateNow - s.late);
      for (let i = 1; i <= late; i++) s.active.set(-(s.late + i), now);
      if (late > 0) s.late = lateNow;
    }
    const tokens = Math.max(0, Math.min(s.carry + ((now - s.lastTickAt) * sale.admissionRatePerSec) / 1000, Math.max(1, sale.admissionRatePerSec)) - late);
    const room = sale.maxActive - s.active.size;
    const waiting = s.lanes.length ? laneWaiting() : entered(s) - s.watermark;
    const n = Math.max(0, Math.floor(Math.min(tokens, room, waiting)));
    if (s.lanes.length) {
      const step = advanceOverLanes(s.watermark, n, seqs);
      for (const place of step.places) s.active.set(place, now);
      s.watermark = step.watermark;
    } else {
      for (let i = 1; i <= n; i++) s.active.set(s.watermark + i, now);
      s.watermark += n;
    }
    if (n > 0) s.watermarkLog.push([s.watermark, now]);
    // Unused allowance carries over only while people wait for it.
    s.carry = waiting > n ? tokens - n : 0;
    s.lastTickAt = now;
    if (s.lanes.length) {
      s.laneWaiting = waiting - n;
      s.stepAdmitted += n;
    }
    return { watermark: s.watermark, admitted: n };
  }

  async reserve(saleId: string, req: ReserveRequest): Promise<ReserveResult> {
    const s = this.state(saleId);
    const now = this.clock();
    const idemKey = userSku(req.userId, req.idempotencyKey);
    const first = s.idempotency.get(idemKey);
    if (first) {
      if (first.fingerprint !== req.fingerprint) refuse('IDEMPOTENCY_KEY_REUSED');
      return { kind: 'replay', holdId: first.holdId };
    }
    const sale = s.sale;
    if (sale.cancelled) refuse('SALE_CANCELLED');
    if (now < sale.startsAt) refuse('SALE_NOT_OPEN');
    if (now >= sale.endsAt) refuse('SALE_ENDED');
    if (req.place < 1 || req.place > s.watermark) refuse('NOT_ADMITTED');
    if (now >= admittedAt(s, req.place) + sale.admittedTtlSec * 1000) refuse('ADMISSION_EXPIRED');
    const item = sale.items.find((i) => i.sku === req.sku);
    if (!item) refuse('UNKNOWN_SKU');
    if (req.quantity > item!.maxPerOrder) refuse('ORDER_TOO_LARGE');
    const userKey = userSku(req.userId, req.sku);
    const units = s.perUser.get(userKey) ?? 0;
    if (units + req.quantity > item!.perUserLimit) refuse('LIMIT_REACHED');
    const stock = s.stock.get(req.sku) ?? 0;
    if (stock <= 0) refuse('SOLD_OUT');
    if (stock < req.quantity) refuse('INSUFFICIENT_STOCK');

    const hold: EngineHold = {
      holdId: req.holdId,
      userId: req.userId,
      sku: req.sku,
      quantity: req.quantity,
      expiresAt: now + sale.reservationTtlSec * 1000,
      idempotencyKey: req.idempotencyKey,
    };
    s.stock.set(req.sku, stock - req.quantity);
    s.perUser.set(userKey, units + req.quantity);
    s.holds.set(hold.holdId, hold);
    s.idempotency.set(idemKey, { fingerprint: req.fingerprint, holdId: req.holdId });
    s.active.delete(req.place);
    s.buyers.push(req.userId);
    return { kind: 'held', hold: { ...hold }, remaining: stock - req.quantity };
  }

  async confirmHold(saleId: string, holdId: string): Promise<boolean> {
    const s = this.sales.get(saleId);
    return s ? s.holds.delete(holdId) : false;
  }

  async releaseHold(saleId: string, holdId: string, forget?: { userId: string; idempotencyKey: string }): Promise<boolean> {
    const s = this.sales.get(saleId);
    if (!s) return false;
    if (forget) {
      const idemKey = userSku(forget.userId, forget.idempotencyKey);
      if (s.idempotency.get(idemKey)?.holdId === holdId) s.idempotency.delete(idemKey);
    }
    const hold = s.holds.get(holdId);
    if (!hold) return false;
    s.holds.delete(holdId);
    s.stock.set(hold.sku, (s.stock.get(hold.sku) ?? 0) + hold.quantity);
    const userKey = userSku(hold.userId, hold.sku);
    s.perUser.set(userKey, (s.perUser.get(userKey) ?? 0) - hold.quantity);
    return true;
  }

  async getHold(saleId: string, holdId: string) {
    const hold = this.sales.get(saleId)?.holds.get(holdId);
    return hold ? { ...hold } : null;
  }

  async expiredHolds(saleId: string, before: number, limit: number): Promise<EngineHold[]> {
    const s = this.sales.get(saleId);
    if (!s) return [];
    return [...s.holds.values()]
      .filter((h) => h.expiresAt < before)
      .sort((a, b) => a.expiresAt - b.expiresAt || (a.holdId < b.holdId ? -1 : 1))
      .slice(0, limit)
      .map((h) => ({ ...h }));
  }

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = this.clock();
    const lease = this.leases.get(name);
    if (lease && lease.until > now && lease.owner !== owner) return false;
    this.leases.set(name, { owner, until: now + ttlMs });
    return true;
  }

  async releaseLease(name: string, owner: string) {
    if (this.leases.get(name)?.owner === owner) this.leases.delete(name);
  }

  async useOnce(token: string, ttlMs: number): Promise<boolean> {
    const now = this.clock();
    const until = this.used.get(token);
    if (until !== undefined && until > now) return false;
    if (this.used.size > 100_000) for (const [k, t] of this.used) if (t <= now) this.used.delete(k);
    this.used.set(token, now + ttlMs);
    return true;
  }

  private state(saleId: string): SaleState {
    const s = this.sales.get(saleId);
    if (!s) refuse('SALE_NOT_FOUND');
    return s!;
  }
}

/** A sale's queue lanes: none unless it has more than one. */
const lanesOf = (sale: EngineSale) =>
  Array.from({ length: (sale.queueShards ?? 1) > 1 ? sale.queueShards! : 0 }, () => ({ seq: 0, count: 0, flags: new Map<string, number>() }));
