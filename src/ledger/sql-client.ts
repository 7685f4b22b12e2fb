/**
 * The one seam between the ledger's SQL and a database: PostgreSQL through a `pg` pool, or
 * embedded PGlite. Both answer rows in the same JS shapes — integers (including `bigint`,
 * `count(*)` and `numeric`) as numbers, timestamps as `Date`, `jsonb` parsed — so the
 * repository above never asks which one it talks to.
 */
import pg from 'pg';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { withDeadline } from '../async-limits.js';
import { DependencyUnavailableError, isUnavailable } from '../errors.js';

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

/**
 * How long the ledger's PostgreSQL gets. Ledger statements take milliseconds; SPEC §6 wants a
 * request whose dependency is down answered (503) within 2 s, so no call may wait longer than
 * about one and a half.
 */
export const PG_DEADLINES = {
  /**
   * Opening one connection (a server that accepts and never answers is frozen or overwhelmed),
   * or waiting in line for a free one. Shorter than `acquireMs`, so that a connection that cannot
   * be opened is told apart from a pool that is merely busy.
   */
  connectMs: 800,
  /** A connection from the pool: waiting for a free one and opening a new one, together. */
  acquireMs: 1000,
  /** The server cancels a statement that runs longer (SQLSTATE 57014): a slow database, a lock held too long. */
  statementMs: 1000,
  /** No answer at all this long (the server frozen, or the network gone): the call fails and its connection is dropped. */
  queryMs: 1500,
  /** Once the database stopped answering, calls fail at once for this long; then one call tries it again. */
  coolDownMs: 1000,
} as const;

/** Options for {@link PgClient}. */
export interface PgClientOptions {
  connectionString: string;
  /** Pool size (default 10). */
  max?: number;
  /**
   * The deadlines of {@link PG_DEADLINES} (default true). Migrations run without: building an
   * index on a large table may take minutes, and nobody is waiting on it.
   */
  deadlines?: boolean;
}

/** The pool's own wait for a free connection ran out: the pool is busy, which says nothing about the server. */
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect';

/**
 * PostgreSQL through a connection pool; a transaction holds one checked-out connection.
 *
 * Every call has a deadline (see {@link PG_DEADLINES}). When the server stops answering — a
 * connection refused or cut, no answer within the deadline — the next calls do not each wait out
 * their own: for a moment they fail at once (`DependencyUnavailableError`), then a single call
 * tries the server again, and the first answer opens the way for all.
 */
export class PgClient implements SqlClient {
  readonly kind = 'pg' as const;
  private readonly pool: pg.Pool;
  private readonly deadlines: boolean;
  /** Set while the server is not answering: until when calls fail at once, and whether a probe is out. */
  private down: { since: number; until: number; probing: boolean; cause: unknown } | null = null;

  constructor(opts: PgClientOptions) {
    this.deadlines = opts.deadlines ?? true;
    this.pool = new pg.Pool({
      connectionString: opts.connectionString,
      max: opts.max ?? 10,
      types: pgTypes,
      ...(this.deadlines
        ? { connectionTimeoutMillis: PG_DEADLINES.connectMs, statement_timeout: PG_DEADLINES.statementMs, query_timeout: PG_DEADLINES.queryMs }
        : {}),
    });
    // An idle connection dropped by the server emits 'error' on the pool; without a listener
    // Node would crash the process. The next query simply gets a fresh connection.
    this.pool.on('error', () => {});
  }

  query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<{ rows: T[] }> {
    return this.guarded(async () => {
      const conn = await this.connection();
      try {
        const res = await conn.query(sql, params);
        conn.release();
        return { rows: res.rows as T[] };
      } catch (err) {
        // As pg's pool.query does: a connection that failed a statement is not reused.
        conn.release(err as Error);
        throw err;
      }
    });
  }

  async exec(sql: string): Promise<void> {
    await this.query(sql);
  }

  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    return this.guarded(async () => {
      const conn = await this.connection();
      try {
        await conn.query('BEGIN');
        const result = await fn(new PgTransaction(conn));
        await conn.query('COMMIT');
        conn.release();
        return result;
      } catch (err) {
        // A server that stopped answering is not asked to roll back (that would wait out another
        // deadline): dropping the connection rolls the transaction back.
        const rolledBack = isUnavailable(err)
          ? false
          : await conn.query('ROLLBACK').then(
              () => true,
              () => false,
            );
        conn.release(rolledBack ? undefined : (err as Error));
        throw err;
      }
    });
  }

  /** Runs one call through the gate: refused at once while the server is down, unless it is the one probe. */
  private async guarded<T>(call: () => Promise<T>): Promise<T> {
    const down = this.down;
    if (down && (down.probing || Date.now() < down.until)) {
      throw new DependencyUnavailableError('ledger', `PostgreSQL has not answered since ${new Date(down.since).toISOString()}; retry shortly`, {
        cause: down.cause,
      });
    }
    if (down) down.probing = true;
    try {
      const result = await call();
      this.down = null;
      return result;
    } catch (err) {
      if (this.deadlines && serverGone(err)) {
        const now = Date.now();
        this.down = { since: this.down?.since ?? now, until: now + PG_DEADLINES.coolDownMs, probing: false, cause: err };
      } else if (this.down === down && down) {
        // The server answered (with an error of the statement's own): it is up.
        this.down = null;
      }
      throw err;
    }
  }

  /** A pooled connection within the acquire deadline (waiting in line and connecting, together). */
  private async connection(): Promise<pg.PoolClient> {
    const pending = this.pool.connect();
    if (!this.deadlines) return pending;
    try {
      return await withDeadline(
        pending,
        PG_DEADLINES.acquireMs,
        () => new DependencyUnavailableError('ledger', `no PostgreSQL connection within ${PG_DEADLINES.acquireMs} ms`),
      );
    } catch (err) {
      // Should the connection come after all, it goes back to the pool.
      pending.then(
        (conn) => conn.release(),
        () => {},
      );
      throw err;
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

/**
 * Whether a failure says the server is gone (refused, cut off, silent past the deadline), as
 * opposed to slow (57014, a statement cancelled at `statement_timeout`), full (53300) or busy
 * (our pool had no free connection in time) — which shed this call but do not stop the others.
 */
function serverGone(err: unknown): boolean {
  if (!isUnavailable(err) || err instanceof DependencyUnavailableError) return false;
  const state = sqlState(err);
  return state !== '57014' && state !== '53300' && (err as Error).message !== POOL_WAIT_TIMEOUT;
}

/** The SQLSTATE of a database error (`23514` check violation, `23505` unique violation ...). */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
