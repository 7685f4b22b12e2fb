import type { Engine } from './engine.js';

/**
 * The engine's clock as seen from this node: the local clock plus a measured offset. Sale
 * status (scheduled → open → ended), ticket ages and reservation windows are decided on this
 * clock, so every node agrees with the engine — and so with each other — within a round trip,
 * whatever its own clock says.
 *
 * On a Redis Cluster each shard has its own clock, and a sale's scripts run on the shard its keys
 * live on. So the offset is kept per sale (each snapshot carries its shard's time): `now(saleId)`
 * is that sale's shard's time, and a shard whose clock is off does not move another shard's sales.
 * `now()` without a sale is the engine's time as last seen from any shard.
 */
export class EngineClock {
  private offset = 0;
  private readonly bySale = new Map<string, number>();

  /** `local` is this node's clock; tests pass a skewed one to prove it does not matter. */
  constructor(
    private readonly engine: Engine,
    private readonly local: () => number = Date.now,
  ) {}

  /** Engine time now, in epoch milliseconds: the clock of `saleId`'s shard when it is known. */
  now(saleId?: string): number {
    return this.local() + ((saleId === undefined ? undefined : this.bySale.get(saleId)) ?? this.offset);
  }

  /** Measures the offset with one round trip, taking the midpoint as the engine's instant. */
  async sync(): Promise<void> {
    const before = this.local();
    const engineNow = await this.engine.now();
    const after = this.local();
    this.observe(engineNow, (before + after) / 2);
  }

  /** Folds in an engine time read at local time `localAt` (snapshots carry one for free), from `saleId`'s shard when given. */
  observe(engineNow: number, localAt: number, saleId?: string): void {
    const offset = engineNow - localAt;
    if (saleId !== undefined) this.bySale.set(saleId, offset);
    this.offset = offset;
  }

  /** Drops a sale's offset (the node no longer follows it). */
  forget(saleId: string): void {
    this.bySale.delete(saleId);
  }

  localNow(): number {
    return this.local();
  }
}
