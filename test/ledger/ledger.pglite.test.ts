import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openLedger } from '../../src/ledger/open-ledger.js';
import { SqlLedger } from '../../src/ledger/sql-ledger.js';
import { ledgerContract, saleInput } from './ledger.contract.js';

ledgerContract('pglite (in memory)', async () => {
  const ledger = (await openLedger()) as SqlLedger;
  return { ledger, db: ledger.db, cleanup: () => ledger.close() };
});

describe('ledger on PGlite on disk', () => {
  it('keeps its sales across a restart and migrates nothing twice', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stampede-ledger-'));
    try {
      const first = await openLedger({ dataDir: dir });
      const sale = await first.createSale(saleInput());
      await first.close();
      const second = (await openLedger({ dataDir: dir })) as SqlLedger;
      expect((await second.getSale(sale.id))?.name).toBe(sale.name);
      const { rows } = await second.db.query<{ n: number }>('SELECT count(*) AS n FROM schema_migrations');
      expect(rows[0].n).toBeGreaterThan(0);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
