/**
 * The production engine: each sale's hot state in Redis, every multi-key step one Lua script
 * (`./lua/`), all keys of a sale in one Cluster slot. It answers exactly as `MemoryEngine` does —
 * the contract suite and a differential property test hold the two together.
 */
import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import type {
  AdmitResult,
  Engine,
  EngineHold,
  EngineInspection,
  EngineRepair,
  EngineSale,
  EnterOptions,
  EnterResult,
  ReserveRequest,
  ReserveResult,
  SaleLoad,
  SaleSnapshot,
} from '../engine.js';
import { Refusal, refusalError } from '../engine-refusals.js';
import { initialState } from '../initial-state.js';
import { EngineKeys } from './keys.js';
import { keySlot } from './key-slot.js';
import { laneOf } from '../lanes.js';
import { defineScripts, loadScripts, luaRefusals, type ScriptReply, type ScriptRunner } from './script-loader.js';

/**
 * The engine's scripts and the number of keys each takes (checked against the `-N` of its file
 * name when loaded). Each is registered as `stampede_<hash of its content>_<name>`, so two
 * releases sharing a client or a Redis never run each other's scripts.
 */
const SCRIPT_KEYS = {
  loadSale: 7,
  updateSale: 3,
  snapshot: 7,
  enterQueue: 5,
  enterLane: 3,
  placeOf: 4,
  admit: 6,
  reserve: 10,
  releaseHold: 6,
  confirmHold: 3,
  expiredHolds: 2,
  acquireLease: 1,
  releaseLease: 1,
  inspect: 4,
  repair: 5,
  retire: 14,
} as const;
type ScriptName = keyof typeof SCRIPT_KEYS;
const scripts = loadScripts(new URL('./lua/', import.meta.url), SCRIPT_KEYS, { 'includes/refusals': luaRefusals(Refusal) });

export interface RedisEngineOptions {
  /** First part of every key (default `stampede`). */
  prefix?: string;
  /** True when the engine created the client and so closes it on `close()`. */
  ownsClient?: boolean;
}

/**
 * How long the engine's Redis gets. A script answers in well under a millisecond; a second
 * without a reply means Redis is frozen, failing over or gone, and a request waiting longer
 * could not answer within the 2 s SPEC §6 gives it anyway.
 */
export const REDIS_DEADLINES = {
  /** A command (script) without a reply this long fails with "Command timed out". */
  commandMs: 1000,
  /**
   * A connection on which nothing arrives this long while commands wait is dropped and made
   * again. Redis answers in order, so every command behind the stuck one was lost with it anyway;
   * until the new connection is ready, commands fail at once instead of each waiting a second.
   */
  silenceMs: 1000,
  /** Opening a TCP connection. */
  connectMs: 1000,
  /** Reconnect attempts are spaced 100 ms, 200 ms … up to this, for as long as Redis is away. */
  maxReconnectDelayMs: 1000,
} as const;

/**
 * Client options of every connection to the engine's Redis.
 *
 * Commands issued in the same tick go out in one write (`enableAutoPipelining`). Under load a
 * node sends thousands of script calls a second, and a socket write costs more than the script
 * it carries (in the bench, writes to Redis and PostgreSQL were 38 % of a purchase's CPU).
 *
 * The rest makes an outage fail fast (SPEC §6): while disconnected, a command is refused at once
 * rather than queued until Redis returns (`enableOfflineQueue: false`); a command that was in
 * flight when the connection dropped fails with it rather than being sent again on the next one
 * (`maxRetriesPerRequest: 0`); and the client keeps reconnecting for as long as it takes.
 */
export const REDIS_CLIENT_OPTIONS = {
  enableAutoPipelining: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: REDIS_DEADLINES.commandMs,
  socketTimeout: REDIS_DEADLINES.silenceMs,
  connectTimeout: REDIS_DEADLINES.connectMs,
  retryStrategy: (attempt: number) => Math.min(attempt * 100, REDIS_DEADLINES.maxReconnectDelayMs),
} as const;

/**
 * A Redis client, or a Cluster client when `clusterNodes` are given (`host:port`, or
 * `redis://[user:password@]host:port`, `rediss://` for TLS: the first entry's credentials and
 * transport serve every node, as config.ts made sure they agree). It refuses commands until it
 * is connected: wait for {@link untilReady} before the first. `onError` hears its connection
 * errors (ioredis prints them to stderr when nobody listens).
 */
