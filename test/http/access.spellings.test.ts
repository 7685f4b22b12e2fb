/**
 * Guarded routes stay guarded whatever spelling of their path reaches them. The spellings are
 * generated from the app's own route table, so a new admin route is covered without a new test:
 * percent-encoded letters (lower and upper hex), doubled slashes, dot segments, encoded slashes
 * and dots, a trailing slash and case changes, sent byte for byte over a real socket (not
 * `inject`, which could tidy a path the way no attacker's client would).
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import Fastify from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { guardRoutes } from '../../src/http/access.js';
import { adminHeaders, createSale, openStack, userToken, type Stack } from '../support/stack.js';

let stack: Stack;
let port: number;

beforeAll(async () => {
  stack = (await openStack('embedded'))!;
  await stack.app.listen({ port: 0, host: '127.0.0.1' });
  port = (stack.app.server.address() as { port: number }).port;
});
afterAll(async () => {
  await stack?.close();
});

/** One HTTP/1.1 request with the path exactly as given; resolves to the status code and body. */
function raw(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const lines = [`${method} ${path} HTTP/1.1`, 'host: 127.0.0.1', 'connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    if (body !== undefined) lines.push('content-type: application/json', `content-length: ${Buffer.byteLength(body)}`);
    socket.end(`${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      text += d;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
}

const hex = (ch: string, upper: boolean) => {
  const h = ch.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${upper ? h.toUpperCase() : h}`;
};

/** Other spellings of `path` that a router might still resolve to the same route. */
export function spellings(path: string): string[] {
  const out = new Set<string>();
  const segments = path.split('/').slice(1);
  const join = (segs: string[]) => `/${segs.join('/')}`;
  segments.forEach((seg, i) => {
    const at = (replacement: string) => join([...segments.slice(0, i), replacement, ...segments.slice(i + 1)]);
    // Each letter percent-encoded on its own, in lower and upper hex.
    for (let c = 0; c < seg.length; c++) {
      if (!/[a-z-]/i.test(seg[c])) continue;
      for (const upper of [false, true]) out.add(at(seg.slice(0, c) + hex(seg[c], upper) + seg.slice(c + 1)));
    }
    // The whole segment encoded, and its case changed.
    out.add(at([...seg].map((ch) => hex(ch, false)).join('')));
    out.add(at(seg.toUpperCase()));
    // Doubled slash before it, a dot segment, a parent segment, and their encoded forms.
    out.add(join([...segments.slice(0, i), '', ...segments.slice(i)]));
    out.add(join([...segments.slice(0, i), '.', ...segments.slice(i)]));
    out.add(join([...segments.slice(0, i), 'x', '..', ...segments.slice(i)]));
    out.add(join([...segments.slice(0, i), '%2e', ...segments.slice(i)]));
    out.add(join([...segments.slice(0, i), 'x', '%2e%2e', ...segments.slice(i)]));
    out.add(join([...segments.slice(0, i), seg + ';x', ...segments.slice(i + 1)]));
  });
  // Slashes encoded one at a time, a leading double slash, a trailing slash, backslashes.
  for (let i = 1; i < segments.length; i++) out.add(`/${segments.slice(0, i).join('/')}%2f${segments.slice(i).join('/')}`);
  out.add(`/${path}`);
  out.add(`${path}/`);
  out.add(`${path}//`);
  out.add(path.replaceAll('/', '\\'));
  out.delete(path);
  return [...out];
}

it('every admin route declares admin access, and the table holds the routes the admin API documents', () => {
  const admin = stack.app.routeTable.filter((r) => r.access === 'admin');
  // Whatever the table says is admin includes every route under /api/admin (and nothing public hides there).
  const underAdmin = stack.app.routeTable.filter((r) => r.url.startsWith('/api/admin'));
  expect(underAdmin.length).toBeGreaterThanOrEqual(7);
  expect(underAdmin.filter((r) => r.access !== 'admin')).toEqual([]);
  expect(admin.map((r) => `${r.method} ${r.url}`)).toEqual(expect.arrayContaining(['POST /api/admin/flash-sales/:id/cancel', 'GET /api/admin/flash-sales']));
  // /metrics is guarded too.
  expect(stack.app.routeTable.find((r) => r.url === '/metrics')?.access).toBe('metrics');
});

it('docs/security.md lists every route with the access the code gives it, and no other', () => {
  const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
  const documented = [...doc.matchAll(/^\| (GET|POST|PATCH|PUT|DELETE) \| (\S+) \| (\w+) \|/gm)].map((m) => `${m[1]} ${m[2]} ${m[3]}`).sort();
  const actual = stack.app.routeTable
    .filter((r) => r.method !== 'HEAD')
    .map((r) => `${r.method} ${r.url} ${r.access}`)
    .sort();
  expect(documented).toEqual(actual);
});

it('a route that declares no access cannot be added', async () => {
  const app = Fastify();
  guardRoutes(app, stack.runtime.auth);
  expect(() => app.get('/api/admin/sneaky', async () => ({ ok: true }))).toThrow(/declares no access/);
  app.get('/api/admin/declared', { config: { access: 'admin' } }, async () => ({ ok: true }));
  expect((await app.inject({ url: '/api/admin/declared' })).statusCode).toBe(401);
  expect((await app.inject({ url: '/api/admin/declared', headers: adminHeaders })).statusCode).toBe(200);
  await app.close();
});

it('no spelling of any admin route answers without the admin token, and none changes anything', async () => {
  const sale = await createSale(stack);
  const fill = (url: string) => url.replaceAll(':id', sale.id);
  const guarded = stack.app.routeTable.filter((r) => r.access === 'admin' || r.access === 'metrics');
  // Sanity: the plain paths are refused without a token and served with it (the test can fail).
  for (const r of guarded.filter((g) => g.method === 'GET')) {
    expect((await raw('GET', fill(r.url))).status, r.url).toBe(401);
    expect((await raw('GET', fill(r.url), adminHeaders)).status, r.url).toBe(200);
  }

  const answers = new Map<number, number>();
  const leaks: string[] = [];
  let sent = 0;
  for (const r of guarded) {
    const body = r.method === 'GET' || r.method === 'HEAD' ? undefined : '{}';
    for (const path of spellings(fill(r.url))) {
      for (const headers of [{}, { authorization: 'Bearer not-the-admin-token-000000' }] as Array<Record<string, string>>) {
        const res = await raw(r.method, path, headers, body);
        sent++;
        answers.set(res.status, (answers.get(res.status) ?? 0) + 1);
        // 401 (guarded), 404 (no such route), 400 only from the URL parser before any route ran.
        const parserRefusal = res.status === 400 && !res.body.includes('"field"');
        if (res.status !== 401 && res.status !== 404 && !parserRefusal) leaks.push(`${r.method} ${path} -> ${res.status} ${res.body.slice(0, 80)}`);
      }
    }
  }
  if (process.env.TEST_LOG) console.log('answers by status', Object.fromEntries(answers));
  expect(leaks).toEqual([]);
  expect(sent).toBeGreaterThan(500);
  expect(answers.get(401)).toBeGreaterThan(50);

  // Nothing was changed by any of them: the sale is still scheduled-or-open, not cancelled.
  const after = await stack.app.inject({ url: `/api/admin/flash-sales/${sale.id}`, headers: adminHeaders });
  expect(after.json().status).not.toBe('cancelled');
  expect(after.json().name).toBe('Test drop');
  const list = await stack.app.inject({ url: '/api/admin/flash-sales', headers: adminHeaders });
  expect(list.json().sales).toHaveLength(1);
});

it('user routes refuse a caller without a user token, ticket routes a forged ticket', async () => {
  const sale = await createSale(stack);
  const user = await userToken(stack);
  const forged = 'eyJmYWtlIjp0cnVlfQ.AAAAAAAAAAAAAAAAAAAAAA';
  const shapes: Record<string, { method: string; url: string; body?: object }> = {
    enter: { method: 'POST', url: `/api/flash-sales/${sale.id}/enter-queue`, body: {} },
    preAuth: { method: 'POST', url: `/api/flash-sales/${sale.id}/pre-auth`, body: { ticket: forged, payment_token: 'tok_visa' } },
    order: { method: 'GET', url: '/api/orders/00000000-0000-4000-8000-000000000000' },
    pay: { method: 'POST', url: '/api/orders/00000000-0000-4000-8000-000000000000/pay', body: { payment_token: 'tok_visa' } },
    cancel: { method: 'POST', url: '/api/orders/00000000-0000-4000-8000-000000000000/cancel' },
  };
  for (const [name, s] of Object.entries(shapes)) {
    const res = await stack.app.inject({ method: s.method as 'GET', url: s.url, payload: s.body });
    expect([name, res.statusCode, res.json().error.code]).toEqual([name, 401, 'UNAUTHENTICATED']);
  }
  const purchase = await stack.app.inject({
    method: 'POST',
    url: `/api/flash-sales/${sale.id}/purchase`,
    headers: { 'idempotency-key': 'k' },
    payload: { ticket: forged, sku: 'phone' },
  });
  expect(purchase.statusCode).toBe(401);
  for (const route of ['status', 'events']) {
    const res = await stack.app.inject({ url: `/api/flash-sales/${sale.id}/${route}?ticket=${forged}`, headers: user.headers });
    expect([route, res.statusCode, res.json().error.code]).toEqual([route, 401, 'TICKET_INVALID']);
  }
});
