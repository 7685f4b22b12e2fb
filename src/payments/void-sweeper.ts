/**
 * Ends every authorisation that will not be captured: all of a sale's once it sells out, ends
 * or is cancelled, and any at all past the 30-minute cap. Runs on the leader. Authorisations of
 * users who still hold stock are spared while they do — their capture may be in flight. Every
 * `STRAY_SWEEP_EVERY_MS` it also gives back captures no confirmed order owns (a refund an outage
 * stopped), so every capture ends owned by a confirmed order or refunded.
 */
import type { LiveSale, SaleMonitor } from '../queue/sale-monitor.js';
import type { PaymentService } from './payment-service.js';

/**
 * How long after a buyer's hold appears in the engine their authorisation is spared even
 * without a reserved order in the ledger: the order is written just after the hold, and a
 * sweep that falls in between must not void a card about to be captured.
 */
export const HOLD_RECORD_GRACE_MS = 30_000;
/** How often a pass also looks for stray captures (a join over the last day's captures: not every second). */
export const STRAY_SWEEP_EVERY_MS = 30_000;

export class VoidSweeper {
  private straysAt = 0;

  constructor(
    private readonly orders: { reservedBuyers(saleId: string): Promise<Set<string>> },
    private readonly monitor: SaleMonitor,
    private readonly payments: PaymentService,
    private readonly graceMs = HOLD_RECORD_GRACE_MS,
  ) {}

  async sweep(): Promise<number> {
    let voided = 0;
    for (const saleId of this.monitor.watched()) {
      // Fresh from the engine: a hold taken just before this sweep must be seen by it.
      const live = (await this.monitor.refresh(saleId)) ?? this.monitor.get(saleId);
      if (!live || live.status === 'open' || live.status === 'scheduled') continue;
      const holders = live.status === 'sold_out' ? await this.holders(saleId, live) : new Set<string>();
      voided += await this.payments.voidOpen({ saleId, reason: live.status, keep: (p) => holders.has(p.userId) });
    }
    voided += await this.payments.voidOpen({ reason: 'cap' });
    if (Date.now() - this.straysAt >= STRAY_SWEEP_EVERY_MS) {
      this.straysAt = Date.now();
      await this.payments.refundStrays();
    }
    return voided;
  }

  /** Users whose capture may still come: a reserved order in the ledger, or a hold too new to be recorded yet. */
  private async holders(saleId: string, live: LiveSale): Promise<Set<string>> {
    const holders = await this.orders.reservedBuyers(saleId);
    const recent = Date.now() - this.graceMs;
    for (const [user, at] of live.buyers) if (at > recent) holders.add(user);
    return holders;
  }
}
