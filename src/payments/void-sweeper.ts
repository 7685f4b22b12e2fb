/**
 * Ends every authorisation that will not be captured: all of a sale's once it sells out, ends
 * or is cancelled, and any at all past the 30-minute cap. Runs on the leader. Authorisations of
 * users who still hold stock are spared while they do — their capture may be in flight.
 */
import type { Ledger } from '../ledger/ledger.js';
import type { SaleMonitor } from '../queue/sale-monitor.js';
import type { PaymentService } from './payment-service.js';

export class VoidSweeper {
  constructor(private readonly ledger: Ledger, private readonly monitor: SaleMonitor, private readonly payments: PaymentService) {}

  async sweep(): Promise<number> {
    let voided = 0;
    for (const saleId of this.monitor.watched()) {
      const live = this.monitor.get(saleId);
      if (!live || live.status === 'open' || live.status === 'scheduled') continue;
      const holders = live.status === 'sold_out' ? await this.holders(saleId) : new Set<string>();
      voided += await this.payments.voidOpen({ saleId, reason: live.status, keep: (p) => holders.has(p.userId) });
    }
    voided += await this.payments.voidOpen({ reason: 'cap' });
    return voided;
  }

  private async holders(saleId: string): Promise<Set<string>> {
    const reserved = await this.ledger.listOrders(saleId, { status: 'reserved', limit: 100_000 });
    return new Set(reserved.map((o) => o.userId));
  }
}
