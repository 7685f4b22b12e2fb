/**
 * After the run: wait for the server to finish what it owes (every hold ended, every
 * authorisation captured or voided), then read its record through the admin API — the sale
 * with sold and held units, the live counters (orders and authorisations by status) and the
 * orders themselves — for the ledger side of the verdict.
 */
import { now, type Client } from './client.js';

export interface LedgerView {
  sale: any;
  stats: any;
  /** Orders by status, as listed by the admin API (at most 1,000 per status). */
  orders: Array<{ order_id: string; user_id: string; sku: string; quantity: number; status: string; created_at: string }>;
  /** A status whose listing came back full, so some orders may be missing from `orders`. */
  truncated: string[];
  soldOut: boolean;
  cancelled: boolean;
  /** How long after the run holds took to end (ms), or null when they did not within the settle time. */
  holdsEndedMs: number | null;
  /** How long after sold out (or cancel) authorisations took to end, or null; and how many were still open. */
  authsEndedMs: number | null;
  authsOpen: number;
  authsTrace: Array<{ t: number; open: number }>;
  /** Set when the admin API could not be read (the ledger checks then fail with this reason). */
  error?: string;
}

const STATUSES = ['confirmed', 'reserved', 'expired', 'cancelled', 'failed'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const openAuths = (stats: any) => (stats?.authorizations?.authorized ?? 0) + (stats?.authorizations?.pending ?? 0);

export async function settle(
  client: Client,
  admin: Record<string, string>,
  saleId: string,
  opts: { settleMs: number; cancelUnsold: boolean },
): Promise<LedgerView> {
  const stats = async () => {
    // A node that is still digesting the run may time out or fail a read; try a few times.
    let r = await client.call('admin', 'GET', `/api/admin/flash-sales/${saleId}/stats`, { headers: admin, untimed: true });
    for (let i = 0; i < 5 && r.status !== 200; i++) {
      await sleep(1000);
      r = await client.call('admin', 'GET', `/api/admin/flash-sales/${saleId}/stats`, { headers: admin, untimed: true });
    }
    if (r.status !== 200) throw new Error(`GET stats failed: ${r.status || r.error} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  try {
    return await read();
  } catch (err) {
    const sale = await client.call('admin', 'GET', `/api/admin/flash-sales/${saleId}`, { headers: admin, untimed: true });
    return {
      sale: sale.status === 200 ? sale.body : null,
      stats: null,
      orders: [],
      truncated: [],
      soldOut: false,
      cancelled: false,
      holdsEndedMs: null,
      authsEndedMs: null,
      authsOpen: NaN,
      authsTrace: [],
      error: (err as Error).message,
    };
  }

  async function read(): Promise<LedgerView> {
    let s = await stats();
    const t0 = now();
    let holdsEndedMs: number | null = null;
    while (now() - t0 < opts.settleMs) {
      if ((s.holds ?? 0) === 0 && (s.orders?.reserved ?? 0) === 0) {
        holdsEndedMs = now() - t0;
        break;
      }
      await sleep(500);
      s = await stats();
    }

    const soldOut = s.status === 'sold_out';
    let cancelled = false;
    if (!soldOut && opts.cancelUnsold && s.status !== 'cancelled') {
      const r = await client.call('admin', 'POST', `/api/admin/flash-sales/${saleId}/cancel`, { headers: admin, json: {}, untimed: true });
      cancelled = r.status === 200;
    }

    const t1 = now();
    const authsTrace: LedgerView['authsTrace'] = [];
    let authsEndedMs: number | null = null;
    for (;;) {
      s = await stats();
      authsTrace.push({ t: now() - t1, open: openAuths(s) });
      if (openAuths(s) === 0) {
        authsEndedMs = now() - t1;
        break;
      }
      if (now() - t1 >= opts.settleMs || (!soldOut && !cancelled)) break;
      await sleep(500);
    }

    const saleRes = await client.call('admin', 'GET', `/api/admin/flash-sales/${saleId}`, { headers: admin, untimed: true });
    const orders: LedgerView['orders'] = [];
    const truncated: string[] = [];
    for (const status of STATUSES) {
      const r = await client.call('admin', 'GET', `/api/admin/flash-sales/${saleId}/orders?status=${status}&limit=1000`, { headers: admin, untimed: true });
      if (r.status !== 200) throw new Error(`GET orders failed: ${r.status} ${JSON.stringify(r.body)}`);
      orders.push(...r.body.orders);
      if (r.body.orders.length >= 1000) truncated.push(status);
    }
    return { sale: saleRes.body, stats: s, orders, truncated, soldOut, cancelled, holdsEndedMs, authsEndedMs, authsOpen: openAuths(s), authsTrace };
  }
}
