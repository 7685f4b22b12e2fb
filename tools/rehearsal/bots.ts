/**
 * A simulated bot farm, as the naive farms that make up most of a drop's traffic behave: many
 * accounts behind a few addresses, a handful of shared browser fingerprints (one headless
 * build), scripted and fast (enter the moment the challenge is solved), then hammering purchase
 * with a fresh Idempotency-Key on every try until told the sale is sold out. They pay the
 * proof-of-work like anyone else and pre-authorise a card like anyone else.
 *
 * Not simulated: a farm that spreads its accounts over residential proxies, gives each a
 * distinct fingerprint and waits like a person. That farm is indistinguishable from people at
 * the door; what stops it is the per-user limit, the proof-of-work price per account and the
 * shop's account checks, not this rehearsal's numbers.
 */
import { freshKey, enterQueue, noteOrder, proofOfWork, until } from './people.js';
import { now } from './client.js';
import type { DropContext, ShopperRecord } from './shopper.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

export async function bot(ctx: DropContext, rec: ShopperRecord, fingerprints: number): Promise<void> {
  try {
    if (!(await until(ctx, rec.arriveAt))) {
      rec.outcome = 'stopped';
      return;
    }
    const agent = ctx.agent(rec);
    const id = await ctx.ids.issue('bot', rec.n, agent);
    rec.userId = id.userId;
    const headers = { authorization: `Bearer ${id.token}` };
    const pow = await proofOfWork(ctx, 'bot:challenge', agent);
    const entered = await enterQueue(ctx, rec, 'bot:enter', agent, headers, {
      ...(pow ? { altcha: pow } : {}),
      fingerprint: `farm-${ctx.tag}-${rec.n % fingerprints}`,
    });
    if (entered.status !== 200) {
      rec.outcome = 'error';
      rec.error = `enter-queue ${entered.status} ${entered.body?.error?.code ?? entered.error ?? ''}`;
      return;
    }
    const ticket: string = entered.body.queue_ticket;
    rec.place = entered.body.place ?? 0;
    await ctx.client.call('bot:pre_auth', 'POST', `/api/flash-sales/${ctx.sale.id}/pre-auth`, { agent, headers, json: { ticket, payment_token: 'tok_visa' } });
    // Scripts fire at the opening second, each a little apart so the farm's sockets are not all in one burst.
    if (!(await until(ctx, ctx.sale.opensAt + Math.random() * ctx.opts.botIntervalMs))) {
      rec.outcome = 'stopped';
      return;
    }
    const skus = ctx.sale.skus;
    while (!ctx.stopped) {
      const sku = skus[Math.floor(Math.random() * skus.length)];
      rec.purchaseRequests++;
      const r = await ctx.client.call('bot:purchase', 'POST', `/api/flash-sales/${ctx.sale.id}/purchase`, {
        agent,
        headers: { ...headers, 'idempotency-key': freshKey() },
        json: { ticket, sku, quantity: 1 },
      });
      if (r.status === 201) {
        noteOrder(ctx, rec, `bot:${rec.userId}:${r.body.order_id}`, r.body, sku);
        rec.outcome = 'bought';
        return;
      }
      const code = r.body?.error?.code;
      if (r.status === 409 && (r.body?.status === 'sold_out' || code === 'SOLD_OUT')) {
        rec.outcome = 'sold_out';
        rec.soldOutAt = now();
        rec.soldOutVia = 'purchase';
        return;
      }
      if (code === 'LIMIT_REACHED') {
        rec.outcome = 'bought';
        return;
      }
      if (code === 'SALE_ENDED' || code === 'SALE_CANCELLED') {
        rec.outcome = 'ended';
        return;
      }
      await Promise.race([sleep(ctx.opts.botIntervalMs * (0.5 + Math.random())), ctx.onStop]);
    }
    rec.outcome = 'stopped';
  } catch (err) {
    rec.outcome = 'error';
    rec.error = (err as Error).message;
  }
}
