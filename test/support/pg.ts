/**
 * Throwaway PostgreSQL databases for tests: each suite gets its own, so suites run in
 * parallel without seeing each other's rows, and drops it at the end.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server tests use; its database is only the door in (we create our own beside it). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A database made for one suite. */
export interface TempDatabase {
  /** Connection string of the new database. */
  url: string;
  /** Drops it, closing any connection still open to it. */
  drop(): Promise<void>;
}

async function admin<T>(baseUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** True when the server answers. */
export async function postgresReachable(baseUrl = TEST_DATABASE_URL): Promise<boolean> {
  try {
    await admin(baseUrl, (c) => c.query('SELECT 1'));
    return true;
  } catch {
    return false;
  }
}

/**
 * Decides whether a PostgreSQL suite runs: yes when the server answers; when it does not, a
 * loud warning and a skip on a developer's machine, but an error under CI, where a silently
 * skipped suite would look like a passing one.
 */
export async function requirePostgres(suite: string, baseUrl = TEST_DATABASE_URL): Promise<boolean> {
  if (process.env.STAMPEDE_TEST_SERVICES === 'none') return false;
  if (await postgresReachable(baseUrl)) return true;
  const where = baseUrl.replace(/\/\/[^@/]*@/, '//***@');
  if (process.env.CI) throw new Error(`${suite}: PostgreSQL is required in CI but ${where} is unreachable`);
  console.warn(`\n⚠️  ${suite}: PostgreSQL at ${where} is unreachable — SKIPPING. Set TEST_DATABASE_URL to run it.\n`);
  return false;
}

/** Creates `stampede_test_<random>` on the test server. */
export async function withTempDatabase(baseUrl = TEST_DATABASE_URL): Promise<TempDatabase> {
  const name = `stampede_test_${randomBytes(6).toString('hex')}`;
  await admin(baseUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      // FORCE ends connections a failed test left open, so the drop never hangs.
      await admin(baseUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
