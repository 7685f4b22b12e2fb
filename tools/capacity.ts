/**
 * `npm run bench -- --connections 20000` (or `stampede capacity --connections N`): how many
 * waiting shoppers' event streams one node holds, what each costs it in memory (the node's
 * resident set and V8 heap before and after, divided by the streams), and how long a sold-out
 * takes to reach all of them. The node is a child process (the compiled build, `dist/server.js`, embedded engine by
 * default); the streams are held by this process, spread over loopback source addresses so no
 * address runs out of ephemeral ports.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SignJWT } from 'jose';
import { Args, UsageError } from './args.js';
import { fileLimit, fileLimitHint } from '../src/fd-limit.js';
import { Samples } from './samples.js';
import { fdLimitOf, rssOf, serve } from './bench/processes.js';
import { Client, now } from './rehearsal/client.js';
import { loopback } from './rehearsal/drop.js';

/**
 * Streams per source address. Connecting from a chosen address binds a port for that address
 * whatever the destination, so its ~28,000 ephemeral ports (32768–60999), less those still in
 * TIME_WAIT from an earlier run, are all it has; and each run starts from another block.
 */
const PER_ADDRESS = 5_000;
const ADDRESS_BLOCK = 30 + Math.floor(Math.random() * 100);
const MiB = 1024 * 1024;

