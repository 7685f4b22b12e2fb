/** The outbox reaches NATS JetStream once per event, in order, even when relayed twice. */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openLedger } from '../../src/ledger/open-ledger.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { OutboxRelay } from '../../src/ledger/outbox-relay.js';

const NATS = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
const NATS_SERVER = '/usr/sbin/nats-server';
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

/** A NATS server of the test's own (never the shared one), on a free port, with JetStream on disk. */
async function ownNats(port: number, storeDir: string): Promise<ChildProcess> {
  const proc = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      await (await connect({ servers: `nats://127.0.0.1:${port}`, timeout: 500, maxReconnectAttempts: 0 })).close();
      return proc;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  proc.kill('SIGKILL');
  throw new Error('nats-server did not start');
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });

it('after an outage longer than the client keeps reconnecting, the next pass reconnects and nothing is lost or doubled', async (ctx) => {
  if (!reachable || !existsSync(NATS_SERVER)) return ctx.skip();
  const port = await freePort();
  const store = mkdtempSync(join(tmpdir(), 'stampede-nats-'));
  let nats = await ownNats(port, store);
  // A client that gives up after one attempt: the way a long outage ends for the default client.
  const relay = new OutboxRelay(ledger, { url: `nats://127.0.0.1:${port}`, reconnectAttempts: 1, publishTimeoutMs: 1000 });
  try {
    for (let i = 0; i < 3; i++) await ledger.appendEvent('sale.opened', { n: i });
    expect(await relay.relay()).toBe(3);

    nats.kill('SIGKILL');
    await new Promise((r) => nats.on('exit', r));
    for (let i = 3; i < 6; i++) await ledger.appendEvent('sale.opened', { n: i });
    await expect(relay.relay()).rejects.toThrow();
    // Long enough for the client's one reconnect attempt to fail and the client to close.
    await new Promise((r) => setTimeout(r, 2500));
    nats = await ownNats(port, store);

    expect(await relay.relay()).toBe(3);
    expect(await ledger.pendingEvents(10)).toEqual([]);
    const nc = await connect({ servers: `nats://127.0.0.1:${port}` });
    const info = await (await nc.jetstreamManager()).streams.info('STAMPEDE');
    expect(info.state.messages).toBe(6);
    await nc.close();
  } finally {
    await relay.close();
    nats.kill('SIGKILL');
    rmSync(store, { recursive: true, force: true });
  }
}, 30_000);
