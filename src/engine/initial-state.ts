/**
 * A sale's first hot state, built from the ledger's record in one place for both engines: stock
 * is quantity less sold less held, holds by id (a repeated id keeps the last), units per user and
 * SKU, and the holders as the first buyers. The embedded engine keeps these maps; the Redis engine
 * writes them flat with `loadSale-7.lua`.
 */
import type { EngineHold, SaleLoad } from './engine.js';

/** The per-user key of a user and SKU, the same in both engines. */
export const userSku = (userId: string, sku: string) => `${userId}\t${sku}`;

export interface InitialState {
  /** The first item of each SKU (the one reserve finds, as Array.find does). */
  items: Map<string, { quantity: number; perUserLimit: number; maxPerOrder: number }>;
  stock: Map<string, number>;
  holds: Map<string, EngineHold>;
  perUser: Map<string, number>;
  buyers: string[];
  /** Units in holds. */
  held: number;
}

export function initialState(load: SaleLoad): InitialState {
  const items: InitialState['items'] = new Map();
  const stock = new Map<string, number>();
  for (const item of load.sale.items) {
    if (!items.has(item.sku)) items.set(item.sku, { quantity: item.quantity, perUserLimit: item.perUserLimit, maxPerOrder: item.maxPerOrder });
    stock.set(item.sku, item.quantity - (load.sold[item.sku] ?? 0));
  }
  const holds = new Map<string, EngineHold>();
  for (const hold of load.holds) {
    holds.set(hold.holdId, { ...hold });
    stock.set(hold.sku, (stock.get(hold.sku) ?? 0) - hold.quantity);
  }
  const perUser = new Map<string, number>();
  for (const u of load.perUser) perUser.set(userSku(u.userId, u.sku), u.units);
  let held = 0;
  for (const hold of holds.values()) held += hold.quantity;
  return { items, stock, holds, perUser, buyers: [...new Set(load.holds.map((h) => h.userId))], held };
}
