/**
 * Sales and their items. Kept beside the order rules rather than in them: a sale changes rarely
 * and by an admin, while orders move stock under load.
 */
import { randomUUID } from 'node:crypto';
import { LedgerConflictError, LedgerNotFoundError, type ItemInput, type Sale, type SaleInput } from './ledger.js';
import { isUuid, toSale, type ItemRow, type SaleRow } from './ledger-rows.js';
import { writeEvent as event } from './outbox.js';
import type { SqlClient } from './sql-client.js';

/** The sales half of the ledger; `SqlLedger` hands its sale methods here. */
export class SaleRepository {
  constructor(private readonly db: SqlClient) {}

  createSale(input: SaleInput): Promise<Sale> {
    const id = randomUUID();
    return this.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO sales (id, name, starts_at, ends_at, queue, reservation_ttl_sec, bot_protection)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb)`,
        [id, input.name, input.startsAt, input.endsAt, JSON.stringify(input.queue), input.reservationTtlSec, JSON.stringify(input.botProtection)],
      );
      await insertItems(tx, id, input.items);
      await event(tx, 'sale.created', { sale_id: id });
      return (await loadSale(tx, id))!;
    });
  }

  getSale(id: string): Promise<Sale | null> {
    return isUuid(id) ? loadSale(this.db, id) : Promise.resolve(null);
  }

  /** Every sale, soonest start first. */
  async listSales(): Promise<Sale[]> {
    const sales = await this.db.query<SaleRow>('SELECT * FROM sales ORDER BY starts_at, created_at, id');
    if (sales.rows.length === 0) return [];
    const items = await this.db.query<ItemRow>('SELECT * FROM items WHERE sale_id = ANY($1::uuid[]) ORDER BY position', [sales.rows.map((s) => s.id)]);
    return sales.rows.map((s) =>
      toSale(
        s,
        items.rows.filter((i) => i.sale_id === s.id),
      ),
    );
  }

  updateSale(id: string, patch: Partial<SaleInput>): Promise<Sale> {
    if (!isUuid(id)) return Promise.reject(new LedgerNotFoundError('sale', id));
    return this.db.transaction(async (tx) => {
      // Locks the sale so two admins' patches apply one after the other.
      const { rows } = await tx.query<SaleRow>('SELECT * FROM sales WHERE id = $1 FOR UPDATE', [id]);
      if (rows.length === 0) throw new LedgerNotFoundError('sale', id);
      if (rows[0].cancelled_at) throw new LedgerConflictError(`sale ${id} is cancelled`);
      if (patch.items) {
        // FOR UPDATE waits for in-flight reservations, so none slips in between check and delete.
        const items = await tx.query<ItemRow>('SELECT * FROM items WHERE sale_id = $1 FOR UPDATE', [id]);
        const taken = items.rows.filter((i) => i.sold + i.held > 0).map((i) => i.sku);
        if (taken.length > 0) {
          throw new LedgerConflictError(`sale ${id} has units sold or held (${taken.join(', ')}); its items can no longer be replaced`);
        }
        await tx.query('DELETE FROM items WHERE sale_id = $1', [id]);
        await insertItems(tx, id, patch.items);
      }
      await tx.query(
        `UPDATE sales SET
           name = COALESCE($2, name),
           starts_at = COALESCE($3, starts_at),
           ends_at = COALESCE($4, ends_at),
           queue = COALESCE($5::jsonb, queue),
           reservation_ttl_sec = COALESCE($6, reservation_ttl_sec),
           bot_protection = COALESCE($7::jsonb, bot_protection),
           updated_at = now()
         WHERE id = $1`,
        [
          id,
          patch.name ?? null,
          patch.startsAt ?? null,
          patch.endsAt ?? null,
          patch.queue ? JSON.stringify(patch.queue) : null,
          patch.reservationTtlSec ?? null,
          patch.botProtection ? JSON.stringify(patch.botProtection) : null,
        ],
      );
      await event(tx, 'sale.updated', { sale_id: id });
      return (await loadSale(tx, id))!;
    });
  }

  /** Marks the sale cancelled (once: cancelling again changes nothing and emits nothing). */
  cancelSale(id: string): Promise<Sale> {
    if (!isUuid(id)) return Promise.reject(new LedgerNotFoundError('sale', id));
    return this.db.transaction(async (tx) => {
      const changed = await tx.query('UPDATE sales SET cancelled_at = now(), updated_at = now() WHERE id = $1 AND cancelled_at IS NULL RETURNING id', [id]);
      if (changed.rows.length > 0) await event(tx, 'sale.cancelled', { sale_id: id });
      const sale = await loadSale(tx, id);
      if (!sale) throw new LedgerNotFoundError('sale', id);
      return sale;
    });
  }
}

async function loadSale(db: SqlClient, id: string): Promise<Sale | null> {
  const sale = await db.query<SaleRow>('SELECT * FROM sales WHERE id = $1', [id]);
  if (sale.rows.length === 0) return null;
  const items = await db.query<ItemRow>('SELECT * FROM items WHERE sale_id = $1 ORDER BY position', [id]);
  return toSale(sale.rows[0], items.rows);
}

async function insertItems(db: SqlClient, saleId: string, items: ItemInput[]): Promise<void> {
  for (const [position, i] of items.entries()) {
    await db.query(
      `INSERT INTO items (sale_id, sku, name, price_cents, currency, quantity, per_user_limit, max_per_order, position)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [saleId, i.sku, i.name, i.priceCents, i.currency, i.quantity, i.perUserLimit, i.maxPerOrder, position],
    );
  }
}
