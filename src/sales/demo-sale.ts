/** The sale `npm start` seeds in demo mode, so a newcomer sees a drop without configuring one. */
import type { Sale } from '../ledger/ledger.js';
import type { Runtime } from '../runtime.js';

/** Creates the demo sale unless a current one (not ended, not cancelled) exists. */
export async function seedDemoSale(runtime: Runtime): Promise<Sale | null> {
  const now = runtime.clock.now();
  const current = (await runtime.sales.list()).find((s) => !s.cancelledAt && s.endsAt.getTime() > now);
  if (current) return null;
  const sale = await runtime.sales.create({
    name: 'Midnight Drop — Aurora X1 phone',
    starts_at: new Date(now + 60_000).toISOString(),
    duration_sec: 30 * 60,
    items: [
      { sku: 'aurora-x1-black', name: 'Aurora X1 · Obsidian 256 GB', price_cents: 79_900, currency: 'EUR', quantity: 50, per_user_limit: 1 },
      { sku: 'aurora-x1-frost', name: 'Aurora X1 · Frost 256 GB', price_cents: 79_900, currency: 'EUR', quantity: 20, per_user_limit: 1 },
    ],
    queue: { mode: 'fifo', admission_rate_per_sec: 5, admitted_ttl_sec: 300 },
    reservation_ttl_sec: 300,
  });
  await runtime.monitor.watch(sale.id);
  return sale;
}
