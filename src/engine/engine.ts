/**
 * The hot-state port. Everything that must be decided atomically and fast during a drop — the
 * queue, the admission watermark, stock, holds, per-user counts, idempotency, leases — lives
 * behind this interface. Two implementations honour it: `RedisEngine` (every multi-key step one
 * Lua script) and `MemoryEngine` (one process). `test/engine/engine.contract.ts` runs the same
 * suite against both, so a caller cannot tell them apart.
 *
 * Times are epoch milliseconds of the *engine's* clock: Redis `TIME` or the embedded engine's
 * process clock. No step takes a time from its caller, so nodes with skewed clocks still agree.
 * Refusals are thrown as `StampedeError` with a code from `engine-refusals.ts`.
 */
import type { WatermarkLog } from './watermark-log.js';

export type QueueMode = 'fifo' | 'randomized_prequeue';

export interface EngineItem {
  sku: string;
  quantity: number;
  perUserLimit: number;
  maxPerOrder: number;
}

/** The part of a sale the engine needs to decide things on its own. */
export interface EngineSale {
  id: string;
  startsAt: number;
  endsAt: number;
  cancelled: boolean;
  mode: QueueMode;
  admissionRatePerSec: number;
  admittedTtlSec: number;
  /** Most admitted-but-unused tickets allowed at once (the active-user cap). */
  maxActive: number;
  reservationTtlSec: number;
  items: EngineItem[];
  /**
   * Queue lanes (a mega-drop): the queue's entries spread over this many counters, each in a hash
   * slot of its own (`lanes.ts`). 1 (the default) keeps the whole queue in the sale's slot. Fixed
   * for the sale's life. Only for `fifo` sales.
   */
  queueShards?: number;
}

/** A live hold on stock: the engine half of an order that is not yet confirmed. */
export interface EngineHold {
  holdId: string;
  userId: string;
  sku: string;
  quantity: number;
  expiresAt: number;
  /** The idempotency key that took it (absent on holds rebuilt from the ledger's reserved orders). */
  idempotencyKey?: string;
}

/** What the ledger knows of a sale, used to (re)build its engine state. */
export interface SaleLoad {
  sale: EngineSale;
  /** Confirmed units per SKU. */
  sold: Record<string, number>;
  /** Reserved (unconfirmed) orders, restored as holds. */
  holds: EngineHold[];
  /** Units per user and SKU, confirmed plus held. */
  perUser: Array<{ userId: string; sku: string; units: number }>;
}

export interface EnterResult {
  /** The ticket's place; 0 while a pre-queue entrant waits for the draw at `startsAt`. */
  place: number;
  /** Changes whenever the sale's queue is rebuilt; tickets of another epoch are void. */
  epoch: string;
  /** True when this call created the place (false: the user had one already). */
  fresh: boolean;
  /** True when the place is a shadow place: it looks normal and is never admitted. */
  shadow: boolean;
}

export interface EnterOptions {
  draw: number;
  shadowReason?: string;
  /** The watermark the caller last saw, and the queue epoch it saw it in (another epoch's line is ignored). */
  floor?: { watermark: number; epoch: string };
}

export interface ReserveRequest {
  userId: string;
  /** The place from the verified ticket. */
  place: number;
  sku: string;
  quantity: number;
  idempotencyKey: string;
  /** A digest of the request's parameters; the same key with another fingerprint is refused. */
  fingerprint: string;
  /** Id the new hold (and its order) will carry. */
  holdId: string;
}

export type ReserveResult =
  | { kind: 'held'; hold: EngineHold; remaining: number }
  /** The key was used before with the same parameters: this is that first answer's hold id. */
  | { kind: 'replay'; holdId: string };

/** One cheap read of everything a node caches about a sale (refreshed a few times a second). */
export interface SaleSnapshot {
  now: number;
  epoch: string;
  startsAt: number;
  endsAt: number;
  cancelled: boolean;
  watermark: number;
  /** Everybody with a real place (pre-queue entrants included). */
  entered: number;
  /** Pre-queue entrants (randomized mode); their places are 1..prequeued once drawn. */
  prequeued: number;
  drawn: boolean;
  /** Admitted tickets that have neither bought nor lapsed. */
  active: number;
  remaining: Record<string, number>;
  /** Units held and not yet confirmed, over all SKUs. */
  heldUnits: number;
  /** Users who took a hold, from index `buyersFrom` on (append-only; duplicates possible). */
  buyers: string[];
  /** Index to pass as `buyersFrom` next time. */
  buyersNext: number;
  /** Bot flags by reason. */
  flags: Record<string, number>;
  /**
   * The engine's own record of when the watermark advanced — `[watermark after the step, time]`,
   * in order — from the first step above `admittedFrom` on. It dates each admission (a ticket's
   * window runs from the step that reached its place), so every node tells the shopper the same
   * window, and the one the engine enforces at purchase.
   */
  advances: WatermarkLog;
  /** The sale's queue lanes (1: none). */
  queueShards: number;
  /**
   * People with a place above the watermark. With queue lanes, as of the last admission step
   * (like `entered` and `flags`): places have gaps there, so `entered − watermark` is not it.
   */
  waiting: number;
}

