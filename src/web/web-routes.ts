/**
 * Serves the shopper pages and the admin dashboard: plain static files, deployable to a CDN as
 * they are. Every asset is named by the hash of its final content and cached for a year; the
 * HTML pages revalidate, so a new release reaches shoppers on their next load.
 *
 * A file refers to another as `/path/file.ext` (an absolute path); those references are
 * rewritten to the hashed names. A file is hashed after its own references are rewritten, so a
 * change deep in the import graph renames every file that leads to it — an immutable URL never
 * serves two different bodies.
 *
 * Scripts and style sheets are minified (by scripts/build.mjs for dist/; here when run from src/
 * with esbuild, a dev dependency, installed), and every text file is kept compressed (brotli and
 * gzip), so a phone on a poor network downloads the waiting room in a few kilobytes.
 */
import { readFile, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url));
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
};
const TEXT = new Set(['.html', '.js', '.css', '.svg', '.webmanifest']);

/** Pages by the path shoppers and staff type. */
export const PAGES: Record<string, string> = { '/': '/index.html', '/sale': '/sale.html', '/admin': '/admin.html' };

/**
 * Files served from packages rather than copied into `public/`: the dashboard's Chart.js.
 * Source-map comments are dropped (the maps are not served).
 */
const require = createRequire(import.meta.url);
export const VENDOR: Record<string, string> = {
  'vendor/chart.umd.min.js': join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'),
};

/** What the pages may load: only this origin (the API is on the same origin). */
const PAGE_CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  immutable: boolean;
  /** The body compressed, when that saves anything. */
  br?: Buffer;
  gzip?: Buffer;
}

type Minify = (code: string, loader: 'js' | 'css') => Promise<string>;

/** esbuild's minifier when it is installed; null otherwise (files are then served as written). */
async function minifier(): Promise<Minify | null> {
  try {
    const esbuild = await import('esbuild');
    return async (code, loader) => (await esbuild.transform(code, { loader, minify: true, target: 'es2020', legalComments: 'none' })).code;
  } catch {
    return null;
  }
}

/** Compiled to dist/, whose public/ the build minified already: minifying again would rename the files. */
const PREMINIFIED = import.meta.url.endsWith('.js');

/** Reads every public file once; asset URLs get their content hash, and references are rewritten to use them. */
export async function loadAssets(dir = PUBLIC, vendor = VENDOR, { minify = !PREMINIFIED } = {}): Promise<Map<string, Asset>> {
  const min = minify ? await minifier() : null;
  const raw = new Map<string, Buffer>();
  for (const rel of await listFiles(dir)) {
    let body = await readFile(join(dir, rel));
    const ext = extname(rel);
    if (min && (ext === '.js' || ext === '.css')) body = Buffer.from(await min(body.toString(), ext === '.js' ? 'js' : 'css'));
    raw.set(rel, body);
  }
  for (const [rel, path] of Object.entries(vendor)) {
    raw.set(rel, Buffer.from((await readFile(path, 'utf8')).replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n')));
  }

  const final = new Map<string, { name: string; body: Buffer }>();
  const resolving = new Set<string>();
  // Depth first: a file's references are final before the file itself is hashed.
  const resolve = (rel: string): { name: string; body: Buffer } => {
    const done = final.get(rel);
    if (done) return done;
    resolving.add(rel);
    let body = raw.get(rel)!;
    if (TEXT.has(extname(rel))) {
      let text = body.toString();
      // Longest paths first, so `/a/b.js` is never half-rewritten by a shorter name inside it.
      for (const other of [...raw.keys()].sort((a, b) => b.length - a.length)) {
        if (other === rel || other.endsWith('.html') || !text.includes(`/${other}`)) continue;
        if (resolving.has(other)) throw new Error(`web assets refer to each other in a cycle: ${rel} ↔ ${other}`);
        text = text.split(`/${other}`).join(`/${resolve(other).name}`);
      }
      body = Buffer.from(text);
    }
    const ext = extname(rel);
    const name = rel.endsWith('.html') ? rel : `${rel.slice(0, -ext.length)}.${createHash('sha256').update(body).digest('hex').slice(0, 10)}${ext}`;
    resolving.delete(rel);
    const out = { name, body };
    final.set(rel, out);
    return out;
  };

  const out = new Map<string, Asset>();
  for (const rel of raw.keys()) {
    const { name, body } = resolve(rel);
    const asset: Asset = {
      body,
      type: TYPES[extname(rel)] ?? 'application/octet-stream',
      etag: `"${createHash('sha1').update(body).digest('base64url')}"`,
      immutable: !rel.endsWith('.html'),
    };
    if (TEXT.has(extname(rel)) && body.length > 1024) {
      const br = brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } });
      const gzip = gzipSync(body, { level: 9 });
      if (br.length < body.length) asset.br = br;
      if (gzip.length < body.length) asset.gzip = gzip;
    }
    out.set(`/${name}`, asset);
  }
  return out;
}

let shared: Promise<Map<string, Asset>> | null = null;

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(join(dir, prefix), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else out.push(rel);
  }
  return out;
}

export const webRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Every app in a process serves the same files: read and compress them once.
  const assets = await (shared ??= loadAssets());
  app.get('/*', { config: { access: 'public' }, schema: { hide: true } }, async (req, reply) => {
    const path = req.url.split('?')[0];
    const asset = assets.get(PAGES[path] ?? path);
    if (!asset) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `No page ${path}` } });
    const accepts = String(req.headers['accept-encoding'] ?? '');
    const encoding = asset.br && /\bbr\b/.test(accepts) ? 'br' : asset.gzip && /\bgzip\b/.test(accepts) ? 'gzip' : null;
    // Each encoding is its own representation, with its own validator.
    const etag = encoding ? `${asset.etag.slice(0, -1)}-${encoding}"` : asset.etag;
    reply
      .header('content-type', asset.type)
      .header('etag', etag)
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'public, max-age=0, must-revalidate');
    if (asset.br || asset.gzip) reply.header('vary', 'accept-encoding');
    if (!asset.immutable) reply.header('content-security-policy', PAGE_CSP).header('referrer-policy', 'same-origin');
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    if (encoding) reply.header('content-encoding', encoding);
    return reply.send(encoding ? asset[encoding] : asset.body);
  });
};
