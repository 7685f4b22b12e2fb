/**
 * Moves events from the ledger's outbox to a durable stream (NATS JetStream), on the leader.
 * Each event is published with its outbox id as the message id, so JetStream drops the
 * duplicate when a relay dies between publishing and marking: at-least-once from the outbox,
 * exactly-once in the stream within its duplicate window.
 *
 * A NATS outage of any length ends by itself: the client keeps reconnecting, each publish has a
 * deadline, and a failed pass drops the connection so the next pass starts from a fresh one
 * (a client that gave up reconnecting would otherwise fail every pass for ever).
 */
import { connect, type JetStreamClient, type NatsConnection } from 'nats';
import type { OutboxRepository } from './repositories.js';

export const STREAM = 'STAMPEDE';
export const SUBJECT_PREFIX = 'stampede';

export class OutboxRelay {
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;

  constructor(
    private readonly ledger: OutboxRepository,
    private readonly opts: {
      url: string;
      stream?: string;
      subjectPrefix?: string;
      /** Reconnect attempts before the client gives up (-1: never). Tests lower it. */
      reconnectAttempts?: number;
      /** Deadline of one publish (ms). */
      publishTimeoutMs?: number;
    },
  ) {}

  private get stream() {
    return this.opts.stream ?? STREAM;
  }
  private get prefix() {
    return this.opts.subjectPrefix ?? SUBJECT_PREFIX;
  }

  /** Connects and makes sure the stream exists (idempotent). */
  async open(): Promise<void> {
    if (this.js) return;
    this.nc = await connect({
      servers: this.opts.url,
      timeout: 3000,
      maxReconnectAttempts: this.opts.reconnectAttempts ?? -1,
      reconnectTimeWait: 1000,
    });
    const jsm = await this.nc.jetstreamManager();
    const subjects = [`${this.prefix}.>`];
    try {
      await jsm.streams.info(this.stream);
    } catch {
      await jsm.streams.add({ name: this.stream, subjects, duplicate_window: 2 * 60 * 1_000_000_000 });
    }
    this.js = this.nc.jetstream({ timeout: this.opts.publishTimeoutMs ?? 2000 });
  }

  /** Publishes up to `limit` pending events in order; returns how many went out. */
  async relay(limit = 500): Promise<number> {
    if (this.nc?.isClosed()) this.forget();
    await this.open();
    const events = await this.ledger.pendingEvents(limit);
    const done: number[] = [];
    try {
      for (const e of events) {
        await this.js!.publish(`${this.prefix}.${e.topic}`, JSON.stringify({ id: e.id, topic: e.topic, at: e.createdAt.toISOString(), ...e.payload }), {
          msgID: `outbox-${e.id}`,
        });
        done.push(e.id);
      }
    } catch (err) {
      // The next pass reconnects from scratch; what was published is marked below.
      await this.drop();
      throw err;
    } finally {
      if (done.length) await this.ledger.markPublished(done);
    }
    return done.length;
  }

  /** Closes gracefully (shutdown): what is buffered is flushed, within 2 s. */
  async close(): Promise<void> {
    const nc = this.nc;
    this.forget();
    if (!nc || nc.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)));
    await Promise.race([nc.drain().catch(() => {}), late]);
    clearTimeout(timer);
    if (!nc.isClosed()) await nc.close().catch(() => {});
  }

  /** Drops a broken connection without waiting on it: the next pass opens a fresh one. */
  private async drop(): Promise<void> {
    const nc = this.nc;
    this.forget();
    if (nc && !nc.isClosed()) await nc.close().catch(() => {});
  }

  private forget(): void {
    this.nc = null;
    this.js = null;
  }
}
