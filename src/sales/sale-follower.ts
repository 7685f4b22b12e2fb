/**
 * Follows every sale from an hour before its start to an hour after its last reservation can
 * lapse (its end plus the reservation window): loads its engine
 * state from the ledger when the engine lacks it (a restart of the embedded engine, a flushed
 * Redis) and has the live picture watch it. Every node runs it; loading is idempotent.
 */
import type { EngineClock } from '../engine/engine-clock.js';
import type { SaleMonitor } from '../queue/sale-monitor.js';
import type { SaleService } from './sale-service.js';

/** Sales are followed from this long before their start until this long after their end. */
const FOLLOW_MS = 3_600_000;

export class SaleFollower {
  constructor(
    private readonly sales: SaleService,
    private readonly monitor: Pick<SaleMonitor, 'get' | 'watch' | 'unwatch'>,
    private readonly clock: EngineClock,
    private readonly log: { info(obj: object, msg: string): void },
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
        continue;
      }
      if (await this.sales.ensureLoaded(sale)) this.log.info({ saleId: sale.id }, 'sale loaded into the engine from the ledger');
      await this.monitor.watch(sale.id);
    }
  }
}
