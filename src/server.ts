/**
 * The process: read the configuration, open the engine and ledger, serve, and close gracefully
 * (finish requests in flight, end event streams so clients reconnect elsewhere, release leases).
 * With `STAMPEDE_WORKERS` > 1 it is the primary of that many such processes (see cluster.ts).
 */
import cluster from 'node:cluster';
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { buildApp } from './app.js';
import { closeRequests, runPrimary, workerId } from './cluster.js';
import { ConfigError, loadConfig, refuseMadeUpSharedSecrets, type Config } from './config.js';
import { connectionCap } from './fd-limit.js';
import { Runtime } from './runtime.js';
import { seedDemoSale } from './sales/demo-sale.js';

async function main() {
  let config;
  try {
    config = loadConfig();
    refuseMadeUpSharedSecrets(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`stampede: configuration error: ${err.message}`);
      process.exit(78);
    }
    throw err;
  }
  if (config.workers > 1 && cluster.isPrimary) {
    const log = pino({ level: config.logLevel, base: { service: 'stampede', role: 'primary' } });
    runPrimary(config, log);
    return;
  }
  // One process, or one of the primary's workers (which run on Redis, so with the node's configured secrets).
  const worker = workerId();
  const requests = worker === null ? null : closeRequests();
  const log = pino({ level: config.logLevel, base: worker === null ? { service: 'stampede' } : { service: 'stampede', worker } });
  warnOfMadeUpSecrets(config, log);
  const runtime = await Runtime.create({ config, log });
  await runtime.start();
  const app = await buildApp(runtime, { logger: log });
  // Each worker answers a scrape with its own numbers: the label says whose they are.
  if (worker !== null) runtime.metrics.registry.setDefaultLabels({ worker: String(worker) });

  // The workers share one ledger: the first seeds the demo sale, not every one of them.
  if (config.demo && (worker === null || worker === 1)) {
    const sale = await seedDemoSale(runtime);
    if (sale) log.info({ saleId: sale.id, startsAt: sale.startsAt }, 'demo sale created: it opens a minute from now');
  }

  // A worker's SIGTERM and SIGINT come through `requests` (one close however many arrive).
  let requested: NodeJS.Signals | undefined;
  const closer = closeWithGrace({ delay: config.drainMs + 10_000, skip: requests ? ['SIGTERM', 'SIGINT'] : [] }, async ({ err, ...out }) => {
    const signal = out.signal ?? requested;
    if (err) log.error({ err }, 'closing after an error');
    else log.info({ signal, drainMs: config.drainMs }, 'closing: readiness now 503; draining, then finishing requests in flight');
    // First the balancer learns (readiness 503) while this node still serves; then streams are
    // told to reconnect elsewhere, the port closes and requests in flight finish.
    runtime.draining = true;
    if (!err && config.drainMs > 0) await new Promise((r) => setTimeout(r, config.drainMs));
    await app.close();
    await runtime.close();
  });
  requests?.onClose((signal) => {
    requested = signal;
    void closer.close();
  });

  const cap = connectionCap(config.maxConnections);
  if (cap !== null) app.server.maxConnections = cap;
  // A deep accept backlog: at the opening second thousands connect at once.
  await app.listen({ port: config.port, host: config.host, backlog: 4096 });
  const local = `http://localhost:${(app.server.address() as { port: number }).port}`;
  log.info(
    { engine: runtime.engine.kind, ledger: runtime.ledger.kind, maxConnections: cap, pid: process.pid },
    `Stampede is up: shop ${local}/  admin ${local}/admin  API ${local}/docs/openapi.json`,
  );
  if (config.generatedSecrets.includes('STAMPEDE_ADMIN_TOKEN')) log.info(`demo admin token (this run only): ${config.adminToken}`);
}

function warnOfMadeUpSecrets(config: Readonly<Config>, log: pino.Logger) {
  if (config.generatedSecrets.length) {
    log.warn({ secrets: config.generatedSecrets }, 'demo mode: made up secrets that were not configured (they change on every start)');
  }
}

main().catch((err) => {
  console.error('stampede: failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
