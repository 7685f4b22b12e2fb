/**
 * Follows every sale from an hour before its start to an hour after its last reservation can
 * lapse (its end plus the reservation window): loads its engine
 * state from the ledger when the engine lacks it (a restart of the embedded engine, a flushed
 * Redis) and has the live picture watch it; afterwards its engine data expires after a retention
 * period. Every node runs it; loading and retiring are idempotent.
 */
import type { EngineClock } from '../engine/engine-clock.js';
import type { SaleMonitor } from '../queue/sale-monitor.js';
import type { SaleService } from './sale-service.js';

/** Sales are followed from this long before their start until this long after their end. */
const FOLLOW_MS = 3_600_000;

export class SaleFollower {
  /** Sales whose engine data this node already set to expire. */
  private readonly retired = new Set<string>();

  constructor(
    private readonly sales: SaleService,
    private readonly monitor: Pick<SaleMonitor, 'get' | 'watch' | 'unwatch'>,
    private readonly clock: EngineClock,
    private readonly log: { info(obj: object, msg: string): void },
    /** How long a sale's engine data outlives its following. */
    private readonly retentionMs = 86_400_000,
  ) {}

  async discover(): Promise<void> {
    const now = this.clock.now();
    for (const sale of await this.sales.list()) {
      // Until its last reservation can have lapsed (taken at the end at the latest) and an hour
      // more: the hold sweeper sweeps only followed sales.
      const lastHoldEnds = sale.endsAt.getTime() + sale.reservationTtlSec * 1000;
      const current = lastHoldEnds + FOLLOW_MS > now && sale.startsAt.getTime() - FOLLOW_MS < now;
      if (!current) {
        if (this.monitor.get(sale.id)) this.monitor.unwatch(sale.id);
        // Past its window, its engine data expires after the retention period (once per node and
        // sale; a sale not yet started keeps its data). The ledger keeps the record for good.
        if (sale.startsAt.getTime() < now && !this.retired.has(sale.id)) {
          // One sale the engine cannot retire now must not stop the current ones from loading.
          await this.sales.retire(sale.id, this.retentionMs).then(
            () => this.retired.add(sale.id),
            () => {},
          );
        }
        continue;
      }
      this.retired.delete(sale.id);
      if (await this.sales.ensureLoaded(sale)) this.log.info({ saleId: sale.id }, 'sale loaded into the engine from the ledger');
      await this.monitor.watch(sale.id);
    }
  }
}
