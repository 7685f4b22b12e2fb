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
  const db: SqlClient = opts.databaseUrl ? new PgClient({ connectionString: opts.databaseUrl, max: opts.poolSize }) : await PgliteClient.open(opts.dataDir);
  const ledger = new SqlLedger(db);
  try {
    await ledger.migrate();
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
  return ledger;
}
