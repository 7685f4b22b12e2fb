/**
 * The event-stream hub keeps exactly the streams that are open: one gone before it registered
 * never registers, one that leaves is out of every list (the pending heap too) at once, a ticket
 * holds one stream (the newest), an address holds a bounded number, and pre-queue shoppers who
 * opened their stream before the draw hear `admitted` like everybody else.
 */
import http from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { EngineClock } from '../../src/engine/engine-clock.js';
import { SaleMonitor } from '../../src/queue/sale-monitor.js';
import { SseHub } from '../../src/queue/sse-hub.js';
import { engineSale, freshLoad } from '../support/sales.js';
import { sseReader } from '../support/sse.js';
import { createSale, describeStacks, enter, openStack, userToken, type Stack } from '../support/stack.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Client {
  events: Array<{ event: string; data: any }>;
  status: number;
  req: http.ClientRequest;
  ended: Promise<void>;
}

function open(port: number, path: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = { events: [] as Client['events'] } as Client;
    let endedResolve!: () => void;
    c.ended = new Promise((r) => {
      endedResolve = r;
    });
    c.req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      c.status = res.statusCode!;
      res.setEncoding('utf8');
      const read = sseReader((e) => c.events.push(e));
      res.on('data', (chunk: string) => {
        read(chunk);
        resolve(c);
      });
      res.on('end', () => {
        resolve(c);
        endedResolve();
      });
      res.on('close', () => endedResolve());
    });
    c.req.on('error', reject);
  });
}

const until = async (check: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await sleep(10);
  return check();
};

