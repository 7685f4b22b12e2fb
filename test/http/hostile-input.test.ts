/**
 * What a hostile client can send past the router: a forged X-Forwarded-For to pick its own
 * address, a body far over the limit, a scrape of /metrics, and a ticket that should never
 * land in the access log.
 */
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { ADMIN_TOKEN, adminHeaders, createSale, enter, openStack, userToken, type Stack } from '../support/stack.js';

const stacks: Stack[] = [];
const open = async (env: Record<string, string>, opts: Parameters<typeof openStack>[1] = {}) => {
  const s = (await openStack('embedded', { ...opts, env }))!;
  stacks.push(s);
  return s;
};
afterEach(async () => {
  while (stacks.length) await stacks.pop()!.close();
});

it.each([
  ['a hop count', '1'],
  ['the proxy CIDR', '127.0.0.0/8'],
])('behind a trusted proxy (%s), a forged X-Forwarded-For does not buy a fresh address', async (_name, trust) => {
  const s = await open({ STAMPEDE_TRUST_PROXY: trust, STAMPEDE_IP_RATE_LIMIT: '5' });
  // The proxy appends the address it saw (9.9.9.9); whatever the client wrote is to its left.
  const answers = [];
  for (let i = 0; i < 20; i++) {
    const res = await s.app.inject({ url: '/api/flash-sales', headers: { 'x-forwarded-for': `10.0.${i}.1, 9.9.9.9` } });
    answers.push(res.statusCode);
  }
  expect(answers.filter((c) => c === 429).length).toBeGreaterThan(5);
  // Another real client behind the same proxy is not limited by the first one.
  expect((await s.app.inject({ url: '/api/flash-sales', headers: { 'x-forwarded-for': '8.8.8.8' } })).statusCode).toBe(200);
});

it('without a trusted proxy, X-Forwarded-For is ignored altogether', async () => {
  const s = await open({ STAMPEDE_IP_RATE_LIMIT: '5' });
  const answers = [];
  for (let i = 0; i < 20; i++) answers.push((await s.app.inject({ url: '/api/flash-sales', headers: { 'x-forwarded-for': `10.1.${i}.1` } })).statusCode);
  expect(answers.filter((c) => c === 429).length).toBeGreaterThan(5);
});

it('a body over the limit is 413 PAYLOAD_TOO_LARGE, in the one error shape', async () => {
  const s = await open({});
  const sale = await createSale(s);
  const user = await userToken(s);
  const res = await s.app.inject({
    method: 'POST',
    url: `/api/flash-sales/${sale.id}/enter-queue`,
    headers: { ...user.headers, 'content-type': 'application/json' },
    payload: JSON.stringify({ fingerprint: 'x'.repeat(2 * 1024 * 1024) }),
  });
  expect([res.statusCode, res.json().error.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
  const xml = await s.app.inject({
    method: 'POST',
    url: `/api/flash-sales/${sale.id}/enter-queue`,
    headers: { ...user.headers, 'content-type': 'application/xml' },
    payload: '<x/>',
  });
  expect([xml.statusCode, xml.json().error.code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
});

it('/metrics wants its token: the admin token by default, STAMPEDE_METRICS_TOKEN when set', async () => {
  const plain = await open({});
  expect((await plain.app.inject({ url: '/metrics' })).statusCode).toBe(401);
  expect((await plain.app.inject({ url: '/metrics', headers: { authorization: 'Bearer guess-guess-guess-guess' } })).statusCode).toBe(401);
  expect((await plain.app.inject({ url: '/metrics', headers: adminHeaders })).statusCode).toBe(200);

  const scraper = 'scrape-token-0123456789';
  const own = await open({ STAMPEDE_METRICS_TOKEN: scraper });
  expect((await own.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${scraper}` } })).statusCode).toBe(200);
  expect((await own.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).statusCode).toBe(401);
});

it('a queue ticket never reaches the access log whole (debug writes a line per request; info none for a fast one)', async () => {
  const lines: string[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        lines.push(line);
      },
    },
  );
  const s = await open({}, { appLogger: logger });
  const sale = await createSale(s);
  const ticket = (await enter(s, sale.id, await userToken(s))).queue_ticket;
  const secretPart = ticket.slice(-22);
  await s.app.inject({ url: `/api/flash-sales/${sale.id}/status?ticket=${encodeURIComponent(ticket)}&x=${randomUUID()}` });
  await s.app.inject({ url: `/api/flash-sales/${sale.id}/status?x=1&ticket=${encodeURIComponent(ticket)}` });
  const logged = lines.filter((l) => l.includes('/status?'));
  expect(logged.length).toBeGreaterThanOrEqual(2);
  for (const line of lines) expect(line).not.toContain(secretPart);
  expect(logged.join('\n')).toContain('[redacted]');

  const quiet: string[] = [];
  const atInfo = await open({}, { appLogger: pino({ level: 'info' }, { write: (line: string) => void quiet.push(line) }) });
  await atInfo.app.inject({ url: `/api/flash-sales/${sale.id}` });
  expect(quiet.filter((l) => l.includes('/api/flash-sales/'))).toEqual([]);
});
