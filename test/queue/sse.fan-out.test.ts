/**
 * What a node writes to its event streams is bounded by what shoppers need, not by how often
 * the picture changes: inventory at most once a second (sold_out at once, to everyone), a
 * waiting shopper's position when it moved by 1 % (or every 10 s), and a message for many
 * streams written 1,000 streams per turn of the event loop so requests are served in between.
 * Real sockets, a real monitor over the memory engine.
 */
import http from 'node:http';
import { afterEach, expect, it } from 'vitest';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { EngineClock } from '../../src/engine/engine-clock.js';
import { SaleMonitor } from '../../src/queue/sale-monitor.js';
import { SseHub } from '../../src/queue/sse-hub.js';
import { engineSale, enterAndAdmit, freshLoad, sleep } from '../support/sales.js';
import { sseReader, type SseEvent } from '../support/sse.js';

interface Client {
  events: SseEvent[];
  req: http.ClientRequest;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server whose every request becomes a stream of the hub for `saleId`, user and place from the query. */
async function harness(
  streams: Array<{ userId: string; place: number }>,
  saleOverrides: Parameters<typeof engineSale>[0] = {},
  hubOptions: ConstructorParameters<typeof SseHub>[1] = {},
) {
  const engine = new MemoryEngine();
  const sale = engineSale(saleOverrides);
  await engine.loadSale(freshLoad(sale));
  const monitor = new SaleMonitor(engine, new EngineClock(engine));
  await monitor.watch(sale.id);
  const hub = new SseHub(monitor, hubOptions);
  const writes = { count: 0 };
  const server = http.createServer((req, res) => {
    const q = new URL(req.url!, 'http://x').searchParams;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(':\n\n');
    const write = res.write.bind(res) as (chunk: string) => boolean;
    res.write = ((chunk: string) => {
      writes.count++;
      return write(chunk);
    }) as typeof res.write;
    hub.add({ saleId: sale.id, userId: q.get('u')!, place: Number(q.get('p')), shadow: false, admitted: false, ip: '127.0.0.1', res });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    hub.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await engine.close();
  });
  const port = (server.address() as { port: number }).port;
  const clients: Client[] = [];
  for (let i = 0; i < streams.length; i += 200) {
    clients.push(
      ...(await Promise.all(
        streams.slice(i, i + 200).map(
          ({ userId, place }) =>
            new Promise<Client>((resolve, reject) => {
              const c = { events: [] } as unknown as Client;
              c.req = http.get({ host: '127.0.0.1', port, path: `/?u=${userId}&p=${place}`, agent: false }, (res) => {
                res.setEncoding('utf8');
                const read = sseReader((e) => c.events.push(e));
                res.on('data', (chunk: string) => {
                  read(chunk);
                  resolve(c);
                });
              });
              c.req.on('error', reject);
            }),
        ),
      )),
    );
  }
  cleanups.push(() => clients.forEach((c) => c.req.destroy()));
  while (hub.size < streams.length) await sleep(10);
  return { engine, sale, monitor, hub, clients, writes };
}

/** Enters a buyer, admits them and takes one unit. */
async function take(engine: MemoryEngine, saleId: string, i: number) {
  const userId = `buyer-${i}`;
  const [place] = (await enterAndAdmit(engine, saleId, [userId])).values();
  return engine.reserve(saleId, { userId, place, sku: 'phone', quantity: 1, idempotencyKey: `k${i}`, fingerprint: `f${i}`, holdId: `h${i}` });
}

it('inventory goes out at most once a second whatever the pace of sales; sold_out at once, to every stream, a slice per turn', async () => {
  const n = 1200;
  // Slices smaller than the defaults (1,000 and 10,000), so a test's worth of sockets spans turns.
  const { engine, sale, monitor, clients, writes } = await harness(
    Array.from({ length: n }, (_, i) => ({ userId: `u${i}`, place: 100_000 + i })),
    { items: [{ sku: 'phone', quantity: 25, perUserLimit: 1, maxPerOrder: 1 }] },
    { slice: 300, soldOutSlice: 1000 },
  );
  // 24 units sell over ~1.2 s, and the picture is read after each: 24 changes of inventory.
  const started = Date.now();
  for (let i = 0; i < 24; i++) {
    expect((await take(engine, sale.id, i)).kind).toBe('held');
    await monitor.refresh(sale.id);
    await sleep(50);
  }
  await sleep(1100);
  const elapsed = (Date.now() - started) / 1000;
  const inventoryPer = clients.map((c) => c.events.filter((e) => e.event === 'inventory').length);
  // Once a second, and the first change at once: at most elapsed + 1 messages; at least one.
  expect(Math.max(...inventoryPer)).toBeLessThanOrEqual(Math.ceil(elapsed) + 1);
  expect(Math.min(...inventoryPer)).toBeGreaterThanOrEqual(1);
  // The latest picture wins: everyone's last inventory message says 1 left.
  for (const c of clients) expect(c.events.filter((e) => e.event === 'inventory').at(-1)!.data.items).toEqual([{ sku: 'phone', remaining: 1 }]);

  // The last unit: sold_out is written to the first 1,000 streams in this turn, the rest in the next.
  // (Inventory above went 300 per turn: had its fan-out still been queued, sold_out would have replaced it.)
  expect((await take(engine, sale.id, 99)).kind).toBe('held');
  const before = writes.count;
  await monitor.refresh(sale.id);
  expect(writes.count - before).toBe(1000);
  await new Promise((r) => setImmediate(r));
  expect(writes.count - before).toBe(n);
  const deadline = Date.now() + 10_000;
  while (clients.some((c) => !c.events.some((e) => e.event === 'sold_out')) && Date.now() < deadline) await sleep(20);
  expect(clients.filter((c) => c.events.some((e) => e.event === 'sold_out')).length).toBe(n);
  // Nothing that contradicts it comes after: the inventory (and position) timers went with it.
  await sleep(1500);
  for (const c of clients) expect(c.events.at(-1)!.event).toBe('sold_out');
});

it('a node slower than the pictures it is sent keeps one fan-out of a kind waiting, the newest: no backlog', async () => {
  const n = 1200;
  const { sale, hub, clients } = await harness(
    Array.from({ length: n }, (_, i) => ({ userId: `u${i}`, place: 100_000 + i })),
    {},
    { slice: 100 },
  );
  // Reaching inside: fifty inventory pictures in one turn, as a node whose turns are long would queue them.
  const internals = hub as unknown as { fan(s: unknown, kind: string, msg: string): void; sales: Map<string, { fanOut: unknown[] }> };
  const streams = internals.sales.get(sale.id)!;
  for (let i = 1; i <= 50; i++) internals.fan(streams, 'inventory', `event: inventory\ndata: {"n":${i}}\n\n`);
  expect(streams.fanOut.length).toBe(2);
  const deadline = Date.now() + 10_000;
  while (clients.some((c) => c.events.filter((e) => e.event === 'inventory').length < 2) && Date.now() < deadline) await sleep(20);
  await sleep(200);
  // Every stream heard the first (being written when the rest came) and the last, and nothing between.
  for (const c of clients) expect(c.events.filter((e) => e.event === 'inventory').map((e) => e.data.n)).toEqual([1, 50]);
});

it('a waiting stream hears its position when it moved by 1 % or more: every step near the front, none for a small move at the back', async () => {
  const { engine, sale, monitor, clients } = await harness(
    [
      { userId: 'near', place: 40 },
      { userId: 'far', place: 50_000 },
    ],
    { admissionRatePerSec: 1_000_000 },
  );
  // Three steps of 10 places, a little over a second apart (positions go out once a second).
  for (let step = 0; step < 3; step++) {
    for (let i = 0; i < 10; i++) await engine.enterQueue(sale.id, `pad-${step}-${i}`, { draw: 0 });
    while ((await monitor.refresh(sale.id))!.snapshot.watermark < 10 * (step + 1)) await engine.admit(sale.id);
    await sleep(1150);
  }
  const positions = (c: Client) => c.events.filter((e) => e.event === 'position').map((e) => e.data.position);
  const [near, far] = clients;
  // Near: 40 → 30 → 20 → 10 ahead, each a move of a quarter or more.
  expect(positions(near).length).toBeGreaterThanOrEqual(2);
  expect(positions(near).at(-1)).toBe(40 - 30);
  // Far: 30 places of 50,000 is 0.06 %: not worth a write (it hears again within 10 s).
  expect(positions(far)).toEqual([]);
});