/** A sale's stock-side state as the engine holds it, read at one instant (the drift check's input). */
export interface EngineInspection {
  /** Units available, per SKU. */
  stock: Record<string, number>;
  /** Every live hold. */
  holds: EngineHold[];
  /** Units per user and SKU, held plus confirmed. */
  perUser: Array<{ userId: string; sku: string; units: number }>;
  /** The sale's queue epoch: a repair worked out from this inspection applies only while it holds. */
  epoch: string;
}

/** What the drift check tells the engine to change, applied in one step. */
export interface EngineRepair {
  /** The epoch of the inspection it was worked out from: a sale rebuilt since is left alone. */
  epoch: string;
  /** Holds of reserved orders the engine lost: they come back (a hold still there is left alone). */
  restore: EngineHold[];
  /** Stock moves by these amounts per SKU (never below zero). */
  stock: Record<string, number>;
  /** Per-user counts move by these amounts. */
  perUser: Array<{ userId: string; sku: string; delta: number }>;
}

export interface AdmitResult {
  watermark: number;
  /** Tickets admitted by this step. */
  admitted: number;
}

export interface Engine {
  readonly kind: 'memory' | 'redis';

  /** The engine's clock. */
  now(): Promise<number>;
  /** Throws when the engine cannot be reached (readiness). */
  ping(): Promise<void>;

  /** Creates the sale's hot state from the ledger's record unless it exists. True when created. */
  loadSale(load: SaleLoad): Promise<boolean>;
  /** True when the engine holds the sale. */
  hasSale(saleId: string): Promise<boolean>;
  /** Applies changed settings; stock moves by the change in quantity. Refuses to go below zero. */
  updateSale(sale: EngineSale): Promise<void>;
  /** Forgets the sale entirely (after it ended, and in tests). */
  dropSale(saleId: string): Promise<void>;
  /** Forgets the sale after `afterMs` (its retention period): the ledger keeps the record. */
  retire(saleId: string, afterMs: number): Promise<void>;
  /** Stock, holds and per-user counts at one instant; null when the engine does not hold the sale. */
  inspect(saleId: string): Promise<EngineInspection | null>;
  /**
   * Applies a drift repair in one step. Returns holds restored, stock units that could not be
   * taken (stock at zero), and `stale` when the sale was rebuilt since the inspection (nothing changed).
   */
  repair(saleId: string, fix: EngineRepair): Promise<{ restored: number; short: number; stale: boolean }>;
  /** One cheap read of what a node caches: buyers from index `buyersFrom`, watermark advances above `admittedFrom` (default 0: all). */
  snapshot(saleId: string, buyersFrom: number, admittedFrom?: number): Promise<SaleSnapshot>;

  /**
   * Gives the user a place (or their existing one). `draw` is a uniform random in [0,1) for the
   * pre-queue lottery. `floor`, for a sale with queue lanes: the watermark as the caller last saw
   * it; a lane behind it skips ahead, so a new place is above it (a lane's step does not read the
   * sale's own slot). A floor of another epoch (the caller's picture predates a rebuild) is
   * ignored: the old line would leave gaps above the new one's watermark that it would wait for.
   */
  enterQueue(saleId: string, userId: string, opts: EnterOptions): Promise<EnterResult>;
  /** The user's real place, once drawn (null if they have none or the draw has not happened). */
  placeOf(saleId: string, userId: string): Promise<number | null>;
  /** One admission-controller step: moves the watermark by what the rate, the active cap and the stock allow. */
  admit(saleId: string): Promise<AdmitResult>;

  /** The atomic purchase step: sale open, ticket admitted and unexpired, idempotency, per-order and per-user limits, stock; takes a hold. */
  reserve(saleId: string, req: ReserveRequest): Promise<ReserveResult>;
  /** Makes a live hold permanent. False when it is no longer live (already confirmed or released). */
  confirmHold(saleId: string, holdId: string): Promise<boolean>;
  /**
   * Returns a live hold's units to stock. False when it is no longer live. Exactly once per hold.
   * With `forget`, the idempotency key that took the hold is forgotten in the same step (when it
   * still names this hold and the hold is not live any more, released now or before): for a hold
   * whose order was never recorded, so a retry with that key runs again instead of answering
   * "in progress" for ever.
   */
  releaseHold(saleId: string, holdId: string, forget?: { userId: string; idempotencyKey: string }): Promise<boolean>;
  getHold(saleId: string, holdId: string): Promise<EngineHold | null>;
  /** Live holds whose window ended before `before`, oldest first. */
  expiredHolds(saleId: string, before: number, limit: number): Promise<EngineHold[]>;

  /** Acquires or renews a named lease for `owner`. True while `owner` holds it. */
  acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, owner: string): Promise<void>;
  /** Marks a token used; true the first time within `ttlMs` (single-use challenges). */
  useOnce(token: string, ttlMs: number): Promise<boolean>;

  close(): Promise<void>;
}