export function createRedis(opts: { url?: string; clusterNodes?: string[]; onError?: (err: Error) => void } = {}): Redis | Cluster {
  const { enableAutoPipelining, enableOfflineQueue, ...perConnection } = REDIS_CLIENT_OPTIONS;
  let client: Redis | Cluster;
  if (opts.clusterNodes?.length) {
    const urls = opts.clusterNodes.map((node) => new URL(node.includes('://') ? node : `redis://${node}`));
    const { username, password, protocol } = urls[0];
    client = new Cluster(
      urls.map((url) => ({ host: url.hostname, port: Number(url.port || 6379) })),
      {
        enableAutoPipelining,
        enableOfflineQueue,
        redisOptions: {
          ...perConnection,
          ...(username ? { username: decodeURIComponent(username) } : {}),
          ...(password ? { password: decodeURIComponent(password) } : {}),
          ...(protocol === 'rediss:' ? { tls: {} } : {}),
        },
        slotsRefreshTimeout: REDIS_DEADLINES.connectMs,
        clusterRetryStrategy: perConnection.retryStrategy,
      },
    );
  } else {
    client = new Redis(opts.url ?? 'redis://127.0.0.1:6379', REDIS_CLIENT_OPTIONS);
  }
  client.on('error', opts.onError ?? (() => {}));
  return client;
}

/** Resolves once `client` is connected and ready; rejects after `timeoutMs` (with the last connection error) or if it closes for good. */
export function untilReady(client: Redis | Cluster, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (err: Error) => (lastError = err);
    const settle = (err?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady).off('error', onError).off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => settle();
    const onEnd = () => settle(new Error(`Redis connection closed before it was ready${lastError ? `: ${lastError.message}` : ''}`));
    const timer = setTimeout(() => settle(new Error(`Redis not ready within ${timeoutMs} ms (${lastError?.message ?? client.status})`)), timeoutMs);
    client.on('ready', onReady).on('error', onError).on('end', onEnd);
  });
}

/**
 * Deletes every key matching any of `patterns` (SCAN + UNLINK: never blocks Redis like KEYS). On
 * a Cluster it scans every master, and unlinks key by key (one UNLINK may not cross slots).
 */
