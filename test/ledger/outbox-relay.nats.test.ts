/** The outbox reaches NATS JetStream once per event, in order, even when relayed twice. */
import { randomBytes } from 'node:crypto';
import { connect } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openLedger } from '../../src/ledger/open-ledger.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { OutboxRelay } from '../../src/ledger/outbox-relay.js';

const NATS = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
let ledger: Ledger;
let reachable = true;

beforeAll(async () => {
  ledger = await openLedger({});
  try {
    await (await connect({ servers: NATS, timeout: 2000 })).close();
  } catch (err) {
    if (process.env.CI) throw new Error(`NATS is required in CI but ${NATS} is unreachable: ${(err as Error).message}`);
    console.warn(`\n!!! SKIPPING the outbox relay test: NATS at ${NATS} is unreachable\n`);
    reachable = false;
  }
});
afterAll(async () => {
  await ledger.close();
});

it('publishes every outbox event once, in order, and marks it', async (ctx) => {
  if (!reachable) return ctx.skip();
  const tag = randomBytes(4).toString('hex');
  const stream = `STAMPEDE_TEST_${tag}`;
  const relay = new OutboxRelay(ledger, { url: NATS, stream, subjectPrefix: `stampede-test-${tag}` });
  for (let i = 0; i < 5; i++) await ledger.appendEvent('order.confirmed', { n: i });
  expect(await relay.relay()).toBe(5);
  expect(await relay.relay()).toBe(0);
  expect(await ledger.pendingEvents(10)).toEqual([]);

  const nc = await connect({ servers: NATS });
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(stream);
  expect(info.state.messages).toBe(5);
  const first = await jsm.streams.getMessage(stream, { seq: 1 });
  expect(JSON.parse(new TextDecoder().decode(first.data))).toMatchObject({ topic: 'order.confirmed', n: 0 });
  await jsm.streams.delete(stream);
  await nc.close();
  await relay.close();
});
