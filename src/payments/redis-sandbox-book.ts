/**
 * The sandbox's book in the engine's Redis: every node and worker process of a deployment talks
 * to one card network, as they would to Stripe, so a card pre-authorised through one process is
 * captured through another. Each step is a Lua script on the payment's own keys, which share one
 * hash tag (its reference), so it is atomic across processes and works on Redis Cluster:
 *
 *   <prefix>:sandbox:{<ref>}           hash: the payment (kind, status, amounts, counters, `m:<name>` metadata)
 *   <prefix>:sandbox:{<ref>}:answers   hash: idempotency key → the answer given under it
 *   <prefix>:sandbox:key:<key>         string "<fingerprint hash> <ref>": the request a key first came with, and its payment
 *
 * A step first binds its key (`bind-1.lua`, SET-if-absent): a key already bound to another
 * request is refused, and a new authorisation whose key was bound by a concurrent or earlier
 * call takes that call's reference — then runs on that payment's slot, where the answer under
 * the key is checked and written in the same script as the change it answers. Every record
 * expires `ttlMs` after its last change.
 *
 * Redis not answering is the network not answering: `GatewayUnavailableError`, retry with the
 * same key.
 */
import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { defineScripts, loadScripts, luaRefusals, type ScriptReply, type ScriptRunner } from '../engine/redis/script-loader.js';
import { GatewayUnavailableError, IdempotencyKeyReusedError, type GatewayOutcome, type RefusalReason } from './gateway.js';
import {
  openingOutcome,
  openingStatus,
  overCapture,
  type SandboxAuthorization,
  type SandboxBook,
  type SandboxCharge,
  type SandboxRecord,
  type SandboxStep,
} from './sandbox-book.js';

/** The book's scripts (`../engine/redis/lua/sandbox/<name>-<keys>.lua`) and the keys each takes. */
const SCRIPT_KEYS = { bind: 1, open: 2, capture: 2, void: 2, refund: 2 } as const;
type ScriptName = keyof typeof SCRIPT_KEYS;
/** What a script answers instead of a recorded answer when the caller is at fault. */
const REFUSAL = { OVER_CAPTURE: -1 } as const;
const scripts = loadScripts(new URL('../engine/redis/lua/sandbox/', import.meta.url), SCRIPT_KEYS, { 'includes/refusals': luaRefusals(REFUSAL) });

/** A week and a day: an authorisation lapses after 7 days, and its record still says so for a day. */
export const SANDBOX_RECORD_TTL_MS = 8 * 24 * 3600_000;

/** The one place the book's keys are built. */
export class SandboxKeys {
  constructor(readonly prefix: string) {}

  /** The payment's hash; its reference is the hash tag, so its answers share its slot. */
  payment(ref: string) {
    return `${this.prefix}:sandbox:{${ref}}`;
  }

  answers(ref: string) {
    return `${this.payment(ref)}:answers`;
  }

  /** The reference a payment's hash key names. */
  refOf(paymentKey: string) {
    return paymentKey.slice(`${this.prefix}:sandbox:{`.length, -1);
  }

  /** An idempotency key's binding (single-key: any slot). */
  key(idempotencyKey: string) {
    return `${this.prefix}:sandbox:key:${idempotencyKey}`;
  }

  /** A SCAN pattern matching every payment's hash and nothing else (answers end in `:answers`, bindings have no `{`). */
  paymentPattern() {
    return `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}:sandbox:{*}`;
  }
}

export interface RedisSandboxBookOptions {
  /** The deployment's key prefix (`config.redisPrefix`). */
  prefix: string;
  /** How long a record lives after its last change (default {@link SANDBOX_RECORD_TTL_MS}). */
  ttlMs?: number;
  /** Listing the book stops with an error past this many payments (default 100,000): it is a test and rehearsal helper, not a query. */
  maxListed?: number;
}

export class RedisSandboxBook implements SandboxBook {
  readonly shared = true;
  readonly keys: SandboxKeys;
  private readonly ttl: string;
  private readonly maxListed: number;
  private readonly run: ScriptRunner<ScriptName>;

  /** On a client of the engine's (connected); the book never closes it. */
  constructor(
    readonly client: Redis | Cluster,
    opts: RedisSandboxBookOptions,
  ) {
    this.keys = new SandboxKeys(opts.prefix);
    this.ttl = String(Math.ceil(opts.ttlMs ?? SANDBOX_RECORD_TTL_MS));
    this.maxListed = opts.maxListed ?? 100_000;
    this.run = defineScripts(client, scripts, 'sandbox_');
  }

  async apply(key: string, fingerprint: string, step: SandboxStep): Promise<GatewayOutcome> {
    return unavailableOnError(async () => {
      const fp = createHash('sha1').update(fingerprint).digest('hex');
      const bound = (await this.run('bind', [this.keys.key(key)], [fp, step.ref, this.ttl])) as string | null;
      let ref = step.ref;
      if (bound !== null) {
        const space = bound.indexOf(' ');
        if (bound.slice(0, space) !== fp) throw new IdempotencyKeyReusedError(key);
        // The same request again: for a new payment, the one its first call made.
        ref = bound.slice(space + 1);
      }
      const reply = await this.perform({ ...step, ref }, key);
      if (reply === REFUSAL.OVER_CAPTURE) {
        // Nothing was done: the key goes back unused, as if the call had never been made.
        await this.client.del(this.keys.key(key));
        throw overCapture((step as { amountCents: number }).amountCents, Number(await this.client.hget(this.keys.payment(ref), 'amount')));
      }
      return decodeAnswer(reply as string);
    });
  }

