/**
 * A mega-drop sale (`queue.shards` > 1) end to end on two nodes sharing one engine: the queue
 * spread over lanes, each place of its entrant's lane, distinct, admitted in place order;
 * exactly the stock sold and the per-user limit exact (stock and limits stay in the sale's slot);
 * and the setting fixed once the sale exists. The lanes' arithmetic itself is in the engine
 * contract suite (test/engine/engine.contract.ts).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { laneOf } from '../../src/engine/lanes.js';
import {
  adminHeaders,
  admitEveryone,
  createSale,
  describeStacksAndCluster,
  enter,
  openStack,
  saleBody,
  twoNodes,
  userToken,
  type Stack,
} from '../support/stack.js';

describeStacksAndCluster('queue lanes (mega-drop)', (kind) => {
  let nodes: Awaited<ReturnType<typeof twoNodes>>;
  beforeAll(async () => {
    nodes = await twoNodes(kind);
  });
  afterAll(async () => {
    await nodes?.close();
  });

  const purchase = (s: Stack, saleId: string, user: { headers: Record<string, string> }, ticket: string) =>
    s.app.inject({
      method: 'POST',
      url: `/api/flash-sales/${saleId}/purchase`,
      headers: { ...user.headers, 'idempotency-key': randomUUID() },
      payload: { ticket, sku: 'phone', quantity: 1, payment_token: 'tok_visa' },
    });

  it('600 shoppers over 3 lanes on two nodes: distinct places in their lanes, exactly 50 sold, nobody past the limit', async (ctx) => {
    if (!nodes) return ctx.skip();
    const { a, b } = nodes;
    const sale = await createSale(a, {
      items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity: 50, per_user_limit: 1 }],
      queue: { mode: 'fifo', admission_rate_per_sec: 100_000, admitted_ttl_sec: 600, max_active: 100_000, shards: 3 },
    });
    expect((sale as unknown as { queue: { shards: number } }).queue.shards).toBe(3);
    const ids = Array.from({ length: 600 }, () => `lane-${randomUUID()}`);
    const users = await Promise.all(ids.map((id) => userToken(a, id)));
    const tickets = await Promise.all(users.map((u, i) => enter(i % 2 ? b : a, sale.id, u)));
    const places = tickets.map((t) => t.place);
    expect(new Set(places).size).toBe(600);
    places.forEach((place, i) => expect((place - 1) % 3).toBe(laneOf(ids[i], 3)));
    // Entering again, on the other node, answers the same place.
    expect((await enter(b, sale.id, users[0])).place).toBe(places[0]);

    await admitEveryone(a, sale.id);
    await b.runtime.monitor.refresh(sale.id);
    const stats = (await a.app.inject({ url: `/api/admin/flash-sales/${sale.id}/stats`, headers: adminHeaders })).json();
    expect(stats).toMatchObject({ entered: 600 });

    // Every shopper twice at once (two keys), half on each node: the limit of 1 and the 50 units hold.
    const answers = await Promise.all(
      users.flatMap((u, i) => [purchase(a, sale.id, u, tickets[i].queue_ticket), purchase(b, sale.id, u, tickets[i].queue_ticket)]),
    );
    const byStatus: Record<number, number> = {};
    for (const answer of answers) byStatus[answer.statusCode] = (byStatus[answer.statusCode] ?? 0) + 1;
    expect(byStatus[201]).toBe(50);
    expect(answers.every((answer) => [201, 409, 429].includes(answer.statusCode))).toBe(true);
    // Answers 2i and 2i+1 are shopper i's: at most one of them a sale.
    const buyers = answers.flatMap((answer, i) => (answer.statusCode === 201 ? [Math.floor(i / 2)] : []));
    expect(new Set(buyers).size).toBe(50);
    const ledgerSale = await a.runtime.ledger.getSale(sale.id);
    expect(ledgerSale?.items[0]).toMatchObject({ sold: 50, held: 0 });
    expect((await a.runtime.engine.snapshot(sale.id, 0)).remaining).toEqual({ phone: 0 });
  }, 120_000);

  it("the node's own admission step admits a lane sale's shoppers in place order, entered before the opening too", async (ctx) => {
    // One node with its background loops (twoNodes' have none): its own leader steps the queue.
    const a = await openStack(kind);
    if (!a) return ctx.skip();
    onTestFinished(() => a.close());
    const sale = await createSale(a, {
      starts_at: new Date(Date.now() + 1500).toISOString(),
      queue: { mode: 'fifo', admission_rate_per_sec: 40, admitted_ttl_sec: 600, max_active: 1000, shards: 3 },
    });
    const users = await Promise.all(Array.from({ length: 40 }, () => userToken(a)));
    const tickets = await Promise.all(users.map((u) => enter(a, sale.id, u)));
    // Before the opening, the stats already count them (the lanes are read every tick).
    const stats = async () => (await a.app.inject({ url: `/api/admin/flash-sales/${sale.id}/stats`, headers: adminHeaders })).json();
    for (let i = 0; i < 50 && (await stats()).entered < 40; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await stats()).toMatchObject({ entered: 40, waiting: 40 });
    // Then the leader admits them all at 40/s, by itself, in place order.
    const admittedAt = new Map<number, number>();
    const deadline = Date.now() + 20_000;
    while (admittedAt.size < 40 && Date.now() < deadline) {
      await Promise.all(
        tickets.map(async (t) => {
          const view = (await a.app.inject({ url: `/api/flash-sales/${sale.id}/status?ticket=${encodeURIComponent(t.queue_ticket)}` })).json();
          if (view.status === 'admitted' && !admittedAt.has(t.place)) admittedAt.set(t.place, Date.parse(view.admission_expires_at));
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(admittedAt.size).toBe(40);
    const byPlace = [...admittedAt].sort((x, y) => x[0] - y[0]).map(([, at]) => at);
    expect(byPlace).toEqual([...byPlace].sort((x, y) => x - y));
    expect(await stats()).toMatchObject({ entered: 40, waiting: 0 });
  }, 60_000);

  it('queue.shards is fixed once the sale exists, and fifo only', async (ctx) => {
    if (!nodes) return ctx.skip();
    const { a } = nodes;
    const sale = await createSale(a, { starts_at: new Date(Date.now() + 3_600_000).toISOString(), queue: { mode: 'fifo', shards: 2 } });
    const change = await a.app.inject({
      method: 'PATCH',
      url: `/api/admin/flash-sales/${sale.id}`,
      headers: adminHeaders,
      payload: { queue: { shards: 3 } },
    });
    expect(change.statusCode).toBe(422);
    expect(change.json().error).toMatchObject({ code: 'INVALID_SALE', field: 'queue/shards' });
    // The same value again is no change.
    const same = await a.app.inject({ method: 'PATCH', url: `/api/admin/flash-sales/${sale.id}`, headers: adminHeaders, payload: { queue: { shards: 2 } } });
    expect(same.statusCode).toBe(200);
    const lottery = await a.app.inject({
      method: 'POST',
      url: '/api/admin/flash-sales',
      headers: adminHeaders,
      payload: saleBody({ queue: { mode: 'randomized_prequeue', shards: 2 } }),
    });
    expect(lottery.statusCode).toBe(422);
    expect(lottery.json().error).toMatchObject({ code: 'INVALID_SALE', field: 'queue/shards' });
  });
});
