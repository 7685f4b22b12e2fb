import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAssets, type Asset } from '../../src/web/web-routes.js';
import { openStack, type Stack } from '../support/stack.js';

/** Every `/path/file.ext` a text asset refers to that the server serves. */
function references(text: string, assets: Map<string, Asset>): string[] {
  return [...text.matchAll(/["'(](\/[\w./-]+\.\w+)["')]/g)].map((m) => m[1]).filter((p) => assets.has(p));
}

/** The JS a page loads: its scripts, their imports and workers, followed to the end. */
function scriptsOf(page: string, assets: Map<string, Asset>): Map<string, Asset> {
  const out = new Map<string, Asset>();
  const visit = (path: string) => {
    for (const ref of references(assets.get(path)!.body.toString(), assets)) {
      if (!ref.endsWith('.js') || out.has(ref)) continue;
      out.set(ref, assets.get(ref)!);
      visit(ref);
    }
  };
  visit(page);
  return out;
}

describe('the web assets', () => {
  let stack: Stack;
  let assets: Map<string, Asset>;
  beforeAll(async () => {
    stack = (await openStack('embedded', { workers: false }))!;
    assets = await loadAssets();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('serves the pages under their short paths, revalidating, with a content security policy', async () => {
    for (const [path, title] of [
      ['/', 'Drops'],
      ['/sale', 'Flash sale'],
      ['/admin', 'Dashboard'],
    ]) {
      const res = await stack.app.inject({ url: path });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toContain('text/html');
      expect(res.headers['cache-control']).toBe('public, max-age=0, must-revalidate');
      expect(res.headers['content-security-policy']).toContain("script-src 'self'");
      expect(res.body).toContain(`<title>${title}`);
      const again = await stack.app.inject({ url: path, headers: { 'if-none-match': String(res.headers.etag) } });
      expect(again.statusCode).toBe(304);
    }
  });

  it('names every asset by its content hash, caches it for a year, and rewrites every reference to it', async () => {
    for (const page of ['/index.html', '/sale.html', '/admin.html']) {
      const refs = references(assets.get(page)!.body.toString(), assets);
      expect(refs.length).toBeGreaterThan(1);
      for (const ref of refs) {
        expect(ref).toMatch(/\.[0-9a-f]{10}\.\w+$/);
        const res = await stack.app.inject({ url: ref });
        expect(res.statusCode).toBe(200);
        expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      }
    }
    // No page or script still points at an unhashed name.
    for (const [path, asset] of assets) {
      if (!/\.(html|js|css)$/.test(path) || path.startsWith('/vendor/')) continue;
      expect(asset.body.toString()).not.toMatch(/["'(]\/(js|css|vendor)\/[\w-]+(\.umd\.min)?\.(js|css)["')]/);
    }
  });

  it('serves Chart.js from the package, hashed, without copying it into public/', async () => {
    const chart = [...assets.keys()].find((p) => p.startsWith('/vendor/chart.umd.min.'));
    expect(chart).toBeDefined();
    expect(assets.get('/admin.html')!.body.toString()).toContain(chart);
    expect(assets.get(chart!)!.body.toString()).not.toContain('sourceMappingURL');
  });

  it('renames a module when a module it imports changes, so an immutable URL never changes its body', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stampede-web-'));
    try {
      await mkdir(join(dir, 'js'));
      await writeFile(join(dir, 'page.html'), '<script type="module" src="/js/app.js"></script>');
      await writeFile(join(dir, 'js/app.js'), "import { x } from '/js/dep.js';");
      await writeFile(join(dir, 'js/dep.js'), 'export const x = 1;');
      const nameOf = (a: Map<string, Asset>) => [...a.keys()].find((k) => k.startsWith('/js/app.'));
      const before = nameOf(await loadAssets(dir, {}));
      await writeFile(join(dir, 'js/dep.js'), 'export const x = 2;');
      const after = await loadAssets(dir, {});
      expect(nameOf(after)).not.toBe(before);
      const dep = [...after.keys()].find((k) => k.startsWith('/js/dep.'));
      expect(after.get(nameOf(after)!)!.body.toString()).toContain(dep);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps the shopper page light: all its JavaScript well under 30 KB, and a third of that on the wire', () => {
    const scripts = scriptsOf('/sale.html', assets);
    for (const name of [
      'shop-api',
      'sale-page',
      'sale-state',
      'sale-endings',
      'sale-products',
      'sale-drop',
      'sale-waiting',
      'sale-checkout',
      'live-feed',
      'pow-solver',
    ]) {
      expect([...scripts.keys()].some((k) => k.includes(`/${name}.`))).toBe(true);
    }
    const sum = (size: (a: Asset) => number) => [...scripts.values()].reduce((n, a) => n + size(a), 0);
    expect(sum((a) => a.body.length)).toBeLessThan(25 * 1024);
    // Ten modules, each compressed on its own (about 300–500 B a file boundary): 11.6 KiB when the
    // page was split by view, 9.1 KiB as one 567-line file before.
    expect(sum((a) => (a.br ?? a.body).length)).toBeLessThan(13 * 1024);
  });

  it('sends text compressed to a client that accepts it, each encoding with its own validator', async () => {
    const script = [...assets.keys()].find((p) => p.startsWith('/js/sale-page.'))!;
    const br = await stack.app.inject({ url: script, headers: { 'accept-encoding': 'gzip, deflate, br' } });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toBe('accept-encoding');
    expect(br.rawPayload.length).toBeLessThan(assets.get(script)!.body.length / 2);
    const gzip = await stack.app.inject({ url: script, headers: { 'accept-encoding': 'gzip' } });
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(gzip.headers.etag).not.toBe(br.headers.etag);
    const plain = await stack.app.inject({ url: script });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body).toBe(assets.get(script)!.body.toString());
    const again = await stack.app.inject({ url: script, headers: { 'accept-encoding': 'br', 'if-none-match': String(br.headers.etag) } });
    expect(again.statusCode).toBe(304);
  });
});