it('a client gone before its stream registers is never registered; one that leaves is out of the pending heap at once', async () => {
  const engine = new MemoryEngine();
  const sale = engineSale();
  await engine.loadSale(freshLoad(sale));
  const monitor = new SaleMonitor(engine, new EngineClock(engine));
  await monitor.watch(sale.id);
  const hub = new SseHub(monitor);
  const responses: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(':\n\n');
    responses.push(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    // Two clients connect; the first hangs up before the route gets to add() it.
    const gone = http.get({ host: '127.0.0.1', port, agent: false }, () => {});
    gone.on('error', () => {});
    const staying = http.get({ host: '127.0.0.1', port, agent: false }, () => {});
    staying.on('error', () => {});
    await until(() => responses.length === 2);
    gone.destroy();
    await until(() => responses[0].destroyed);
    hub.add({ saleId: sale.id, userId: 'gone', place: 5, shadow: false, admitted: false, ip: '127.0.0.1', res: responses[0] });
    hub.add({ saleId: sale.id, userId: 'staying', place: 7, shadow: false, admitted: false, ip: '127.0.0.1', res: responses[1] });
    expect(hub.stats()).toEqual({ streams: 1, sales: 1, pending: 1, undrawn: 0, addresses: 1 });

    // The one waiting in the heap leaves: out of the heap now, not when the watermark reaches it.
    staying.destroy();
    expect(await until(() => hub.stats().streams === 0)).toBe(true);
    expect(hub.stats()).toEqual({ streams: 0, sales: 0, pending: 0, undrawn: 0, addresses: 0 });
  } finally {
    hub.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

describeStacks('event streams per ticket and per address', (kind) => {
  let stack: Stack | null;
  let port: number;
  beforeAll(async () => {
    stack = await openStack(kind, { env: { STAMPEDE_STREAMS_PER_ADDRESS: '3' } });
    if (!stack) return;
    await stack.app.listen({ port: 0, host: '127.0.0.1' });
    port = (stack.app.server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('twenty streams of one ticket in a second leave one open: each newer one replaces the older', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, { queue: { admission_rate_per_sec: 1, max_active: 1 } });
    const ticket = await enter(s, sale.id, await userToken(s));
    const path = `/api/flash-sales/${sale.id}/events?ticket=${encodeURIComponent(ticket.queue_ticket)}`;
    const clients: Client[] = [];
    for (let i = 0; i < 20; i++) clients.push(await open(port, path));
    expect(clients.every((c) => c.status === 200)).toBe(true);
    await Promise.all(clients.slice(0, -1).map((c) => c.ended));
    expect(s.runtime.sse.stats().streams).toBe(1);
    for (const c of clients.slice(0, -1)) expect(c.events.at(-1)?.event).toBe('replaced');
    clients.at(-1)!.req.destroy();
    expect(await until(() => s.runtime.sse.stats().streams === 0)).toBe(true);
    expect(s.runtime.sse.stats()).toEqual({ streams: 0, sales: 0, pending: 0, undrawn: 0, addresses: 0 });
  });

  it('an address holds at most its cap of streams; the next is 429 with Retry-After, and one frees a slot', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const sale = await createSale(s, { queue: { admission_rate_per_sec: 1, max_active: 1 } });
    const tickets = await Promise.all(Array.from({ length: 4 }, async () => enter(s, sale.id, await userToken(s))));
    const path = (i: number) => `/api/flash-sales/${sale.id}/events?ticket=${encodeURIComponent(tickets[i].queue_ticket)}`;
    const held = [await open(port, path(0)), await open(port, path(1)), await open(port, path(2))];
    expect(held.map((c) => c.status)).toEqual([200, 200, 200]);
    const refused = await s.app.inject({ url: path(3) });
    // inject comes from 127.0.0.1 as well: the same address.
    expect([refused.statusCode, refused.json().error.code, refused.headers['retry-after']]).toEqual([429, 'RATE_LIMITED', '5']);
    // The same ticket again from the same address replaces its own stream: no new slot needed.
    const again = await open(port, path(0));
    expect(again.status).toBe(200);
    held[1].req.destroy();
    expect(await until(() => s.runtime.sse.stats().streams === 2)).toBe(true);
    const fourth = await open(port, path(3));
    expect(fourth.status).toBe(200);
    for (const c of [...held, again, fourth]) c.req.destroy();
    expect(await until(() => s.runtime.sse.stats().streams === 0)).toBe(true);
    expect(s.runtime.sse.stats()).toEqual({ streams: 0, sales: 0, pending: 0, undrawn: 0, addresses: 0 });
  });

  it('lottery: streams opened before the draw hear their position and `admitted` after it', async (ctx) => {
    if (!stack) return ctx.skip();
    const s = stack;
    const startsAt = Date.now() + 1500;
    const sale = await createSale(s, {
      starts_at: new Date(startsAt).toISOString(),
      queue: { mode: 'randomized_prequeue', admission_rate_per_sec: 100_000, admitted_ttl_sec: 600, max_active: 1_000_000 },
    });
    const users = await Promise.all([0, 1, 2].map(() => userToken(s)));
    const tickets = await Promise.all(users.map((u) => enter(s, sale.id, u)));
    expect(tickets.map((t) => t.place)).toEqual([null, null, null]);
    const clients = await Promise.all(tickets.map((t) => open(port, `/api/flash-sales/${sale.id}/events?ticket=${encodeURIComponent(t.queue_ticket)}`)));
    expect(clients.map((c) => c.events[0]?.event)).toEqual(['position', 'position', 'position']);
    expect(s.runtime.sse.stats().undrawn).toBe(3);
    // The background controller opens the sale, draws, and admits; no client polls.
    const heard = await until(() => clients.every((c) => c.events.some((e) => e.event === 'admitted')), 15_000);
    expect(heard, JSON.stringify(clients.map((c) => c.events.map((e) => e.event)))).toBe(true);
    const places = clients.map((c) => c.events.find((e) => e.event === 'admitted')!.data.place).sort();
    expect(places).toEqual([1, 2, 3]);
    expect(s.runtime.sse.stats().undrawn).toBe(0);
    for (const c of clients) c.req.destroy();
    expect(await until(() => s.runtime.sse.stats().streams === 0)).toBe(true);
  }, 30_000);
});
