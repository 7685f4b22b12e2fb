/**
 * Browser tests drive Debian's Chromium with playwright-core against a real node listening on a
 * port. Without Chromium the suites fail in CI and are skipped loudly elsewhere.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { describe, it } from 'vitest';
import { openStack, type Stack } from '../support/stack.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOTS = 'test-artifacts/screenshots';
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 900 };

const ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** `describe` when Chromium is there; otherwise a failing test in CI and a loud skip elsewhere. */
export function describeBrowser(title: string, fn: () => void) {
  if (existsSync(CHROMIUM)) return describe(title, fn);
  if (process.env.CI) {
    return describe(title, () =>
      it('needs Chromium', () => {
        throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium`);
      }),
    );
  }
  console.warn(
    `\n⚠️  ${'='.repeat(70)}\n⚠️  SKIPPING browser tests "${title}": no Chromium at ${CHROMIUM}\n⚠️  (apt-get install -y chromium, or set CHROMIUM_PATH)\n⚠️  ${'='.repeat(70)}\n`,
  );
  return describe.skip(title, fn);
}

export const launch = (): Promise<Browser> => chromium.launch({ executablePath: CHROMIUM, args: ARGS });

/** A node with demo guest sessions, listening on a free port. */
export async function openWebStack(): Promise<{ stack: Stack; base: string }> {
  const stack = await openStack('embedded', { env: { STAMPEDE_DEMO: '1' } });
  if (!stack) throw new Error('the embedded stack always opens');
  const address = await stack.app.listen({ port: 0, host: '127.0.0.1' });
  return { stack, base: address };
}

/**
 * A page that records what went wrong in it (uncaught errors, console errors such as a CSP
 * refusal), so a test can assert the page ran clean.
 */
export async function newPage(context: BrowserContext): Promise<{ page: Page; problems: string[] }> {
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  return { page, problems };
}

export async function screenshot(page: Page, name: string, fullPage = true) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name), fullPage, animations: 'disabled' });
}
