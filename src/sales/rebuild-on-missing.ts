/**
 * The engine as the other tiers see it: when it answers "no such sale" for a sale the ledger
 * has (Redis restarted empty, or its data was lost), the sale is rebuilt from the ledger at
 * once and the call runs again — no shopper waits for the follower's next pass, and none is
 * told 404 for a sale that exists. Concurrent calls share one rebuild per sale. While the
 * ledger cannot be asked, the rebuild's own error (503 UNAVAILABLE) is the answer.
 */
import type { Engine } from '../engine/engine.js';
import { StampedeError } from '../errors.js';

/** Engine methods whose first argument is a sale id and which refuse SALE_NOT_FOUND. */
const SALE_CALLS = new Set<string>(['snapshot', 'enterQueue', 'placeOf', 'admit', 'reserve']);

export function rebuildOnMissing(engine: Engine, rebuild: (saleId: string) => Promise<boolean>, onRebuilt?: (saleId: string) => void): Engine {
  const pending = new Map<string, Promise<boolean>>();
  const once = (saleId: string) => {
    let p = pending.get(saleId);
    if (!p) {
      p = rebuild(saleId).finally(() => pending.delete(saleId));
      pending.set(saleId, p);
    }
    return p;
  };
  // One wrapper per method, made on first use: these are the hot calls of a drop.
  const wrapped = new Map<string, (saleId: string, ...rest: unknown[]) => Promise<unknown>>();
  const wrap =
    (call: (...args: unknown[]) => Promise<unknown>) =>
    async (saleId: string, ...rest: unknown[]) => {
      try {
        return await call.call(engine, saleId, ...rest);
      } catch (err) {
        if (!(err instanceof StampedeError) || err.code !== 'SALE_NOT_FOUND') throw err;
        // The ledger does not know it either: a real 404.
        if (!(await once(saleId)) && !(await engine.hasSale(saleId))) throw err;
        onRebuilt?.(saleId);
        return call.call(engine, saleId, ...rest);
      }
    };
  return new Proxy(engine, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string' || !SALE_CALLS.has(prop)) return value;
      let fn = wrapped.get(prop);
      if (!fn) wrapped.set(prop, (fn = wrap(value as (...args: unknown[]) => Promise<unknown>)));
      return fn;
    },
  });
}
