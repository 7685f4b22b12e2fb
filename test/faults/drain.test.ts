/**
 * SIGTERM drains before it closes: readiness answers 503 at once (the balancer stops sending)
 * while the node still serves what reaches it; then every event stream is told `reconnect` and
 * ended, requests in flight finish, and the process exits 0. A real process, a real signal.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { expect, it } from 'vitest';

const ADMIN = 'drain-admin-token-0123456789';
const USER_SECRET = 'drain-user-secret-0123456789abcdef0123';

it('SIGTERM: readiness 503 while still serving, streams told to reconnect, then a clean exit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stampede-drain-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      STAMPEDE_DATA_DIR: dir,
      STAMPEDE_DEMO: '0',
      STAMPEDE_DRAIN_MS: '2500',
      STAMPEDE_ADMIN_TOKEN: ADMIN,
      STAMPEDE_USER_JWT_SECRET: USER_SECRET,
      STAMPEDE_TICKET_SECRET: 'drain-ticket-secret-0123456789abcdef01',
      STAMPEDE_IP_RATE_LIMIT: '0',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setInterval(() => {
        const line = out.split('\n').find((l) => l.includes('Stampede is up'));
        if (line) {
          clearInterval(timer);
          resolve(Number(/localhost:(\d+)/.exec(JSON.parse(line).msg)![1]));
        }
      }, 50);
      void exited.then((code) => reject(new Error(`server exited ${code}: ${out}`)));
    });
    const base = `http://127.0.0.1:${port}`;
    const json = async (path: string, init: RequestInit = {}) => {
      const res = await fetch(`${base}${path}`, init);
      return { status: res.status, body: await res.json() };
    };

    const sale = await json('/api/admin/flash-sales', {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'Drain',
        starts_at: new Date(Date.now() - 1000).toISOString(),
        duration_sec: 3600,
        items: [{ sku: 'phone', name: 'Phone', price_cents: 100, currency: 'EUR', quantity: 5, per_user_limit: 1 }],
        queue: { mode: 'fifo', admission_rate_per_sec: 1, admitted_ttl_sec: 600, max_active: 1 },
        bot_protection: { pow_difficulty: 0 },
      }),
    });
    expect(sale.status).toBe(201);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('drain-user')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(USER_SECRET));
    const entered = await json(`/api/flash-sales/${sale.body.id}/enter-queue`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(entered.status).toBe(200);

    // A waiting shopper's stream, reading event names until the server ends it.
    const events: string[] = [];
    const streamEnded = new Promise<void>((resolve) => {
      http.get(`${base}/api/flash-sales/${sale.body.id}/events?ticket=${encodeURIComponent(entered.body.queue_ticket)}`, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => events.push(...[...chunk.matchAll(/^event: (.*)$/gm)].map((m) => m[1])));
        res.on('end', () => resolve());
        res.on('close', () => resolve());
      });
    });
    while (events.length === 0) await new Promise((r) => setTimeout(r, 20));
    expect((await json('/readyz')).status).toBe(200);

    child.kill('SIGTERM');
    // Within the drain window: not ready, yet still serving.
    let ready = await json('/readyz');
    for (let i = 0; i < 50 && ready.status === 200; i++) ready = await json('/readyz');
    expect([ready.status, ready.body.status]).toEqual([503, 'draining']);
    expect((await json('/healthz')).status).toBe(200);
    expect((await json(`/api/flash-sales/${sale.body.id}`)).body.id).toBe(sale.body.id);
    expect(events).not.toContain('reconnect');

    await streamEnded;
    expect(events.at(-1)).toBe('reconnect');
    expect(await exited).toBe(0);
    expect(out).toContain('draining, then finishing requests in flight');
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
