/**
 * Moves events from the ledger's outbox to a durable stream (NATS JetStream), on the leader.
 * Each event is published with its outbox id as the message id, so JetStream drops the
 * duplicate when a relay dies between publishing and marking: at-least-once from the outbox,
 * exactly-once in the stream within its duplicate window.
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
    private readonly opts: { url: string; stream?: string; subjectPrefix?: string },
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
    this.nc = await connect({ servers: this.opts.url, timeout: 3000 });
    const jsm = await this.nc.jetstreamManager();
    const subjects = [`${this.prefix}.>`];
    try {
      await jsm.streams.info(this.stream);
    } catch {
      await jsm.streams.add({ name: this.stream, subjects, duplicate_window: 2 * 60 * 1_000_000_000 });
    }
    this.js = this.nc.jetstream();
  }

  /** Publishes up to `limit` pending events in order; returns how many went out. */
  async relay(limit = 500): Promise<number> {
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
    } finally {
      if (done.length) await this.ledger.markPublished(done);
    }
    return done.length;
  }

  async close(): Promise<void> {
    await this.nc?.drain().catch(() => {});
    this.nc = null;
    this.js = null;
  }
}
