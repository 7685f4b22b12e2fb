import { randomUUID } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminHeaders, createSale, enter, userToken, type Stack } from '../support/stack.js';
import { PHONE, describeBrowser, launch, newPage, openWebStack, screenshot } from './browser.js';

/** Resource errors (a 409 sold-out answer, an aborted stream) are the browser's notes, not the page's faults. */
const faults = (problems: string[]) => problems.filter((p) => !/Failed to load resource|net::ERR_/.test(p));

const phone = { name: 'Aurora X1 · Obsidian 256 GB', sku: 'aurora-x1', price_cents: 79_900, currency: 'EUR', per_user_limit: 1 };

describeBrowser('a shopper on a phone', () => {
  let stack: Stack;
  let base: string;
  let browser: Browser;
  let soldSaleId: string;

  beforeAll(async () => {
    ({ stack, base } = await openWebStack());
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('goes from the countdown through proof-of-work, the queue and pre-auth to a confirmed order', async () => {
    const crowd = Array.from({ length: 120 }, (_, i) => `crowd-${i}-${randomUUID()}`);
    const sale = await createSale(stack, {
      name: 'Midnight Drop — Aurora X1',
      // Far enough ahead that a slow machine still joins and pre-authorises before it opens; the
      // test opens it itself once the card is authorised (below), so it waits for nothing.
      starts_at: new Date(Date.now() + 40_000).toISOString(),
      items: [{ ...phone, quantity: 1 }],
      // The crowd below enters through the API: staff-style allowlisting spares it the puzzle.
      bot_protection: { pow_difficulty: 1, allowlist: crowd },
    });
    soldSaleId = sale.id;
    // A crowd got there first (they will not buy).
    for (const sub of crowd) await enter(stack, sale.id, await userToken(stack, sub));
    const context = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    // The device clock is two hours fast: the countdown must still follow the server's.
    await context.addInitScript(() => {
      const RealDate = Date;
      const skew = 2 * 3600_000;
      class SkewedDate extends RealDate {
        constructor(...args: unknown[]) {
          if (args.length === 0) super(RealDate.now() + skew);
          else super(...(args as [string]));
        }
        static now() {
          return RealDate.now() + skew;
        }
      }
      (globalThis as { Date: DateConstructor }).Date = SkewedDate as DateConstructor;
    });
    const { page, problems } = await newPage(context);
    const entries: string[] = [];
    page.on('request', (req) => {
      if (req.url().endsWith('/enter-queue')) entries.push(req.postData() ?? '');
    });

    await page.goto(`${base}/sale?id=${sale.id}`);
    await page.locator('#countdown').waitFor({ state: 'visible' });
    // The server's time, not the device's (two hours fast: it would show the sale open).
    await expect.poll(() => page.textContent('#cd-time')).toMatch(/^0:[0-4]\d$/);
    expect(await page.textContent('#sale-name')).toBe('Midnight Drop — Aurora X1');
    expect(await page.textContent('#products-intro .product-price')).toBe('€799.00');
    await screenshot(page, 'sale-countdown.png');

    await page.click('#join');
    await page.locator('#view-waiting').waitFor({ state: 'visible' });
    // The worker solved a real challenge: the entry carries an ALTCHA payload, and the bar is full.
    expect(JSON.parse(entries[0])).toHaveProperty('altcha');
    expect(await page.$eval('#pow-bar', (p: HTMLProgressElement) => p.value === p.max && p.max === 5000)).toBe(true);
    expect(await page.textContent('#position')).toBe('121');
    await expect.poll(() => page.textContent('#eta')).not.toBe('–');
    // Focus moved to the new state's heading, for keyboard and screen-reader users.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('waiting-title');
    expect(await page.inputValue('#card')).toBe('4242 4242 4242 4242');
    expect(await page.textContent('#card-hint')).toContain('We only charge you if you get one');
    await screenshot(page, 'waiting-room.png');

    await page.click('#preauth-btn');
    await page.locator('#preauth-ok').waitFor({ state: 'visible' });
    expect(await page.textContent('#preauth-ok')).toContain('€799.00 authorised');
    // The shop opens the drop now (a change before the start).
    const opened = await stack.app.inject({
      method: 'PATCH',
      url: `/api/admin/flash-sales/${sale.id}`,
      headers: adminHeaders,
      payload: { starts_at: new Date(Date.now() + 500).toISOString() },
    });
    expect(opened.statusCode).toBe(200);

    await page.locator('#view-admitted').waitFor({ state: 'visible', timeout: 15_000 });
    await expect.poll(() => page.textContent('#admit-left')).toMatch(/^\d+:\d\d$/);
    await page.locator('#products-buy .buy:not([disabled])').waitFor();
    await screenshot(page, 'admitted.png');

    await page.click('#products-buy .buy');
    await page.locator('#view-confirmed').waitFor({ state: 'visible' });
    const orderId = (await page.textContent('#order-id'))!;
    expect(await page.textContent('#order-amount')).toBe('€799.00');
    expect(await page.textContent('#order-item')).toBe(phone.name);
    await screenshot(page, 'confirmation.png');

    const order = await stack.runtime.ledger.getOrder(orderId);
    expect(order?.status).toBe('confirmed');
    expect(stack.gateway.authorizations()).toEqual([expect.objectContaining({ status: 'captured', captures: 1, capturedCents: 79_900 })]);

    // Reloading shows the same confirmation, not a new queue.
    await page.reload();
    await page.locator('#view-confirmed').waitFor({ state: 'visible' });
    expect(await page.textContent('#order-id')).toBe(orderId);
    expect(faults(problems)).toEqual([]);
    await context.close();
  });

  it('a second shopper on the 1-unit sale the first one bought lands on the sold-out page', async () => {
    const context = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 2, isMobile: true });
    const { page, problems } = await newPage(context);
    await page.goto(`${base}/sale?id=${soldSaleId}`);
    await page.locator('#view-soldout').waitFor({ state: 'visible' });
    expect(await page.textContent('#soldout-title')).toBe('Sold out — this time');
    expect(await page.title()).toContain('Sold out');
    await screenshot(page, 'sold-out.png');

    // The home page lists the current drops and links to them.
    await createSale(stack, {
      name: 'Weekend Drop — Halo Watch',
      starts_at: new Date(Date.now() + 3 * 3600_000).toISOString(),
      items: [{ ...phone, sku: 'halo', name: 'Halo Watch', price_cents: 34_900, quantity: 300 }],
    });
    await page.goto(`${base}/`);
    await page.locator('#drops li').first().waitFor();
    const link = page.locator('#drops a', { hasText: 'Midnight Drop — Aurora X1' });
    expect(await link.getAttribute('href')).toBe(`/sale?id=${soldSaleId}`);
    expect(await link.locator('.status').textContent()).toBe('Sold out');
    await screenshot(page, 'drops.png');
    expect(faults(problems)).toEqual([]);
    await context.close();
  });

  it('an admitted shopper sees the drop sell out under them, live', async () => {
    const sale = await createSale(stack, {
      name: 'Flash: Nova Buds',
      items: [{ ...phone, sku: 'nova', name: 'Nova Buds Pro', price_cents: 14_900, quantity: 1 }],
    });
    const context = await browser.newContext({ viewport: PHONE, isMobile: true });
    const { page, problems } = await newPage(context);
    await page.goto(`${base}/sale?id=${sale.id}`);
    await page.click('#join');
    await page.locator('#view-admitted').waitFor({ state: 'visible', timeout: 15_000 });

    const rival = await userToken(stack);
    const ticket = await enter(stack, sale.id, rival);
    await expect
      .poll(
        async () => {
          const res = await stack.app.inject({
            method: 'POST',
            url: `/api/flash-sales/${sale.id}/purchase`,
            headers: { ...rival.headers, 'idempotency-key': randomUUID() },
            payload: { ticket: ticket.queue_ticket, sku: 'nova', payment_token: 'tok_visa' },
          });
          return res.statusCode;
        },
        { timeout: 10_000 },
      )
      .toBe(201);

    await page.locator('#view-soldout').waitFor({ state: 'visible', timeout: 5000 });
    expect(faults(problems)).toEqual([]);
    await context.close();
  });

  it('without a live stream the page falls back to polling, buys safely over a flaky network, and fits 360 px', async () => {
    const sale = await createSale(stack, { name: 'Polling drop', items: [{ ...phone, quantity: 5 }] });
    const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true });
    await context.route('**/events?*', (route) => route.abort());
    const { page, problems } = await newPage(context);
    await page.goto(`${base}/sale?id=${sale.id}`);
    await page.click('#join');
    await page.locator('#view-admitted').waitFor({ state: 'visible', timeout: 15_000 });
    expect(await page.textContent('#mode-pill')).toBe('Auto-refresh');
    await expect.poll(() => page.textContent('#products-buy .stock-text')).toBe('Only 5 left');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);

    // No pre-auth: Buy sends the card with the purchase. The first answer is lost on the way
    // back (the order was made): the page asks again with the same key and gets the same order.
    const sent: Array<{ key: string; body: string }> = [];
    await page.route('**/purchase', async (route) => {
      sent.push({ key: route.request().headers()['idempotency-key'], body: route.request().postData() ?? '' });
      if (sent.length > 1) return route.continue();
      await route.fetch();
      return route.abort('connectionreset');
    });
    await page.click('#products-buy .buy');
    await page.locator('#view-confirmed').waitFor({ state: 'visible' });
    // (The server may ask the retry to wait — 429 with Retry-After — and the page does, same key.)
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(new Set(sent.map((r) => r.key)).size).toBe(1);
    expect(JSON.parse(sent[0].body)).toMatchObject({ sku: 'aurora-x1', quantity: 1, payment_token: '4242424242424242' });
    const orders = await stack.runtime.ledger.listOrders(sale.id, { limit: 10 });
    expect(orders.map((o) => o.id)).toEqual([await page.textContent('#order-id')]);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    expect(faults(problems)).toEqual([]);
    await context.close();
  });
});