  async payment(ref: string, now: number): Promise<SandboxRecord | null> {
    return unavailableOnError(async () => decodeRecord(ref, await this.client.hgetall(this.keys.payment(ref)), now));
  }

  async lookup(key: string): Promise<GatewayOutcome | null> {
    return unavailableOnError(async () => {
      const bound = await this.client.get(this.keys.key(key));
      if (bound === null) return null;
      const reply = await this.client.hget(this.keys.answers(bound.slice(bound.indexOf(' ') + 1)), key);
      return reply === null ? null : decodeAnswer(reply);
    });
  }

  async authorizations(now: number): Promise<SandboxAuthorization[]> {
    return (await this.list(now)).flatMap((r) => (r.kind === 'authorization' ? [r.record] : []));
  }

  async charges(): Promise<SandboxCharge[]> {
    return (await this.list(Date.now())).flatMap((r) => (r.kind === 'charge' ? [r.record] : []));
  }

  private perform(step: SandboxStep, key: string): Promise<ScriptReply> {
    const keys = [this.keys.payment(step.ref), this.keys.answers(step.ref)];
    const head = [key, this.ttl, step.ref];
    switch (step.op) {
      case 'authorize':
      case 'charge':
        return this.run('open', keys, [
          ...head,
          step.op === 'authorize' ? 'authorization' : 'charge',
          openingStatus(step),
          String(step.amountCents),
          step.currency,
          step.behaviour,
          String(step.createdAt),
          String(step.expiresAt),
          encodeAnswer(openingOutcome(step)),
          ...metadataFields(step.metadata),
        ]);
      case 'capture':
        return this.run('capture', keys, [...head, String(step.amountCents), String(step.now), ...metadataFields(step.metadata)]);
      case 'void':
        return this.run('void', keys, [...head, String(step.now)]);
      case 'refund':
        return this.run('refund', keys, [...head, String(step.amountCents), step.refundRef]);
    }
  }

  /** Every payment under the prefix, oldest first: a SCAN of each master (bounded by `maxListed`), then one HGETALL a payment. */
  private async list(now: number): Promise<SandboxRecord[]> {
    const nodes: Redis[] = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    const found: Array<{ seq: string; record: SandboxRecord }> = [];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', this.keys.paymentPattern(), 'COUNT', 1000);
        cursor = next;
        if (found.length + keys.length > this.maxListed) throw new Error(`The sandbox book holds more than ${this.maxListed} payments: too many to list`);
        const hashes = await Promise.all(keys.map((k) => this.client.hgetall(k)));
        keys.forEach((k, i) => {
          const record = decodeRecord(this.keys.refOf(k), hashes[i], now);
          if (record) found.push({ seq: hashes[i].seq, record });
        });
      } while (cursor !== '0');
    }
    // The microsecond on Redis's clock each was made at; ties (another Cluster node's clock) by reference.
    return found
      .sort((a, b) => a.seq.length - b.seq.length || (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : a.record.record.ref < b.record.record.ref ? -1 : 1))
      .map((f) => f.record);
  }
}

/** Metadata as the payment hash keeps it: a field `m:<name>` per entry. */
const metadataFields = (metadata: Record<string, string>) => Object.entries(metadata).flatMap(([name, value]) => [`m:${name}`, String(value)]);

/** Answers are JSON ["ok", ref, amount] or ["no", reason, message], all strings (Lua's cjson would round large numbers). */
function encodeAnswer(outcome: GatewayOutcome): string {
  return JSON.stringify(outcome.ok ? ['ok', outcome.ref, String(outcome.amountCents)] : ['no', outcome.reason, outcome.message]);
}

function decodeAnswer(reply: string): GatewayOutcome {
  const [ok, a, b] = JSON.parse(reply) as [string, string, string];
  return ok === 'ok' ? { ok: true, ref: a, amountCents: Number(b) } : { ok: false, reason: a as RefusalReason, message: b };
}

function decodeRecord(ref: string, h: Record<string, string>, now: number): SandboxRecord | null {
  if (h.kind !== 'authorization' && h.kind !== 'charge') return null;
  const metadata: Record<string, string> = {};
  for (const [field, value] of Object.entries(h)) if (field.startsWith('m:')) metadata[field.slice(2)] = value;
  const common = { ref, amountCents: Number(h.amount), currency: h.currency, refundedCents: Number(h.refunded), createdAt: Number(h.createdAt), metadata };
  if (h.kind === 'charge') return { kind: 'charge', record: { ...common, status: h.status as SandboxCharge['status'] } };
  const expiresAt = Number(h.expiresAt);
  // A lapse is noticed when someone looks, as the scripts notice it.
  const status = h.status === 'authorized' && now >= expiresAt ? 'expired' : (h.status as SandboxAuthorization['status']);
  return {
    kind: 'authorization',
    record: {
      ...common,
      capturedCents: Number(h.captured),
      status,
      captures: Number(h.captures),
      voids: Number(h.voids),
      refunds: Number(h.refunds),
      expiresAt,
    },
  };
}

/** The network's own refusals pass; Redis failing (refused, timed out, gone) is a network that did not answer. */
async function unavailableOnError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof IdempotencyKeyReusedError || err instanceof RangeError) throw err;
    throw new GatewayUnavailableError(`The sandbox card network's book (Redis) did not answer: ${(err as Error).message}`, { cause: err });
  }
}
