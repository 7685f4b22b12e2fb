/**
 * The one seam between the ledger's SQL and a database: PostgreSQL through a `pg` pool, or
 * embedded PGlite. Both answer rows in the same JS shapes — integers (including `bigint`,
 * `count(*)` and `numeric`) as numbers, timestamps as `Date`, `jsonb` parsed — so the
 * repository above never asks which one it talks to.
 */
import pg from 'pg';
import { PGlite, type Transaction } from '@electric-sql/pglite';

/** A database that runs parameterised SQL and units of work. */
export interface SqlClient {
  readonly kind: 'pg' | 'pglite';
  /** One statement, parameters as `$1..$n`. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  /** A script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws.
   * Called on a client that is already a transaction, it joins that transaction.
   */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const INT8 = 20;
const NUMERIC = 1700;

/**
 * pg hands `bigint` and `numeric` back as strings to avoid precision loss; our amounts and
 * counts stay far below 2^53, and callers want numbers. A per-pool parser table keeps this
 * choice from leaking into other `pg` users in the same process.
 */
const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8 || oid === NUMERIC) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format ?? 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** Options for {@link PgClient}. */
export interface PgClientOptions {
  connectionString: string;
  /** Pool size (default 10). */
  max?: number;
}

/** PostgreSQL through a connection pool; a transaction holds one checked-out connection. */
export class PgClient implements SqlClient {
  readonly kind = 'pg' as const;
  private readonly pool: pg.Pool;

  constructor(opts: PgClientOptions) {
    this.pool = new pg.Pool({ connectionString: opts.connectionString, max: opts.max ?? 10, types: pgTypes });
    // An idle connection dropped by the server emits 'error' on the pool; without a listener
    // Node would crash the process. The next query simply gets a fresh connection.
    this.pool.on('error', () => {});
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<{ rows: T[] }> {
    const res = await this.pool.query(sql, params);
    return { rows: res.rows as T[] };
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    const conn = await this.pool.connect();
    try {
      await conn.query('BEGIN');
      const result = await fn(new PgTransaction(conn));
      await conn.query('COMMIT');
      return result;
    } catch (err) {
      await conn.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      conn.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** A `pg` connection inside BEGIN … COMMIT; nested transactions join it. */
class PgTransaction implements SqlClient {
  readonly kind = 'pg' as const;
  constructor(private readonly conn: pg.PoolClient) {}

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<{ rows: T[] }> {
    const res = await this.conn.query(sql, params);
    return { rows: res.rows as T[] };
  }

  async exec(sql: string): Promise<void> {
    await this.conn.query(sql);
  }

  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    return fn(this);
  }

  close(): Promise<void> {
    return Promise.reject(new Error('cannot close a transaction; close the client it came from'));
  }
}

/**
 * Embedded PostgreSQL (PGlite): one connection in this process. PGlite queues every query
 * and transaction behind one lock, so units of work run one after another; a plain query made
 * while a transaction is open waits for it rather than slipping into it.
 */
export class PgliteClient implements SqlClient {
  readonly kind = 'pglite' as const;

  private constructor(private readonly db: PGlite) {}

  /** Opens a database under `dataDir`, or in memory when it is undefined. */
  static async open(dataDir?: string): Promise<PgliteClient> {
    // numeric comes back as a string by default (as in pg); sums and averages want numbers.
    const db = await PGlite.create(dataDir, { parsers: { [NUMERIC]: (v: string) => Number(v) } });
    return new PgliteClient(db);
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<{ rows: T[] }> {
    const res = await this.db.query<T>(sql, params);
    return { rows: res.rows };
  }

  async exec(sql: string): Promise<void> {
    await this.db.exec(sql);
  }

  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => fn(new PgliteTransaction(tx)));
  }

  async close(): Promise<void> {
    if (!this.db.closed) await this.db.close();
  }
}

/** A PGlite transaction; nested transactions join it. */
class PgliteTransaction implements SqlClient {
  readonly kind = 'pglite' as const;
  constructor(private readonly tx: Transaction) {}

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<{ rows: T[] }> {
    const res = await this.tx.query<T>(sql, params);
    return { rows: res.rows };
  }

  async exec(sql: string): Promise<void> {
    await this.tx.exec(sql);
  }

  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    return fn(this);
  }

  close(): Promise<void> {
    return Promise.reject(new Error('cannot close a transaction; close the client it came from'));
  }
}

/** The SQLSTATE of a database error (`23514` check violation, `23505` unique violation ...). */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
