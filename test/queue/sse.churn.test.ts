/**
 * No client action takes a node down or makes it log an error: hundreds of event streams open,
 * abort and replace each other at random moments while one sale sells out and another is
 * cancelled. Afterwards every stream that stayed heard how its sale ended, and the hub holds
 * nothing once the clients have gone.
 */
import http from 'node:http';
import { connect } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminHeaders, admitEveryone, createSale, describeStacks, enter, openStack, recordingLogger, userToken, type Stack } from '../support/stack.js';
import { sseReader } from '../support/sse.js';

const SHOPPERS = 150;

interface Held {
  events: string[];
  req: http.ClientRequest;
  done: Promise<void>;
}

/** Opens a stream and keeps it, collecting event names until the server ends it. */
function hold(port: number, path: string): Held {
  const held = { events: [] as string[] } as Held;
  held.done = new Promise((resolve) => {
    held.req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on(
        'data',
        sseReader((e) => held.events.push(e.event)),
      );
      res.on('end', () => resolve());
      res.on('error', () => resolve());
    });
    held.req.on('error', () => resolve());
  });
  return held;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One hostile or careless client, picked at random: aborts at every stage of a stream's life. */
async function churn(port: number, path: string): Promise<void> {
  const kind = Math.floor(Math.random() * 4);
  if (kind === 0) {
    // The request is sent and the socket torn down before any answer.
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
    await sleep(Math.random() * 5);
    socket.destroy();
    return;
  }
  // A stream opened, then aborted after a random while (kind 1), twice at once for one ticket
  // (kind 2: the newer replaces the older), or half-closed by the client (kind 3).
  const streams = kind === 2 ? [hold(port, path), hold(port, path)] : [hold(port, path)];
  await sleep(Math.random() * 150);
  for (const s of streams) {
    if (kind === 3) s.req.socket?.end();
    else s.req.destroy();
  }
}

describeStacks('event streams under churn', (kind) => {
  let stack: Stack | null;
  const log = recordingLogger();
  beforeAll(async () => {
    stack = await openStack(kind, { log: log.logger, appLogger: log.logger });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('a cancel and a sell-out amid streams opening and aborting at random: node alive, no error logged, nothing left behind', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const port = (s.app.server.address() as { port: number }).port;
    const unit = (quantity: number) => ({ items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity, per_user_limit: 1 }] });
    // At most three admitted at once: the buyers. The shoppers after them wait with a place.
    const selling = await createSale(s, { ...unit(3), queue: { admission_rate_per_sec: 100, max_active: 3 } });
    const doomed = await createSale(s, { ...unit(100), queue: { admission_rate_per_sec: 100, max_active: 3 } });

    const buyers = await Promise.all([0, 1, 2].map(() => userToken(s)));
    const buyerTickets = await Promise.all(buyers.map((b) => enter(s, selling.id, b)));
    await admitEveryone(s, selling.id);
    // The cancelled sale has reserved orders, so cancelling ends holds (and moves its stock) after it has ended the streams.
    const reservers = await Promise.all([0, 1, 2].map(() => userToken(s)));
    const doomedTickets = await Promise.all(reservers.map((b) => enter(s, doomed.id, b)));
    await admitEveryone(s, doomed.id);
    const reserved = await Promise.all(
      reservers.map((b, i) =>
        s.app.inject({
          method: 'POST',
          url: `/api/flash-sales/${doomed.id}/purchase`,
          headers: { ...b.headers, 'idempotency-key': randomUUID() },
          payload: { ticket: doomedTickets[i].queue_ticket, sku: 'phone' },
        }),
      ),
    );
    expect(reserved.map((r) => r.json().status)).toEqual(['reserved', 'reserved', 'reserved']);
    const shoppers = await Promise.all(Array.from({ length: SHOPPERS }, () => userToken(s)));
    const paths = async (saleId: string) =>
      (await Promise.all(shoppers.map((u) => enter(s, saleId, u)))).map(
        (t) => `/api/flash-sales/${saleId}/events?ticket=${encodeURIComponent(t.queue_ticket)}`,
      );
    const [sellingPaths, doomedPaths] = await Promise.all([paths(selling.id), paths(doomed.id)]);

    // A third of the shoppers keep their stream; the others churn, three rounds each.
    const kept = [
      ...sellingPaths.slice(0, 50).map((p) => ({ sale: 'selling', h: hold(port, p) })),
      ...doomedPaths.slice(0, 50).map((p) => ({ sale: 'doomed', h: hold(port, p) })),
    ];
    const churning = Promise.all(
      [...sellingPaths.slice(50), ...doomedPaths.slice(50)].map(async (p) => {
        for (let round = 0; round < 3; round++) {
          await sleep(Math.random() * 300);
          await churn(port, p);
        }
      }),
    );

    // Mid-churn: sell the last units, cancel the other sale (twice, as an impatient admin would).
    await sleep(200);
    const bought = await Promise.all(
      buyers.map((b, i) =>
        s.app.inject({
          method: 'POST',
          url: `/api/flash-sales/${selling.id}/purchase`,
          headers: { ...b.headers, 'idempotency-key': randomUUID() },
          payload: { ticket: buyerTickets[i].queue_ticket, sku: 'phone', payment_token: 'tok_visa' },
        }),
      ),
    );
    expect(bought.map((r) => r.statusCode)).toEqual([201, 201, 201]);
    const cancels = await Promise.all(
      [1, 2].map(() => s.app.inject({ method: 'POST', url: `/api/admin/flash-sales/${doomed.id}/cancel`, headers: adminHeaders })),
    );
    expect(cancels.map((r) => r.statusCode)).toEqual([200, 200]);
    await s.runtime.monitor.refresh(selling.id);
    await s.runtime.monitor.refresh(doomed.id);
    await churning;

    // Streams of the cancelled sale were ended by the server with `ended`; the sold-out ones heard it.
    await Promise.all(kept.filter((k) => k.sale === 'doomed').map((k) => k.h.done));
    for (const k of kept) {
      if (k.sale === 'doomed') expect(k.h.events.at(-1)).toBe('ended');
      else expect(k.h.events).toContain('sold_out');
    }
    // Late comers to the cancelled sale get `ended` at once and are not kept.
    const late = hold(port, doomedPaths[SHOPPERS - 1]);
    await late.done;
    expect(late.events).toEqual(['ended']);

    for (const k of kept) k.h.req.destroy();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && s.runtime.sse.stats().streams > 0) await sleep(20);
    expect(s.runtime.sse.stats()).toEqual({ streams: 0, sales: 0, pending: 0, undrawn: 0, addresses: 0 });
    expect(s.runtime.metrics.registry.getSingleMetric('stampede_sse_connections')).toBeDefined();
    expect(log.errors()).toEqual([]);
    // The node still serves.
    expect((await s.app.inject({ url: '/healthz' })).statusCode).toBe(200);
  }, 60_000);
});
