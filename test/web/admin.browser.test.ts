import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADMIN_TOKEN, enter, userToken, type Stack } from '../support/stack.js';
import { DESKTOP, describeBrowser, launch, newPage, openWebStack, screenshot } from './browser.js';

const faults = (problems: string[]) => problems.filter((p) => !/Failed to load resource/.test(p));

async function signIn(page: Page, base: string) {
  await page.goto(`${base}/admin`);
  await page.fill('#admin-token', ADMIN_TOKEN);
  await page.click('#login-form button');
  await page.locator('#view-sales').waitFor({ state: 'visible' });
}

/** Fills the sale form; `startNow` sets the start to this minute (the sale opens at once). */
async function fillSale(page: Page, name: string, items: Array<[string, string, string, string]>, startNow: boolean) {
  await page.fill('#f-name', name);
  if (startNow) {
    await page.$eval('#f-start', (input: HTMLInputElement) => {
      const d = new Date();
      const p = (n: number) => String(n).padStart(2, '0');
      input.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
    });
  }
  for (let i = 0; i < items.length; i++) {
    if (i > 0) await page.click('#add-item');
    const row = page.locator('#items tbody tr').nth(i);
    const [sku, itemName, price, qty] = items[i];
    await row.locator('.i-sku').fill(sku);
    await row.locator('.i-name').fill(itemName);
    await row.locator('.i-price').fill(price);
    await row.locator('.i-qty').fill(qty);
  }
}

describeBrowser('the admin dashboard', () => {
  let stack: Stack;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    ({ stack, base } = await openWebStack());
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('signs in, creates a sale from the form and watches its counters and charts move', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const { page, problems } = await newPage(context);
    await page.goto(`${base}/admin`);
    await page.fill('#admin-token', 'not-the-token');
    await page.click('#login-form button');
    await expect.poll(() => page.textContent('#login-error')).toBe('That token was not accepted.');
    await page.fill('#admin-token', ADMIN_TOKEN);
    await page.click('#login-form button');
    await page.locator('#view-sales').waitFor({ state: 'visible' });

    await page.click('#new-sale');
    await page.locator('#view-form').waitFor({ state: 'visible' });
    await fillSale(
      page,
      'Spring Drop — Nova Buds',
      [
        ['nova-buds', 'Nova Buds Pro', '149.00', '200'],
        ['nova-case', 'Nova Charging Case', '39.00', '100'],
      ],
      true,
    );
    await page.fill('#f-rate', '20');
    await page.fill('#f-pow', '0');
    await screenshot(page, 'admin-new-sale.png');
    await page.click('#form-submit');
    await page.locator('#view-live').waitFor({ state: 'visible' });
    const saleId = decodeURIComponent(page.url().split('#/sale/')[1]);
    expect(await page.textContent('#live-title')).toBe('Spring Drop — Nova Buds');
    const created = await stack.app.inject({ url: `/api/flash-sales/${saleId}` });
    expect(created.json()).toMatchObject({
      items: [
        { sku: 'nova-buds', price_cents: 14_900, quantity: 200 },
        { sku: 'nova-case', price_cents: 3_900 },
      ],
      queue: { admission_rate_per_sec: 20 },
      bot_protection: { pow_difficulty: 0 },
    });

    // Shoppers arrive through the API over a few seconds and buy; some come back for a second one.
    const shoppers: Array<{ headers: Record<string, string>; ticket: string; bought: boolean }> = [];
    for (let round = 0; round < 8; round++) {
      for (let i = 0; i < 5; i++) {
        const user = await userToken(stack);
        const { queue_ticket } = await enter(stack, saleId, user);
        shoppers.push({ headers: user.headers, ticket: queue_ticket, bought: false });
      }
      for (const s of shoppers.filter((x) => !x.bought).slice(0, 4)) {
        const res = await stack.app.inject({
          method: 'POST',
          url: `/api/flash-sales/${saleId}/purchase`,
          headers: { ...s.headers, 'idempotency-key': randomUUID() },
          payload: { ticket: s.ticket, sku: Math.random() < 0.7 ? 'nova-buds' : 'nova-case', payment_token: 'tok_visa' },
        });
        if (res.statusCode === 201) s.bought = true;
      }
      const greedy = shoppers.find((x) => x.bought);
      if (greedy)
        await stack.app.inject({
          method: 'POST',
          url: `/api/flash-sales/${saleId}/purchase`,
          headers: { ...greedy.headers, 'idempotency-key': randomUUID() },
          payload: { ticket: greedy.ticket, sku: 'nova-buds', payment_token: 'tok_visa' },
        });
      await new Promise((r) => setTimeout(r, 400));
    }

    await expect.poll(async () => Number((await page.textContent('#kpi-entered'))!.replace(/\D/g, ''))).toBe(40);
    await expect.poll(async () => Number((await page.textContent('#kpi-sold'))!.replace(/\D/g, ''))).toBeGreaterThan(0);
    await page.locator('#orders tbody tr').first().waitFor();
    // The greedy shopper's second tries are refused (limit reached, or rate limited first).
    await expect.poll(() => page.locator('#reject-counts .chip').count()).toBeGreaterThan(0);
    const canvases = await page.$$eval('.chart canvas', (cs) => cs.map((c) => (c as HTMLCanvasElement).width));
    expect(canvases).toHaveLength(4);
    for (const w of canvases) expect(w).toBeGreaterThan(100);
    await page.waitForTimeout(1500);
    await screenshot(page, 'dashboard.png');
    expect(faults(problems)).toEqual([]);
    await context.close();
  });

  it('changes a sale before it starts, then cancels it', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const { page, problems } = await newPage(context);
    await signIn(page, base);
    await page.click('#new-sale');
    await fillSale(page, 'Draft drop', [['draft-1', 'Draft item', '10', '5']], false);
    await page.click('#form-submit');
    await page.locator('#view-live').waitFor({ state: 'visible' });
    await expect.poll(() => page.textContent('#live-status')).toBe('Scheduled');

    await page.click('#live-edit');
    await page.locator('#view-form').waitFor({ state: 'visible' });
    await expect.poll(() => page.inputValue('#f-name')).toBe('Draft drop');
    expect(await page.locator('#items tbody tr .i-price').inputValue()).toBe('10.00');
    await page.fill('#f-name', 'Renamed drop');
    await page.locator('#items tbody tr .i-qty').fill('7');
    await page.click('#form-submit');
    await page.locator('#view-live').waitFor({ state: 'visible' });
    await expect.poll(() => page.textContent('#live-title')).toBe('Renamed drop');
    await expect.poll(() => page.textContent('#kpi-remaining')).toBe('7');

    await page.click('#live-cancel');
    await page.locator('#confirm-cancel').waitFor({ state: 'visible' });
    await page.click('#confirm-cancel-yes');
    await expect.poll(() => page.textContent('#live-status')).toBe('Cancelled');

    await page.click('nav a[href="#/sales"]');
    const row = page.locator('#sales-table tbody tr', { hasText: 'Renamed drop' });
    await expect.poll(() => row.locator('.status').textContent()).toBe('Cancelled');
    await screenshot(page, 'admin-sales.png');
    expect(faults(problems)).toEqual([]);
    await context.close();
  });

  it('asks again for the token when it is refused', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const { page } = await newPage(context);
    await page.goto(`${base}/admin`);
    await page.evaluate(() => sessionStorage.setItem('stampede.admin', 'stale-token'));
    await page.reload();
    await page.locator('#view-login').waitFor({ state: 'visible' });
    await context.close();
  });
});
