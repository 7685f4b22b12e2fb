/**
 * Sale lifecycle: create, read, change before start, cancel. The ledger holds the record; the
 * engine holds the hot state built from it. A sale is written to the ledger first and then
 * loaded into the engine, and `ensureLoaded` rebuilds the engine half from the ledger after a
 * restart (or a Redis flush) — the ledger is the truth the engine is restored from.
 */
import type { Engine, EngineHold, EngineSale } from '../engine/engine.js';
import type { EngineClock } from '../engine/engine-clock.js';
import { StampedeError, isUnavailable } from '../errors.js';
import type { Order, Sale, SaleRecordSnapshot } from '../ledger/ledger.js';
import type { SalesRepository } from '../ledger/repositories.js';
import { toSaleInput, validateSale, type CreateSaleBody, type PatchSaleBody } from './sale-schema.js';

/** How long the engine keeps a sale past its window that a read brought back. */
const REVIVED_MS = 3_600_000;

/** How long a node trusts its copy of a sale's record before reading the ledger again. */
const RECORD_TTL_MS = 2000;

/** The engine hold a reserved order stands for (rebuilds and the drift check restore holds from orders). */
export function holdOfOrder(o: Order): EngineHold {
  return {
    holdId: o.id,
    userId: o.userId,
    sku: o.sku,
    quantity: o.quantity,
    expiresAt: o.reservationExpiresAt.getTime(),
    idempotencyKey: o.idempotencyKey,
  };
}

export function toEngineSale(sale: Sale): EngineSale {
  return {
    id: sale.id,
    startsAt: sale.startsAt.getTime(),
    endsAt: sale.endsAt.getTime(),
    cancelled: sale.cancelledAt !== null,
    mode: sale.queue.mode,
    admissionRatePerSec: sale.queue.admissionRatePerSec,
    admittedTtlSec: sale.queue.admittedTtlSec,
    maxActive: sale.queue.maxActive,
    queueShards: sale.queue.shards ?? 1,
    reservationTtlSec: sale.reservationTtlSec,
    items: sale.items.map((i) => ({ sku: i.sku, quantity: i.quantity, perUserLimit: i.perUserLimit, maxPerOrder: i.maxPerOrder })),
  };
}

/**
 * What cancelling a sale asks of the other tiers, each through its own service (wired by the
 * runtime, which builds the sales tier before the others).
 */
export interface CancellationSteps {
  /** Reads the engine afresh so every node's streams hear `ended`. */
  announce(saleId: string): Promise<unknown>;
  /** Ends every reserved order: ledger first, then the engine hold. */
  endReserved(saleId: string): Promise<number>;
  /** Voids every open authorisation of the sale. */
  voidOpen(saleId: string): Promise<number>;
}

export class SaleService {
  /** This node's copies of sale records; `stale` while the ledger could not be asked again. */
  private readonly records = new Map<string, { sale: Sale; readAt: number; stale?: boolean }>();
  private listed: { sales: Sale[]; readAt: number } | null = null;
  private cancellation: CancellationSteps | null = null;

  constructor(
    private readonly engine: Engine,
    private readonly ledger: SalesRepository,
    private readonly clock: EngineClock,
  ) {}

  /** Wires the other tiers' parts of a cancellation. */
  useCancellation(steps: CancellationSteps): void {
    this.cancellation = steps;
  }

  async create(body: CreateSaleBody): Promise<Sale> {
    const input = toSaleInput(body);
    validateSale(input, this.clock.now());
    const sale = await this.ledger.createSale(input);
    await this.ensureLoaded(sale);
    return this.remember(sale);
  }

  /**
   * The sale's record (cached briefly on this node). Throws SALE_NOT_FOUND. While the ledger
   * does not answer, the copy this node holds is served as it is (and `stale` says so): the
   * waiting room keeps going without the ledger (SPEC §6).
   */
  async get(id: string): Promise<Sale> {
    const hit = this.records.get(id);
    if (hit && Date.now() - hit.readAt < RECORD_TTL_MS) return hit.sale;
    let sale: Sale | null;
    try {
      sale = await this.ledger.getSale(id);
    } catch (err) {
      if (!hit || !isUnavailable(err)) throw err;
      hit.stale = true;
      return hit.sale;
    }
    if (!sale) throw new StampedeError('SALE_NOT_FOUND');
    return this.remember(sale);
  }