export async function deleteKeys(redis: Redis | Cluster, ...patterns: string[]): Promise<void> {
  const cluster = redis instanceof Cluster;
  const servers = cluster ? redis.nodes('master') : [redis];
  for (const server of servers) {
    for (const pattern of patterns) {
      let cursor = '0';
      do {
        const [next, keys] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        if (keys.length && cluster) await Promise.all(keys.map((key) => server.unlink(key)));
        else if (keys.length) await server.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
    }
  }
}

/** What a node needs to enter a sale's queue lanes without reading the sale's own slot. */
interface LaneInfo {
  shards: number;
  /** Each lane's hash tag (lane k's keys live in slot `{sale:<id>:<tags[k]>}`). */
  tags: string[];
  epoch: string;
  endsAt: number;
  cancelled: boolean;
}

export class RedisEngine implements Engine {
  readonly kind = 'redis' as const;
  readonly keys: EngineKeys;
  private readonly ownsClient: boolean;
  private readonly runScript: ScriptRunner<ScriptName>;
  /**
   * Each sale's lane settings, read once from its meta hash; every snapshot (each node reads one
   * every 100 ms) keeps the end and cancellation current and drops the entry when the queue's
   * epoch changed (the sale was rebuilt, with lanes of its own).
   */
  private readonly laneInfos = new Map<string, LaneInfo>();

  constructor(
    readonly client: Redis | Cluster,
    opts: RedisEngineOptions = {},
  ) {
    this.keys = new EngineKeys(opts.prefix);
    this.ownsClient = opts.ownsClient ?? false;
    this.runScript = defineScripts(client, scripts);
  }

  /** An engine on a client of its own (connected and ready), closed with the engine. */
  static async connect(opts: { url?: string; clusterNodes?: string[]; prefix?: string } = {}): Promise<RedisEngine> {
    const client = createRedis(opts);
    try {
      await untilReady(client);
    } catch (err) {
      client.disconnect();
      throw err;
    }
    return new RedisEngine(client, { prefix: opts.prefix, ownsClient: true });
  }

  async now() {
    const [seconds, micros] = await this.client.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  async ping() {
    // Refused at once while disconnected, "Command timed out" when Redis is frozen (the client's
    // deadlines); /readyz caps the wait as well.
    await this.client.ping();
  }

  async close() {
    // QUIT is refused while disconnected (no offline queue): then just drop the connection.
    if (this.ownsClient) await this.client.quit().catch(() => this.client.disconnect());
  }

  async loadSale(load: SaleLoad): Promise<boolean> {
    const k = this.keys.sale(load.sale.id);
    const state = JSON.stringify(flatState(load, randomUUID().slice(0, 8), this.laneTags(load.sale.id, load.sale.queueShards ?? 1)));
    this.laneInfos.delete(load.sale.id);
    return (await this.run('loadSale', [k.meta, k.items, k.stock, k.holds, k.holdexp, k.peruser, k.buyers], [state])) === 1;
  }

  async hasSale(saleId: string) {
    return (await this.client.exists(this.keys.sale(saleId).meta)) === 1;
  }

  async updateSale(sale: EngineSale): Promise<void> {
    const k = this.keys.sale(sale.id);
    const items = sale.items.map((i) => [i.sku, i.quantity, i.perUserLimit, i.maxPerOrder]);
    await this.run('updateSale', [k.meta, k.items, k.stock], [JSON.stringify(saleFields(sale)), JSON.stringify(items)]);
    // Lane keys expire an hour after the end they were written with: a later end moves them too.
    this.laneInfos.delete(sale.id);
    const lanes = await this.laneInfo(sale.id);
    if (lanes.shards > 1) {
      const at = sale.endsAt + 3_600_000;
      await Promise.all(lanes.tags.flatMap((tag) => Object.values(this.keys.lane(sale.id, tag, lanes.epoch)).map((key) => this.client.pexpireat(key, at))));
    }
  }

  async dropSale(saleId: string) {
    // Read afresh: a cached entry may be of an epoch since rebuilt.
    this.laneInfos.delete(saleId);
    const info = await this.laneInfo(saleId).catch(() => null);
    this.laneInfos.delete(saleId);
    if (info && info.shards > 1) {
      await Promise.all(info.tags.map((tag) => this.client.del(...Object.values(this.keys.lane(saleId, tag, info.epoch)))));
    }
    await this.client.del(...this.keys.allOfSale(saleId));
  }

  async retire(saleId: string, afterMs: number): Promise<void> {
    await this.run('retire', this.keys.allOfSale(saleId), [Math.max(1, Math.ceil(afterMs))]);
  }

  async inspect(saleId: string): Promise<EngineInspection | null> {
    const k = this.keys.sale(saleId);
    const r = (await this.run('inspect', [k.meta, k.stock, k.holds, k.peruser], [])) as [string[], string[], string[], string] | null;
    if (!r) return null;
    const [stock, holds, perUser, epoch] = r;
    const inspection: EngineInspection = { stock: record(stock), holds: [], perUser: [], epoch };
    for (let i = 0; i < holds.length; i += 2) inspection.holds.push(decodeHold(holds[i], holds[i + 1]));
    for (let i = 0; i < perUser.length; i += 2) {
      // "user TAB sku": a SKU has no tab (the sale schema's pattern), a user id might.
      const tab = perUser[i].lastIndexOf('\t');
      inspection.perUser.push({ userId: perUser[i].slice(0, tab), sku: perUser[i].slice(tab + 1), units: Number(perUser[i + 1]) });
    }
    return inspection;
  }

  async repair(saleId: string, fix: EngineRepair): Promise<{ restored: number; short: number; stale: boolean }> {
    const k = this.keys.sale(saleId);
    const restore = fix.restore.map((h) => [h.holdId, h.userId, h.sku, h.quantity, h.expiresAt, ...(h.idempotencyKey === undefined ? [] : [h.idempotencyKey])]);
    const args = { restore, stock: Object.entries(fix.stock), perUser: fix.perUser.map((u) => [u.userId, u.sku, u.delta]) };
    // An empty Lua table encodes as {}; arrays are always sent with their brackets.
    const r = (await this.run('repair', [k.meta, k.stock, k.holds, k.holdexp, k.peruser], [JSON.stringify(args), fix.epoch])) as number[];
    return { restored: r[0], short: r[1], stale: r[2] === 1 };
  }

  async snapshot(saleId: string, buyersFrom: number, admittedFrom = 0): Promise<SaleSnapshot> {
    const k = this.keys.sale(saleId);
    // Array.slice semantics (negative counts from the end), within what LRANGE accepts.
    const from = Math.max(-(2 ** 40), Math.min(2 ** 40, Math.trunc(buyersFrom) || 0));
    const above = Math.max(0, Math.trunc(admittedFrom) || 0);
    const r = (await this.run('snapshot', [k.meta, k.stock, k.active, k.buyers, k.flags, k.pre, k.wmlog], [from, above])) as ScriptReply[];
    const info = this.laneInfos.get(saleId);
    if (info && info.epoch !== r[1]) this.laneInfos.delete(saleId);
    else if (info) Object.assign(info, { endsAt: Number(r[3]), cancelled: r[4] === 1 });
    return {
      now: r[0] as number,
      epoch: r[1] as string,
      startsAt: Number(r[2]),
      endsAt: Number(r[3]),
      cancelled: r[4] === 1,
      watermark: r[5] as number,
      entered: r[6] as number,
      prequeued: r[7] as number,
      drawn: r[8] === 1,
      active: r[9] as number,
      remaining: record(r[10] as string[]),
      heldUnits: Number(r[11]),
      buyers: r[12] as string[],
      buyersNext: r[13] as number,
      flags: record(r[14] as string[]),
      advances: (r[15] as string[]).map((member) => {
        const [watermark, at] = member.split(':');
        return [Number(watermark), Number(at)];
      }),
      queueShards: r[16] as number,
      waiting: r[17] as number,
    };
  }

  async enterQueue(saleId: string, userId: string, opts: EnterOptions): Promise<EnterResult> {
    const lanes = await this.laneInfo(saleId);
    if (lanes.shards > 1) {
      if (lanes.cancelled) throw refusalError(Refusal.SALE_CANCELLED);
      const lane = laneOf(userId, lanes.shards);
      const l = this.keys.lane(saleId, lanes.tags[lane], lanes.epoch);
      const floor = opts.floor?.epoch === lanes.epoch ? Math.max(0, Math.trunc(opts.floor.watermark) || 0) : 0;
      const args = [userId, opts.shadowReason ?? '', lanes.shards, lane, floor, lanes.endsAt];
      const r = (await this.run('enterLane', [l.counters, l.places, l.shadow], args)) as number[];
      return { place: r[0], epoch: lanes.epoch, fresh: r[1] === 1, shadow: r[2] === 1 };
    }
    const k = this.keys.sale(saleId);
    const r = (await this.run('enterQueue', [k.meta, k.places, k.shadow, k.pre, k.flags], [userId, opts.draw, opts.shadowReason ?? ''])) as ScriptReply[];
    return { place: r[0] as number, epoch: r[1] as string, fresh: r[2] === 1, shadow: r[3] === 1 };
  }

  async placeOf(saleId: string, userId: string): Promise<number | null> {
    const lanes = await this.laneInfo(saleId);
    if (lanes.shards > 1) {
      const l = this.keys.lane(saleId, lanes.tags[laneOf(userId, lanes.shards)], lanes.epoch);
      const [placed, shadow] = await Promise.all([this.client.hget(l.places, userId), this.client.hget(l.shadow, userId)]);
      const place = placed ?? shadow;
      return place === null ? null : Number(place);
    }
    const k = this.keys.sale(saleId);
    return (await this.run('placeOf', [k.meta, k.places, k.pre, k.shadow], [userId])) as number | null;
  }

  async admit(saleId: string): Promise<AdmitResult> {
    const k = this.keys.sale(saleId);
    const lanes = await this.laneInfo(saleId);
    let counters = '';
    if (lanes.shards > 1) {
      // Read just before the step: lanes only grow, so the step may count a few late entrants
      // too few (they wait for the next one), never one too many.
      const read = await Promise.all(lanes.tags.map((tag) => this.client.hgetall(this.keys.lane(saleId, tag, lanes.epoch).counters)));
      const flags: Record<string, number> = {};
      let entered = 0;
      for (const lane of read) {
        entered += Number(lane.count ?? 0);
        for (const [field, n] of Object.entries(lane)) if (field.startsWith('flag:')) flags[field.slice(5)] = (flags[field.slice(5)] ?? 0) + Number(n);
      }
      counters = JSON.stringify({ epoch: lanes.epoch, seqs: read.map((lane) => Number(lane.seq ?? 0)), entered, flags });
    }
    const r = (await this.run('admit', [k.meta, k.stock, k.active, k.wmlog, k.pre, k.flags], [counters])) as number[];
    if (r[2] === 1) this.laneInfos.delete(saleId);
    return { watermark: r[0], admitted: r[1] };
  }

  async reserve(saleId: string, req: ReserveRequest): Promise<ReserveResult> {
    const k = this.keys.sale(saleId);
    const r = (await this.run(
      'reserve',
      [k.meta, k.items, k.stock, k.holds, k.holdexp, k.peruser, k.idem, k.active, k.wmlog, k.buyers],
      [req.userId, req.place, req.sku, req.quantity, req.idempotencyKey, req.fingerprint, req.holdId],
    )) as ScriptReply[];
    if (r[0] === 2) return { kind: 'replay', holdId: r[1] as string };
    const hold: EngineHold = {
      holdId: req.holdId,
      userId: req.userId,
      sku: req.sku,
      quantity: req.quantity,
      expiresAt: Number(r[1]),
      idempotencyKey: req.idempotencyKey,
    };
    return { kind: 'held', hold, remaining: Number(r[2]) };
  }

  async confirmHold(saleId: string, holdId: string): Promise<boolean> {
    const k = this.keys.sale(saleId);
    return (await this.run('confirmHold', [k.holds, k.holdexp, k.meta], [holdId])) === 1;
  }

  async releaseHold(saleId: string, holdId: string, forget?: { userId: string; idempotencyKey: string }): Promise<boolean> {
    const k = this.keys.sale(saleId);
    // The field reserve-10.lua writes for a key: user TAB key.
    const idemField = forget ? `${forget.userId}\t${forget.idempotencyKey}` : '';
    return (await this.run('releaseHold', [k.holds, k.holdexp, k.stock, k.peruser, k.meta, k.idem], [holdId, idemField])) === 1;
  }

  async getHold(saleId: string, holdId: string): Promise<EngineHold | null> {
    const raw = await this.client.hget(this.keys.sale(saleId).holds, holdId);
    return raw === null ? null : decodeHold(holdId, raw);
  }

  async expiredHolds(saleId: string, before: number, limit: number): Promise<EngineHold[]> {
    // Array.slice(0, limit) semantics: fractions truncate, a negative limit drops from the end.
    const n = Math.trunc(limit) || 0;
    if (n === 0) return [];
    const k = this.keys.sale(saleId);
    const flat = (await this.run('expiredHolds', [k.holdexp, k.holds], [score(before), n > 0 && n !== Infinity ? n : -1])) as string[];
    const holds: EngineHold[] = [];
    for (let i = 0; i < flat.length; i += 2) holds.push(decodeHold(flat[i], flat[i + 1]));
    return n < 0 ? holds.slice(0, n) : holds;
  }

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.run('acquireLease', [this.keys.lease(name)], [owner, ttlMs])) === 1;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.run('releaseLease', [this.keys.lease(name)], [owner]);
  }

  async useOnce(token: string, ttlMs: number): Promise<boolean> {
    const key = this.keys.once(token);
    // A token used for no time at all is never remembered.
    if (!(ttlMs > 0)) return (await this.client.exists(key)) === 0;
    return (await this.client.set(key, '1', 'PX', Math.ceil(ttlMs), 'NX')) === 'OK';
  }

  /** The sale's lane settings (one read of its meta hash, then kept; see `laneInfos`). */
  private async laneInfo(saleId: string): Promise<LaneInfo> {
    const known = this.laneInfos.get(saleId);
    if (known) return known;
    const [shards, tags, epoch, endsAt, cancelled] = await this.client.hmget(this.keys.sale(saleId).meta, 'shards', 'lanes', 'epoch', 'endsAt', 'cancelled');
    if (epoch === null) throw refusalError(Refusal.SALE_NOT_FOUND);
    const info: LaneInfo = { shards: Number(shards ?? 1), tags: tags ? tags.split(',') : [], epoch, endsAt: Number(endsAt), cancelled: cancelled === '1' };
    if (info.shards > 1 && info.tags.length !== info.shards) throw new Error(`sale ${saleId}: ${info.shards} queue lanes but ${info.tags.length} lane tags`);
    if (this.laneInfos.size >= 10_000) this.laneInfos.clear();
    this.laneInfos.set(saleId, info);
    return info;
  }

  /**
   * Hash tags for a sale's lanes. On a Cluster, lane k goes to the k-th master after the one that
   * holds the sale's own slot (round the masters, in address order), by trying tags `q<k>`,
   * `q<k>.1`, … until one hashes to a slot it serves; so S lanes on M masters load them evenly.
   * On one Redis, or if the cluster's map is not known, the tags are `q<k>`.
   */
  private laneTags(saleId: string, shards: number): string[] {
    if (shards <= 1) return [];
    const tags = Array.from({ length: shards }, (_, k) => `q${k}`);
    if (!(this.client instanceof Cluster)) return tags;
    const slots = this.client.slots;
    const masterOf = (key: string) => slots[keySlot(key)]?.[0];
    const masters = [...new Set(slots.map((nodes) => nodes?.[0]).filter((node): node is string => !!node))].sort();
    const home = masters.indexOf(masterOf(this.keys.sale(saleId).meta) ?? '');
    if (masters.length < 2 || home < 0) return tags;
    return tags.map((tag, k) => {
      const want = masters[(home + 1 + k) % masters.length];
      for (let j = 0; j < 2000; j++) {
        const candidate = j === 0 ? tag : `${tag}.${j}`;
        if (masterOf(this.keys.lane(saleId, candidate, '').counters) === want) return candidate;
      }
      return tag;
    });
  }

  /** Runs a script; a negative integer answer is a refusal and is thrown as one. */
  private async run(name: ScriptName, keys: string[], args: Array<string | number>): Promise<ScriptReply> {
    if (keys.length !== SCRIPT_KEYS[name]) throw new Error(`engine script ${name} takes ${SCRIPT_KEYS[name]} keys, given ${keys.length}`);
    const reply = await this.runScript(name, keys, args);
    if (typeof reply === 'number' && reply < 0) throw refusalError(reply);
    return reply;
  }
}

