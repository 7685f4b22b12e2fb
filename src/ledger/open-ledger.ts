import type { Ledger } from './ledger.js';
import { PgClient, PgliteClient, type SqlClient } from './sql-client.js';
import { SqlLedger } from './sql-ledger.js';

/** Where the ledger lives. */
export interface OpenLedgerOptions {
  /** A PostgreSQL connection string; when set, the ledger is PostgreSQL. */
  databaseUrl?: string;
  /** PGlite's data directory when `databaseUrl` is not set; undefined keeps the database in memory. */
  dataDir?: string;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
}

/**
 * Opens the ledger — PostgreSQL when a URL is given, embedded PGlite otherwise — and brings
 * its schema up to date before handing it out, so callers never see a half-migrated ledger.
 */
export async function openLedger(opts: OpenLedgerOptions = {}): Promise<Ledger> {
  if (opts.databaseUrl) {
    // Migrations run on a connection of their own, without the ledger's deadlines: a migration
    // may build an index for minutes, or wait its turn behind another node's.
    const migrator = new PgClient({ connectionString: opts.databaseUrl, max: 1, deadlines: false });
    try {
      await new SqlLedger(migrator).migrate();
    } finally {
      await migrator.close().catch(() => {});
    }
    return new SqlLedger(new PgClient({ connectionString: opts.databaseUrl, max: opts.poolSize }));
  }
  const db: SqlClient = await PgliteClient.open(opts.dataDir);
  const ledger = new SqlLedger(db);
  try {
    await ledger.migrate();
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
  return ledger;
}