  /** Whether `get` serves this node's old copy of the record because the ledger did not answer. */
  stale(id: string): boolean {
    return this.records.get(id)?.stale === true;
  }

  /** The record straight from the ledger (sold and held counts current); the ledger must answer. */
  async fresh(id: string): Promise<Sale> {
    const sale = await this.ledger.getSale(id);
    if (!sale) {
      this.records.delete(id);
      throw new StampedeError('SALE_NOT_FOUND');
    }
    return this.remember(sale);
  }

  /** Every sale (cached a second on this node: the public list is the most-read page of a drop; the last list while the ledger is away). */
  async list(): Promise<Sale[]> {
    if (this.listed && Date.now() - this.listed.readAt < 1000) return this.listed.sales;
    try {
      const sales = await this.ledger.listSales();
      this.listed = { sales, readAt: Date.now() };
      return sales;
    } catch (err) {
      if (this.listed && isUnavailable(err)) return this.listed.sales;
      throw err;
    }
  }

  async patch(id: string, body: PatchSaleBody): Promise<Sale> {
    const current = await this.fresh(id);
    if (current.cancelledAt) throw new StampedeError('SALE_CANCELLED');
    if (this.clock.now(id) >= current.startsAt.getTime()) throw new StampedeError('SALE_STARTED');
    const input = toSaleInput(body, current);
    validateSale(input, this.clock.now(id));
    const sale = await this.ledger.updateSale(id, input);
    await this.engine.updateSale(toEngineSale(sale));
    return this.remember(sale);
  }

  /**
   * Cancels a sale: marked in the ledger and the engine, then every hold ended and every
   * authorisation voided. A retry runs every step again (each is idempotent), so a cancel that
   * failed half-way is finished by the next one.
   */
  async cancel(id: string): Promise<Sale> {
    const current = await this.fresh(id);
    const sale = current.cancelledAt ? current : await this.ledger.cancelSale(id);
    await this.ensureLoaded(sale);
    await this.engine.updateSale(toEngineSale(sale));
    this.remember(sale);
    if (this.cancellation) {
      await this.cancellation.announce(sale.id);
      await this.cancellation.endReserved(sale.id);
      await this.cancellation.voidOpen(sale.id);
    }
    return this.fresh(sale.id);
  }

  /**
   * Loads the sale into the engine from the ledger unless the engine has it: the restart and
   * reconciliation path. Reserved orders come back as holds, so their units stay out of stock
   * until they confirm or expire.
   */
  async ensureLoaded(known: Sale): Promise<boolean> {
    if (await this.engine.hasSale(known.id)) return false;
    // One consistent picture: sold, held and per-user counts as of the same instant.
    const snapshot = await this.ledger.saleSnapshot(known.id);
    if (!snapshot) return false;
    const { sale, reserved, perUser } = snapshot;
    return this.engine.loadSale({
      sale: toEngineSale(sale),
      sold: Object.fromEntries(sale.items.map((i) => [i.sku, i.sold])),
      holds: reserved.map(holdOfOrder),
      perUser,
    });
  }

  /** The sale as the ledger holds it at one instant (what the engine is rebuilt from, and checked against). */
  ledgerPicture(saleId: string): Promise<SaleRecordSnapshot | null> {
    return this.ledger.saleSnapshot(saleId);
  }

  /** The sale's engine data expires after `afterMs` (the ledger keeps the record). */
  retire(saleId: string, afterMs: number): Promise<void> {
    return this.engine.retire(saleId, afterMs);
  }

  /** Rebuilds the sale's engine state from the ledger when the engine lacks it. */
  async rebuild(saleId: string): Promise<boolean> {
    const sale = await this.ledger.getSale(saleId);
    if (!sale) return false;
    const loaded = await this.ensureLoaded(sale);
    // A sale long over (its data expired after retention), brought back by a read: it goes again
    // in an hour, so walking old sale ids cannot pin them all in Redis.
    if (loaded && sale.endsAt.getTime() + sale.reservationTtlSec * 1000 + REVIVED_MS < this.clock.now(saleId)) await this.engine.retire(saleId, REVIVED_MS);
    return loaded;
  }

  private remember(sale: Sale): Sale {
    this.listed = null;
    this.records.set(sale.id, { sale, readAt: Date.now() });
    return sale;
  }
}