/** A score bound for ZRANGEBYSCORE (Redis spells infinity `inf`). */
const score = (n: number) => (n === Infinity ? '+inf' : n === -Infinity ? '-inf' : String(n));

const record = (flat: string[]) => {
  const out: Record<string, number> = {};
  for (let i = 0; i < flat.length; i += 2) out[flat[i]] = Number(flat[i + 1]);
  return out;
};

/** Holds are JSON [userId, sku, quantity, expiresAt, idempotencyKey?], the shape `lua/includes/holds.lua` writes. */
const encodeHold = (h: EngineHold) =>
  JSON.stringify([h.userId, h.sku, String(h.quantity), String(h.expiresAt), ...(h.idempotencyKey === undefined ? [] : [h.idempotencyKey])]);

function decodeHold(holdId: string, raw: string): EngineHold {
  const [userId, sku, quantity, expiresAt, idempotencyKey] = JSON.parse(raw) as string[];
  const hold: EngineHold = { holdId, userId, sku, quantity: Number(quantity), expiresAt: Number(expiresAt) };
  if (idempotencyKey !== undefined) hold.idempotencyKey = idempotencyKey;
  return hold;
}

/** The sale's settings as meta-hash fields (flat field/value list). */
function saleFields(sale: EngineSale): string[] {
  return [
    'startsAt',
    String(sale.startsAt),
    'endsAt',
    String(sale.endsAt),
    'cancelled',
    sale.cancelled ? '1' : '0',
    'mode',
    sale.mode,
    'rate',
    String(sale.admissionRatePerSec),
    'admittedTtl',
    String(sale.admittedTtlSec),
    'maxActive',
    String(sale.maxActive),
    'reservationTtl',
    String(sale.reservationTtlSec),
  ];
}

/** The shared first state (engine/initial-state.ts), flat for `loadSale-7.lua`, which writes it (and the clock) atomically. */
function flatState(load: SaleLoad, epoch: string, laneTags: string[]) {
  const { sale } = load;
  const { items, stock, holds, perUser, buyers, held } = initialState(load);
  const flat = <V>(m: Map<string, V>, value: (v: V) => string) => [...m].flatMap(([k, v]) => [k, value(v)]);
  // Lanes are written once, here: places already given depend on them (updateSale leaves them).
  const lanes = laneTags.length ? ['shards', String(laneTags.length), 'lanes', laneTags.join(','), 'entered', '0'] : [];
  return {
    meta: [...saleFields(sale), ...lanes, 'epoch', epoch, 'seq', '0', 'watermark', '0', 'carry', '0', 'drawn', '0', 'held', String(held)],
    items: flat(items, (i) => `${i.quantity}|${i.perUserLimit}|${i.maxPerOrder}`),
    stock: flat(stock, String),
    holds: flat(holds, encodeHold),
    holdexp: [...holds.values()].flatMap((h) => [String(h.expiresAt), h.holdId]),
    peruser: flat(perUser, String),
    buyers,
  };
}
