/**
 * The migration runner: numbered plain-SQL files in `migrations/` (`001.do.schema.sql`),
 * applied in order, each in its own transaction and recorded in `schema_migrations`.
 */
import { readdir, readFile } from 'node:fs/promises';
import type { SqlClient } from './sql-client.js';

/** One migration file. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

/** `001.do.schema.sql` → version 1, name `schema`. `.undo.` files are not ours to run. */
const FILE_NAME = /^(\d+)\.(?:do\.)?(.+)\.sql$/;

/**
 * Any fixed number works as long as nothing else in the database takes the same advisory
 * lock; this one spells "stampede migrate" in nobody's scheme.
 */
const MIGRATION_LOCK = 5_417_829_301;

/** Reads the migration files, sorted by version; two files with one version is a mistake. */
export async function loadMigrations(dir: URL = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => FILE_NAME.test(f) && !f.includes('.undo.'));
  const migrations = await Promise.all(
    files.map(async (file) => {
      const [, version, name] = FILE_NAME.exec(file)!;
      return { version: Number(version), name, sql: await readFile(new URL(file, dir), 'utf8') };
    }),
  );
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i].version === migrations[i - 1].version) {
      throw new Error(`two migrations share version ${migrations[i].version}`);
    }
  }
  return migrations;
}

/**
 * Applies the migrations not yet recorded and returns their versions.
 *
 * Safe when several processes start together: every step first takes a transaction-scoped
 * advisory lock, so one process applies a migration while the others wait, then see it
 * recorded and skip it. (PGlite has one connection, so the lock is free there.)
 */
export async function migrate(db: SqlClient, migrations?: Migration[]): Promise<number[]> {
  const all = migrations ?? (await loadMigrations());
  await db.transaction(async (tx) => {
    await lock(tx);
    // Created here, not in a migration, because the runner needs it before the first one.
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  });

  const applied: number[] = [];
  for (const m of all) {
    const ran = await db.transaction(async (tx) => {
      await lock(tx);
      const { rows } = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (rows.length > 0) return false;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (ran) applied.push(m.version);
  }
  return applied;
}

async function lock(tx: SqlClient): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
}