async function metric(url: string, name: string, token: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

export async function capacityMain(argv: string[]): Promise<number> {
  let wanted: number;
  let out: string;
  let force: boolean;
  let hold: number;
  try {
    const a = new Args(argv);
    wanted = a.count('connections', 20_000, 1);
    out = a.string('out', 'reports');
    force = a.flag('force');
    hold = a.duration('hold', 5000);
    a.rejectUnknown();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`stampede capacity: ${err.message}\n`);
      return 64;
    }
    throw err;
  }
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const admin = `cap-admin-${randomBytes(8).toString('hex')}`;
  const secret = randomBytes(24).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'stampede-capacity-'));
  const node = await serve(
    'dist/server.js',
    {
      STAMPEDE_DATA_DIR: dir,
      STAMPEDE_IP_RATE_LIMIT: '0',
      STAMPEDE_ADMIN_TOKEN: admin,
      STAMPEDE_USER_JWT_SECRET: secret,
      STAMPEDE_TICKET_SECRET: randomBytes(24).toString('hex'),
      STAMPEDE_DEMO: '0',
      LOG_LEVEL: 'warn',
    },
    '/readyz',
  );
  const client = new Client(node.url, { keepAliveMs: 10_000 });
  try {
    // Both ends need a file per connection: fit the count to the smaller limit, and say so.
    const mine = fileLimit()?.soft ?? Infinity;
    const theirs = fdLimitOf(node.pid) || Infinity;
    const fits = Math.min(mine, theirs) - 500;
    let n = wanted;
    if (n > fits && !force) {
      log(
        `stampede capacity: ${fileLimitHint(wanted + 500, 'npm run bench -- --connections ' + wanted) ?? `the node may open ${theirs} files`}; measuring ${fits} streams instead (--force to try anyway)`,
      );
      n = fits;
    }
    const sign = async (sub: string) =>
      `Bearer ${await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('2h').sign(new TextEncoder().encode(secret))}`;
    const adminH = { authorization: `Bearer ${admin}` };
    const sale = await client.call('admin', 'POST', '/api/admin/flash-sales', {
      headers: adminH,
      untimed: true,
      json: {
        name: 'capacity',
        starts_at: new Date(Date.now() - 1000).toISOString(),
        duration_sec: 7200,
        items: [{ sku: 'unit', name: 'Unit', price_cents: 100, currency: 'EUR', quantity: 1, per_user_limit: 1 }],
        queue: { mode: 'fifo', admission_rate_per_sec: 1 },
        bot_protection: { pow_difficulty: 0 },
      },
    });
    if (sale.status !== 201) throw new Error(`creating the sale failed: ${sale.status} ${JSON.stringify(sale.body)}`);
    const saleId = sale.body.id as string;
    const buyer = await sign('cap-buyer');
    const buyerTicket = (await client.call('enter', 'POST', `/api/flash-sales/${saleId}/enter-queue`, { headers: { authorization: buyer }, json: {} })).body
      .queue_ticket;

    log(`entering ${n} waiting users`);
    const tickets: string[] = new Array(n);
    await pool(n, 64, async (i) => {
      const r = await client.call('enter', 'POST', `/api/flash-sales/${saleId}/enter-queue`, { headers: { authorization: await sign(`cap-${i}`) }, json: {} });
      if (r.status !== 200) throw new Error(`enter-queue failed: ${r.status} ${JSON.stringify(r.body)}`);
      tickets[i] = r.body.queue_ticket;
    });
    await new Promise((r) => setTimeout(r, 2000));
    const before = { rss: rssOf(node.pid), heap: await metric(node.url, 'nodejs_heap_size_used_bytes', admin) };

    // Memory is read after each half is open, once the node has been idle a moment: the cost of
    // the second half is the cost per stream, free of the garbage the entering left behind.
    const soldOutAt = new Float64Array(n);
    let opened = 0;
    let failed = 0;
    const handles: Array<{ close(): void }> = [];
    const started = now();
    const open = (from: number, to: number) =>
      pool(
        to - from,
        256,
        (k) =>
          new Promise<void>((resolve) => {
            const i = from + k;
            let first = true;
            handles.push(
              client.stream(
                'events',
                `/api/flash-sales/${saleId}/events?ticket=${encodeURIComponent(tickets[i])}`,
                client.agent(loopback(ADDRESS_BLOCK, Math.floor(i / PER_ADDRESS))),
                (event) => {
                  if (first) {
                    first = false;
                    opened++;
                    resolve();
                  }
                  if (event === 'sold_out' && !soldOutAt[i]) soldOutAt[i] = now();
                },
                (why) => {
                  if (first) {
                    first = false;
                    failed++;
                    if (failed <= 3) log(`stream failed: ${typeof why === 'object' ? JSON.stringify(why) : why}`);
                    resolve();
                  }
                },
              ),
            );
          }),
      );
    const settle = async () => {
      await new Promise((r) => setTimeout(r, hold));
      return { rss: rssOf(node.pid), heap: await metric(node.url, 'nodejs_heap_size_used_bytes', admin), streams: opened };
    };
    const half = Math.floor(n / 2);
    log(`opening ${half} event streams`);
    await open(0, half);
    const middle = await settle();
    log(`opening ${n - half} more`);
    await open(half, n);
    const openMs = now() - started;
    const after = await settle();
    const added = after.streams - middle.streams;
    const sse = await metric(node.url, 'stampede_sse_connections', admin);

    log('selling the last unit: timing the sold-out to every stream');
    const t0 = now();
    const bought = await client.call('purchase', 'POST', `/api/flash-sales/${saleId}/purchase`, {
      headers: { authorization: buyer, 'idempotency-key': 'cap' },
      json: { ticket: buyerTicket, sku: 'unit', quantity: 1, payment_token: 'tok_visa' },
    });
    const t1 = now();
    for (let waited = 0; waited < 15_000; waited += 100) {
      let told = 0;
      for (let i = 0; i < n; i++) if (soldOutAt[i]) told++;
      if (told >= opened) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const delays = new Samples();
    let told = 0;
    for (let i = 0; i < n; i++)
      if (soldOutAt[i]) {
        told++;
        delays.add(soldOutAt[i] - t0);
      }
    for (const h of handles) h.close();

    const result = {
      at: new Date().toISOString(),
      asked: wanted,
      streams: opened,
      failed,
      node_sse_gauge: sse,
      open_seconds: openMs / 1000,
      node_rss_mib: { before: before.rss / MiB, half: middle.rss / MiB, after: after.rss / MiB },
      node_heap_mib: { before: before.heap / MiB, half: middle.heap / MiB, after: after.heap / MiB },
      per_stream_kib: { rss: (after.rss - middle.rss) / added / 1024, heap: (after.heap - middle.heap) / added / 1024 },
      projected_100k_gib: (before.rss + ((after.rss - middle.rss) / added) * 100_000) / 1024 ** 3,
      sold_out: { purchase_status: bought.status, purchase_ms: t1 - t0, told, of: opened, after_purchase_sent_ms: delays.summary() },
      file_limits: { rehearsal: mine, node: theirs },
    };
    const f = (x: number, d = 1) => x.toFixed(d);
    process.stdout.write(
      [
        `streams held: ${opened} of ${n}${failed ? ` (${failed} failed)` : ''}, opened in ${f(openMs / 1000)} s; the node counts ${sse}`,
        `node memory: RSS ${f(before.rss / MiB)} (no streams) → ${f(middle.rss / MiB)} (${middle.streams}) → ${f(after.rss / MiB)} MiB (${after.streams}); heap ${f(before.heap / MiB)} → ${f(middle.heap / MiB)} → ${f(after.heap / MiB)} MiB`,
        `per stream (the second ${added}): ${f(result.per_stream_kib.rss, 2)} KiB resident, ${f(result.per_stream_kib.heap, 2)} KiB heap → 100,000 streams ≈ ${f(result.projected_100k_gib, 2)} GiB resident (target < 4 GiB)`,
        `sold-out reached ${told}/${opened} streams: p50 ${f(delays.quantile(0.5))} ms, p99 ${f(delays.quantile(0.99))} ms, max ${f(delays.max)} ms after the last unit's purchase was sent (its 201 took ${f(t1 - t0)} ms; the hold sells out the sale before payment is captured) (target ≤ 1 s)`,
      ].join('\n') + '\n',
    );
    mkdirSync(out, { recursive: true });
    const file = join(out, `capacity-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2));
    log(`results: ${file}`);
    return failed ? 2 : 0;
  } finally {
    await client.close();
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  capacityMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`stampede capacity: ${err.stack ?? err}\n`);
      process.exit(70);
    },
  );
}
