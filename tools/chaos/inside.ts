/**
 * The inside half of the checks: what the ledger (SQL), the engine (the sale's Redis keys, read
 * raw rather than through the engine's own code) and the event stream (NATS JetStream) hold.
 * Each read is one short connection with a deadline, so a check never hangs on a service.
 */
import { connect, type JsMsg } from 'nats';
import { Redis } from 'ioredis';
import pg from 'pg';
import { EngineKeys } from '../../src/engine/redis/keys.js';
import { STREAM } from '../../src/ledger/outbox-relay.js';

export interface LedgerItem {
  sku: string;
  quantity: number;
  sold: number;
  held: number;
}

export interface LedgerOrder {
  id: string;
  sku: string;
  user_id: string;
  quantity: number;
  status: string;
  idempotency_key: string;
  payment_id: string | null;
  reservation_expires_at: Date;
}

/** A payment row as stored; the columns the checks do not name are kept too (refund fields, say). */
export type LedgerPayment = Record<string, unknown> & {
  id: string;
  user_id: string;
  order_id: string | null;
  kind: string;
  status: string;
  captured_cents: string | number;
  ended_reason: string | null;
};

export interface LedgerPicture {
  items: LedgerItem[];
  orders: LedgerOrder[];
  payments: LedgerPayment[];
  /** Every outbox row (of every sale): its id and whether the relay marked it published. */
  outbox: Array<{ id: number; topic: string; published: boolean }>;
}

/** One consistent read of a sale's rows (REPEATABLE READ), within `timeoutMs`. */
export async function readLedger(databaseUrl: string, saleId: string, timeoutMs = 10_000): Promise<LedgerPicture> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 3000, statement_timeout: timeoutMs, query_timeout: timeoutMs });
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const items = await client.query('SELECT sku, quantity, sold, held FROM items WHERE sale_id = $1 ORDER BY position', [saleId]);
    const orders = await client.query(
      'SELECT id, sku, user_id, quantity, status, idempotency_key, payment_id, reservation_expires_at FROM orders WHERE sale_id = $1',
      [saleId],
    );
    const payments = await client.query('SELECT * FROM payments WHERE sale_id = $1', [saleId]);
    const outbox = await client.query('SELECT id, topic, published_at IS NOT NULL AS published FROM outbox ORDER BY id');
    await client.query('COMMIT');
    return {
      items: items.rows.map((r) => ({ sku: r.sku, quantity: Number(r.quantity), sold: Number(r.sold), held: Number(r.held) })),
      orders: orders.rows.map((r) => ({ ...r, quantity: Number(r.quantity) })),
      payments: payments.rows,
      outbox: outbox.rows.map((r) => ({ id: Number(r.id), topic: r.topic, published: r.published })),
    };
  } finally {
    await client.end().catch(() => {});
  }
}

export interface EngineHold {
  id: string;
  userId: string;
  sku: string;
  quantity: number;
  expiresAt: number;
}

export interface EnginePicture {
  /** False when the sale has no keys in the engine at all (not loaded, or lost). */
  present: boolean;
  /** Units per SKU the engine will still sell. */
  stock: Record<string, number>;
  /** Quantity per SKU as the engine knows it (its items hash). */
  quantity: Record<string, number>;
  holds: EngineHold[];
  /** The sale's `held` counter (meta), which must equal the units in `holds`. */
  heldCounter: number | null;
}

/** The sale's engine keys, read in one MULTI (one instant), within a few seconds. */
export async function readEngine(redisUrl: string, prefix: string, saleId: string): Promise<EnginePicture> {
  const redis = new Redis(redisUrl, { lazyConnect: true, connectTimeout: 2000, commandTimeout: 5000, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await redis.connect();
    const k = new EngineKeys(prefix).sale(saleId);
    const res = await redis.multi().exists(k.meta).hgetall(k.stock).hgetall(k.items).hgetall(k.holds).hget(k.meta, 'held').exec();
    if (!res) throw new Error('Redis MULTI was aborted');
    for (const [err] of res) if (err) throw err;
    const [exists, stock, items, holds, held] = res.map(([, v]) => v) as [
      number,
      Record<string, string>,
      Record<string, string>,
      Record<string, string>,
      string | null,
    ];
    return {
      present: exists === 1,
      stock: Object.fromEntries(Object.entries(stock).map(([sku, n]) => [sku, Number(n)])),
      quantity: Object.fromEntries(Object.entries(items).map(([sku, spec]) => [sku, Number(spec.split('|')[0])])),
      holds: Object.entries(holds).map(([id, raw]) => {
        const [userId, sku, quantity, expiresAt] = JSON.parse(raw) as string[];
        return { id, userId, sku, quantity: Number(quantity), expiresAt: Number(expiresAt) };
      }),
      heldCounter: held === null ? null : Number(held),
    };
  } finally {
    redis.disconnect();
  }
}

export interface StreamPicture {
  messages: number;
  /** Outbox ids found in the stream's messages. */
  outboxIds: Set<number>;
}

/** Every message of the event stream (an ordered consumer from the first), within `timeoutMs`. */
export async function readStream(natsUrl: string, timeoutMs = 20_000): Promise<StreamPicture> {
  const nc = await connect({ servers: natsUrl, timeout: 3000, maxReconnectAttempts: 0 });
  try {
    const jsm = await nc.jetstreamManager({ timeout: 3000 });
    const info = await jsm.streams.info(STREAM);
    const messages = info.state.messages;
    const outboxIds = new Set<number>();
    if (messages > 0) {
      const consumer = await nc.jetstream({ timeout: 3000 }).consumers.get(STREAM);
      const deadline = Date.now() + timeoutMs;
      let seen = 0;
      while (seen < messages && Date.now() < deadline) {
        const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
        let got = 0;
        for await (const m of batch as AsyncIterable<JsMsg>) {
          got++;
          seen++;
          try {
            const id = Number((JSON.parse(new TextDecoder().decode(m.data)) as { id?: unknown }).id);
            if (Number.isFinite(id)) outboxIds.add(id);
          } catch {
            /* not one of ours */
          }
        }
        if (got === 0) break;
      }
    }
    return { messages, outboxIds };
  } finally {
    await nc.close().catch(() => {});
  }
}
