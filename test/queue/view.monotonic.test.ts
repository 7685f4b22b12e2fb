/**
 * A shopper's view never steps back between nodes. Each node reads the sale from the engine
 * every 100 ms, so behind a balancer without stickiness one poll can reach a node that read later
 * ("admitted") and the next a node that read earlier ("waiting"). The client sends back the
 * highest watermark it was shown (`seen`); a node whose picture is older reads the engine first.
 * Here node B's picture is held still (no background loops) to make the gap as wide as it gets.
 * Both nodes date an admission by the engine's record of the advance, so they name one window.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { admitEveryone, createSale, describeStacks, enter, twoNodes, userToken, type Stack } from '../support/stack.js';

describeStacks("a shopper's view across two nodes", (kind) => {
  let a: Stack;
  let b: Stack;
  let nodes: Awaited<ReturnType<typeof twoNodes>>;

  beforeAll(async () => {
    nodes = await twoNodes(kind);
    if (nodes) ({ a, b } = nodes);
  });

  afterAll(() => nodes?.close());

  const status = async (node: Stack, saleId: string, ticket: string, seen?: number | string) => {
    const url = `/api/flash-sales/${saleId}/status?ticket=${encodeURIComponent(ticket)}${seen === undefined ? '' : `&seen=${seen}`}`;
    const res = await node.app.inject({ method: 'GET', url });
    return { code: res.statusCode, body: res.json() };
  };

  it('admitted on one node stays admitted on a node that read the sale earlier, once the client says what it saw', async (ctx) => {
    if (!a) return ctx.skip();
    const sale = await createSale(a);
    const users = [await userToken(a), await userToken(a), await userToken(a)];
    const tickets = [];
    for (const user of users) tickets.push((await enter(a, sale.id, user)).queue_ticket);
    // B's picture: everybody entered, nobody admitted yet.
    await b.runtime.monitor.refresh(sale.id);
    await admitEveryone(a, sale.id);

    const onA = await status(a, sale.id, tickets[1]);
    expect([onA.code, onA.body.status, onA.body.watermark]).toEqual([200, 'admitted', 3]);
    // The hazard: B, asked as before, steps back to "waiting", second in line...
    const stale = await status(b, sale.id, tickets[1]);
    expect([stale.body.status, stale.body.position, stale.body.watermark]).toEqual(['waiting', 2, 0]);
    // ...and told what A showed, it reads the engine and agrees.
    const fresh = await status(b, sale.id, tickets[1], onA.body.watermark);
    expect([fresh.code, fresh.body.status, fresh.body.watermark]).toEqual([200, 'admitted', 3]);
    expect(typeof fresh.body.admission_pass).toBe('string');
    // Dated by the engine's record of the advance, not by when B first looked: the same window on both.
    await new Promise((r) => setTimeout(r, 20));
    await b.runtime.monitor.refresh(sale.id);
    expect((await status(b, sale.id, tickets[1])).body.admission_expires_at).toBe(onA.body.admission_expires_at);
    // Its picture is now the fresh one for every later request, with or without `seen`.
    expect((await status(b, sale.id, tickets[2])).body.status).toBe('admitted');
  });

  it('a made-up `seen` costs one engine read per round trip, not one per request, and changes no answer', async (ctx) => {
    if (!a) return ctx.skip();
    const sale = await createSale(a);
    // Ten tickets, fifteen requests each: under the per-ticket read limit (20 a second).
    const tickets: string[] = [];
    for (let i = 0; i < 10; i++) tickets.push((await enter(a, sale.id, await userToken(a))).queue_ticket);
    const queue_ticket = tickets[0];
    await b.runtime.monitor.refresh(sale.id);
    // The monitor's engine read (behind its coalescing): one per snapshot B takes.
    const reads = vi.spyOn(b.runtime.monitor as unknown as { read(saleId: string): Promise<unknown> }, 'read');
    try {
      const asked = tickets.flatMap((ticket, i) => Array.from({ length: 15 }, () => ({ ticket, place: i + 1 })));
      const answers = await Promise.all(asked.map(({ ticket }) => status(b, sale.id, ticket, Number.MAX_SAFE_INTEGER)));
      answers.forEach((answer, i) => expect([answer.code, answer.body.status, answer.body.position]).toEqual([200, 'waiting', asked[i].place]));
      // Every request's picture is "older" than the claim, so each asked; the reads were shared.
      expect(reads.mock.calls.length).toBeGreaterThan(0);
      expect(reads.mock.calls.length).toBeLessThan(20);
    } finally {
      reads.mockRestore();
    }
    // Not a count: the one error shape, nothing read.
    for (const bad of ['-1', '1.5', 'abc', '9007199254740992']) {
      const res = await status(b, sale.id, queue_ticket, bad);
      expect([res.code, res.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
    }
  });
});
