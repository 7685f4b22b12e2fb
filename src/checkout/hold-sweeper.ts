/**
 * Ends holds whose payment window passed, exactly once, on one leader (an engine lease). It
 * also cleans up after a node that died mid-purchase: a hold with no order row (died before the
 * ledger write) goes back to stock; a hold whose order the ledger already confirmed or ended
 * is settled to match; a reserved order whose payment may have gone through is reconciled — from
 * the ledger's own payment rows, then the gateway by the stored reference — before anything is
 * released. A capture still in flight when an order is ended here is not lost: when its answer
 * comes, the order has lapsed and the money is refunded at once (`CheckoutService.confirmPaid`).
 */
import { countEach } from '../async-limits.js';
import type { Engine, EngineHold } from '../engine/engine.js';
import type { EngineClock } from '../engine/engine-clock.js';
import type { OrdersRepository } from '../ledger/repositories.js';
import type { PaymentService } from '../payments/payment-service.js';
import type { SaleMonitor } from '../queue/sale-monitor.js';
import type { CheckoutService } from './checkout-service.js';

/** Past its window a hold is left this long more, so a purchase mid-capture can finish. */
export const SWEEP_GRACE_MS = 2000;
/**
 * Holds settled at once in a sweep: each may wait on the card network (up to its deadline), and a
 * sweep of 500 holds one by one behind a hanging network would leave every unit held for minutes.
 */
const SETTLE_CONCURRENCY = 20;

export class HoldSweeper {
  constructor(
    private readonly engine: Engine,
    private readonly ledger: OrdersRepository,
    private readonly clock: EngineClock,
    private readonly monitor: SaleMonitor,
    private readonly checkout: CheckoutService,
    private readonly payments: PaymentService,
    private readonly log: { warn(obj: object, msg: string): void } = console,
  ) {}

  /** One pass: engine holds past their window, then ledger reservations past theirs. Returns holds ended. */
  async sweep(): Promise<number> {
    let ended = 0;
    for (const saleId of this.monitor.watched()) {
      // On the clock of the sale's own shard, which stamped its holds.
      const holds = await this.engine.expiredHolds(saleId, this.clock.now(saleId) - SWEEP_GRACE_MS, 500);
      ended += await countEach(holds, SETTLE_CONCURRENCY, async (hold) => {
        // One hold the gateway cannot settle now (an outage) must not stop the others.
        try {
          return await this.settleHold(saleId, hold);
        } catch (err) {
          this.log.warn({ err, saleId, holdId: hold.holdId }, 'an expired hold could not be settled; the next sweep tries again');
          return false;
        }
      });
    }
    // Reservations the engine no longer knows (it lost state and was rebuilt, or never had it).
    const orphans = await this.ledger.expiredReservations(new Date(this.clock.now() - SWEEP_GRACE_MS), 500);
    ended += await countEach(orphans, SETTLE_CONCURRENCY, async (order) => {
      try {
        if (await this.engine.getHold(order.saleId, order.id)) return false;
        const paidWith = await this.payments.reconcile(order);
        if (paidWith) await this.checkout.confirmPaid(order, paidWith);
        else return (await this.ledger.releaseOrder(order.id, 'expired')) !== null;
      } catch (err) {
        this.log.warn({ err, saleId: order.saleId, orderId: order.id }, 'an expired reservation could not be settled; the next sweep tries again');
      }
      return false;
    });
    return ended;
  }

  private async settleHold(saleId: string, hold: EngineHold): Promise<boolean> {
    const order = await this.ledger.getOrder(hold.holdId);
    // Its node died before the ledger write: the unit goes back, and the key with it, so a retry runs again.
    if (!order)
      return this.engine.releaseHold(
        saleId,
        hold.holdId,
        hold.idempotencyKey === undefined ? undefined : { userId: hold.userId, idempotencyKey: hold.idempotencyKey },
      );
    if (order.status === 'confirmed') {
      await this.engine.confirmHold(saleId, hold.holdId);
      return false;
    }
    if (order.status !== 'reserved') return this.engine.releaseHold(saleId, hold.holdId);
    const paidWith = await this.payments.reconcile(order);
    if (paidWith) {
      // Paid (recorded in the ledger, or taken at the gateway): confirmed — or refunded should it have ended meanwhile.
      await this.checkout.confirmPaid(order, paidWith);
      return false;
    }
    return (await this.checkout.end(order, 'expired')) !== null;
  }
}
