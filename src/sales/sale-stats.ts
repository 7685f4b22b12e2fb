/**
 * The admin's live counters of a sale: a read model over the tiers, each asked through its own
 * service — the sale record, the engine's picture (queue and stock), orders and authorisations
 * by status, and every node's traffic and streams (node-figures.ts).
 */
import type { CheckoutService } from '../checkout/checkout-service.js';
import type { EngineClock } from '../engine/engine-clock.js';
import type { NodeFigures } from './node-figures.js';
import type { PaymentService } from '../payments/payment-service.js';
import type { SaleMonitor } from '../queue/sale-monitor.js';
import type { SaleService } from './sale-service.js';
import { isUnavailable } from '../errors.js';

type Stats = Awaited<ReturnType<SaleStats['compute']>>;

export class SaleStats {
  /** The last counters read of each sale, served (marked `stale`) while the ledger or the engine is not answering. */
  private readonly last = new Map<string, Stats>();

  constructor(
    private readonly deps: {
      sales: SaleService;
      monitor: SaleMonitor;
      clock: EngineClock;
      checkout: Pick<CheckoutService, 'orderCounts'>;
      payments: Pick<PaymentService, 'counts'>;
      figures: Pick<NodeFigures, 'read'>;
    },
  ) {}

  /** The sale's counters now or, while a dependency does not answer, the last ones read (with `stale: true`). */
  async read(saleId: string): Promise<Stats & { stale?: true }> {
    try {
      const stats = await this.compute(saleId);
      this.last.set(saleId, stats);
      return stats;
    } catch (err) {
      const last = this.last.get(saleId);
      if (!last || !isUnavailable(err)) throw err;
      return { ...last, server_time: new Date(this.deps.clock.now(saleId)).toISOString(), stale: true };
    }
  }

  private async compute(saleId: string) {
    const { sales, monitor, clock, checkout, payments, figures } = this.deps;
    const sale = await sales.fresh(saleId);
    const live = await monitor.refresh(sale.id);
    const [orders, authorizations, nodes] = await Promise.all([checkout.orderCounts(sale.id), payments.counts(sale.id), figures.read(sale.id)]);
    const snap = live?.snapshot;
    return {
      sale_id: sale.id,
      status: monitor.get(sale.id)?.status ?? 'scheduled',
      server_time: new Date(clock.now(sale.id)).toISOString(),
      entered: snap?.entered ?? 0,
      waiting: snap?.waiting ?? 0,
      admitted: snap?.watermark ?? 0,
      active: snap?.active ?? 0,
      holds: snap?.heldUnits ?? 0,
      sold: sale.items.reduce((n, i) => n + i.sold, 0),
      items: sale.items.map((i) => ({
        sku: i.sku,
        quantity: i.quantity,
        sold: i.sold,
        held: i.held,
        remaining: snap?.remaining[i.sku] ?? i.quantity - i.sold - i.held,
      })),
      orders,
      authorizations,
      // Summed over the nodes (and worker processes) that wrote figures in the last 5 s.
      requests_per_sec: Math.round(nodes.requestsPerSec * 10) / 10,
      rejections: nodes.rejections,
      bot_flags: snap?.flags ?? {},
      sse_connections: nodes.streams,
      nodes_reporting: nodes.nodes,
      ...(live?.stale ? { stale: true as const } : {}),
    };
  }
}
