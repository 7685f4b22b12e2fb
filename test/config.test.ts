/**
 * Configuration (SPEC §5): every wrong value stops the server with one line naming the variable;
 * demo mode makes up missing secrets and says which; production refuses to start without them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, refuseMadeUpSharedSecrets } from '../src/config.js';
import { connectionCap } from '../src/fd-limit.js';

const SECRETS = {
  STAMPEDE_ADMIN_TOKEN: 'admin-token-0123456789',
  STAMPEDE_USER_JWT_SECRET: 'user-secret-0123456789abcdef0123456789',
  STAMPEDE_TICKET_SECRET: 'ticket-secret-0123456789abcdef012345678',
};

describe('configuration', () => {
  it('runs with nothing set: embedded defaults, demo mode, made-up secrets named', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      redisUrl: null,
      databaseUrl: null,
      dataDir: './data',
      demo: true,
      redisPrefix: 'stampede',
      ipRateLimit: 50,
      paymentGateway: 'sandbox',
      sandboxLatencyMs: 25,
    });
    expect(c.generatedSecrets.sort()).toEqual(['STAMPEDE_ADMIN_TOKEN', 'STAMPEDE_TICKET_SECRET', 'STAMPEDE_USER_JWT_SECRET']);
    // Made up afresh each time, never a fixed default someone could guess.
    expect(loadConfig({}).adminToken).not.toBe(c.adminToken);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('trusts proxies by hop count or by address, never every hop', () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ STAMPEDE_TRUST_PROXY: '0' }).trustProxy).toBe(false);
    expect(loadConfig({ STAMPEDE_TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ STAMPEDE_TRUST_PROXY: '10.0.0.0/8, 192.168.1.7,::1' }).trustProxy).toEqual(['10.0.0.0/8', '192.168.1.7', '::1']);
    // Event streams per address: capped by default, uncapped where every request comes from one address.
    expect(loadConfig({}).streamsPerAddress).toBe(200);
    expect(loadConfig({ STAMPEDE_IP_RATE_LIMIT: '0' }).streamsPerAddress).toBe(0);
  });

  it('production refuses to start without each secret, and demo is off there', () => {
    for (const name of Object.keys(SECRETS)) {
      const env: Record<string, string> = { NODE_ENV: 'production', ...SECRETS };
      delete env[name];
      expect(() => loadConfig(env)).toThrow(new ConfigError(`${name} is required when NODE_ENV=production`));
    }
    const c = loadConfig({ NODE_ENV: 'production', ...SECRETS });
    expect(c.demo).toBe(false);
    expect(c.generatedSecrets).toEqual([]);
  });

  it.each([
    ['PORT', '70000', /PORT must be an integer from 0 to 65535/],
    ['PORT', 'http', /PORT must be an integer/],
    ['REDIS_URL', 'localhost:6379', /REDIS_URL/],
    ['REDIS_URL', 'http://127.0.0.1:6379', /REDIS_URL must use redis: or rediss:/],
    ['DATABASE_URL', 'mysql://root@127.0.0.1/x', /DATABASE_URL must use postgres: or postgresql:/],
    ['REDIS_CLUSTER_NODES', '10.0.0.1', /REDIS_CLUSTER_NODES must be host:port/],
    ['STAMPEDE_REDIS_PREFIX', 'has space', /STAMPEDE_REDIS_PREFIX/],
    ['STAMPEDE_DEMO', 'maybe', /STAMPEDE_DEMO must be 1 or 0/],
    ['STAMPEDE_IP_RATE_LIMIT', '-1', /STAMPEDE_IP_RATE_LIMIT must be an integer/],
    ['STAMPEDE_PAYMENT_GATEWAY', 'paypal', /STAMPEDE_PAYMENT_GATEWAY must be sandbox or stripe/],
    ['STAMPEDE_ADMIN_TOKEN', 'short', /STAMPEDE_ADMIN_TOKEN must be at least 16 characters/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL is not a pino level/],
    ['STAMPEDE_SANDBOX_LATENCY_MS', '0.5', /STAMPEDE_SANDBOX_LATENCY_MS must be an integer from 0 to 60000/],
    ['STAMPEDE_SANDBOX_TIMEOUT_PERCENT', '150', /STAMPEDE_SANDBOX_TIMEOUT_PERCENT must be an integer from 0 to 100/],
    ['STAMPEDE_TRUST_PROXY', 'true', /STAMPEDE_TRUST_PROXY must be a hop count/],
    ['STAMPEDE_TRUST_PROXY', '10.0.0.0/33', /STAMPEDE_TRUST_PROXY must be a hop count/],
    ['STAMPEDE_TRUST_PROXY', '10.0.0.0/8,lb.internal', /STAMPEDE_TRUST_PROXY .*"lb.internal"/],
    ['STAMPEDE_TRUST_PROXY', '99', /STAMPEDE_TRUST_PROXY must be a hop count from 0 to 10/],
    ['STAMPEDE_METRICS_TOKEN', 'short', /STAMPEDE_METRICS_TOKEN must be at least 16 characters/],
    ['STAMPEDE_STREAMS_PER_ADDRESS', '-3', /STAMPEDE_STREAMS_PER_ADDRESS must be an integer/],
    ['STAMPEDE_WORKERS', '0', /STAMPEDE_WORKERS must be auto or an integer from 1 to 1024, got "0"/],
    ['STAMPEDE_WORKERS', 'all', /STAMPEDE_WORKERS must be auto or an integer from 1 to 1024/],
    [
      'STAMPEDE_WORKERS',
      '2',
      /^STAMPEDE_WORKERS=2 \(2 processes\) needs REDIS_URL .* and DATABASE_URL: the embedded engine and PGlite live in one process's memory/,
    ],
  ])('%s=%s is refused with one line naming it', (name, value, message) => {
    let err: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });

  it('STAMPEDE_WORKERS: one process by default; a count, or auto (a process per core), on Redis and PostgreSQL only', () => {
    const shared = { REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://postgres@127.0.0.1/stampede' };
    expect(loadConfig({}).workers).toBe(1);
    expect(loadConfig({ STAMPEDE_WORKERS: '1' }).workers).toBe(1);
    expect(loadConfig({ ...shared, STAMPEDE_WORKERS: '3' }).workers).toBe(3);
    expect(loadConfig({ ...shared, STAMPEDE_WORKERS: 'auto' }).workers).toBe(availableParallelism());
    expect(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000', DATABASE_URL: shared.DATABASE_URL, STAMPEDE_WORKERS: '2' }).workers).toBe(2);
    // Half the shared stack is still one process's memory for the other half.
    expect(() => loadConfig({ REDIS_URL: shared.REDIS_URL, STAMPEDE_WORKERS: '2' })).toThrow(/needs REDIS_URL .* and DATABASE_URL/);
    expect(() => loadConfig({ DATABASE_URL: shared.DATABASE_URL, STAMPEDE_WORKERS: '2' })).toThrow(/needs REDIS_URL .* and DATABASE_URL/);
  });

  it('a node on Redis refuses made-up secrets: every node on one Redis must share them', () => {
    const onRedis = [{ REDIS_URL: 'redis://127.0.0.1:6379' }, { REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7000' }];
    for (const shared of onRedis) {
      // Demo mode makes them up per node: the other nodes would answer this one's shoppers 401.
      expect(() => refuseMadeUpSharedSecrets(loadConfig(shared))).toThrow(
        /^STAMPEDE_ADMIN_TOKEN, STAMPEDE_USER_JWT_SECRET, STAMPEDE_TICKET_SECRET must be set on a node that uses Redis/,
      );
      // One left out is named.
      const { STAMPEDE_TICKET_SECRET: _left, ...two } = SECRETS;
      expect(() => refuseMadeUpSharedSecrets(loadConfig({ ...shared, ...two }))).toThrow(/^STAMPEDE_TICKET_SECRET must be set on a node that uses Redis/);
      expect(() => refuseMadeUpSharedSecrets(loadConfig({ ...shared, ...SECRETS }))).not.toThrow();
    }
    // The embedded engine is the process's own: demo mode may make them up.
    const embedded = loadConfig({});
    expect(embedded.generatedSecrets).toHaveLength(3);
    expect(() => refuseMadeUpSharedSecrets(embedded)).not.toThrow();
  });

  it('stripe needs its key', () => {
    expect(() => loadConfig({ STAMPEDE_PAYMENT_GATEWAY: 'stripe' })).toThrow(/STRIPE_API_KEY is required/);
    expect(loadConfig({ STAMPEDE_PAYMENT_GATEWAY: 'stripe', STRIPE_API_KEY: 'sk_test_x' }).paymentGateway).toBe('stripe');
  });

  it('the server prints the one line and exits 78 on a wrong value, before opening anything', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { ...process.env, PORT: 'eighty', STAMPEDE_DATA_DIR: '/nonexistent/never-created' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(78);
    expect(run.stderr.trim()).toBe('stampede: configuration error: PORT must be an integer from 0 to 65535, got "eighty"');
  }, 40_000);
});

describe('connection cap', () => {
  it('is the configured figure, else the file limit less a reserve, never below 64', () => {
    expect(connectionCap(500, { soft: 20_000, hard: 20_000 })).toBe(500);
    expect(connectionCap(null, { soft: 20_000, hard: 20_000 })).toBe(18_976);
    expect(connectionCap(null, { soft: 256, hard: 4096 })).toBe(64);
    expect(connectionCap(null, { soft: Infinity, hard: Infinity })).toBeNull();
    expect(connectionCap(null, null)).toBeNull();
    expect(loadConfig({ STAMPEDE_MAX_CONNECTIONS: '3' }).maxConnections).toBe(3);
    expect(loadConfig({}).maxConnections).toBeNull();
    expect(() => loadConfig({ STAMPEDE_MAX_CONNECTIONS: '0' })).toThrow(/STAMPEDE_MAX_CONNECTIONS must be an integer from 1/);
  });

  it('a node at its cap closes a new connection at once and serves again when one frees', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stampede-cap-'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', STAMPEDE_MAX_CONNECTIONS: '3', STAMPEDE_DATA_DIR: dir, STAMPEDE_DEMO: '0', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const up = await new Promise<{ port: number; cap: number }>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (b: Buffer) => {
          out += b.toString();
          const line = out.split('\n').find((l) => l.includes('Stampede is up'));
          if (line) {
            const j = JSON.parse(line);
            resolve({ port: Number(/localhost:(\d+)/.exec(j.msg)![1]), cap: j.maxConnections });
          }
        });
        child.on('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
      });
      expect(up.cap).toBe(3);
      // Three clients hold a kept-alive connection each, having been answered once.
      const ask = (s: Socket) =>
        new Promise<string>((resolve) => {
          s.once('data', (b) => resolve(b.toString().split('\r\n')[0]));
          s.once('close', () => resolve('closed'));
          s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        });
      // A connection the node closes may reset: that is the answer here, not an error.
      const open = () =>
        new Promise<Socket>((resolve) => {
          const s = connect(up.port, '127.0.0.1', () => resolve(s));
          s.on('error', () => {});
        });
      const held = [await open(), await open(), await open()];
      for (const s of held) expect(await ask(s)).toBe('HTTP/1.1 200 OK');
      // A fourth is closed without an answer; the others keep working.
      expect(await ask(await open())).toBe('closed');
      expect(await ask(held[0])).toBe('HTTP/1.1 200 OK');
      // One leaves: a newcomer is served.
      held[2].destroy();
      await new Promise((r) => setTimeout(r, 200));
      const late = await open();
      expect(await ask(late)).toBe('HTTP/1.1 200 OK');
      for (const s of [...held, late]) s.destroy();
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
