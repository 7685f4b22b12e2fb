import { describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../../src/ledger/migrate.js';
import { openLedger } from '../../src/ledger/open-ledger.js';
import { PgClient } from '../../src/ledger/sql-client.js';
import { SqlLedger } from '../../src/ledger/sql-ledger.js';
import { requirePostgres, withTempDatabase } from '../support/pg.js';
import { ledgerContract } from './ledger.contract.js';

ledgerContract('postgresql', async () => {
  if (!(await requirePostgres('ledger contract: postgresql'))) return null;
  const temp = await withTempDatabase();
  const ledger = (await openLedger({ databaseUrl: temp.url })) as SqlLedger;
  return {
    ledger,
    db: ledger.db,
    cleanup: async () => {
      await ledger.close();
      await temp.drop();
    },
  };
});

describe('ledger migrations on postgresql', () => {
  it('three processes migrating one fresh database at once apply each migration exactly once', async (ctx) => {
    if (!(await requirePostgres('ledger migrations: postgresql'))) return ctx.skip();
    const temp = await withTempDatabase();
    // Separate pools stand in for separate processes: each races on its own connections.
    const clients = Array.from({ length: 3 }, () => new PgClient({ connectionString: temp.url, max: 2 }));
    try {
      const applied = await Promise.all(clients.map((c) => migrate(c)));
      const versions = (await loadMigrations()).map((m) => m.version);
      expect(applied.flat().sort((a, b) => a - b)).toEqual(versions);
      const { rows } = await clients[0].query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(versions);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await temp.drop();
    }
  });
});
