/**
 * The process: read the configuration, open the engine and ledger, serve, and close gracefully
 * (finish requests in flight, end event streams so clients reconnect elsewhere, release leases).
 */
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { connectionCap } from './fd-limit.js';
import { Runtime } from './runtime.js';
import { seedDemoSale } from './sales/demo-sale.js';

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`stampede: configuration error: ${err.message}`);
      process.exit(78);
    }
    throw err;
  }
  const log = pino({ level: config.logLevel, base: { service: 'stampede' } });
  if (config.generatedSecrets.length) {
    log.warn({ secrets: config.generatedSecrets }, 'demo mode: made up secrets that were not configured (they change on every start)');
  }
  const runtime = await Runtime.create({ config, log });
  await runtime.start();
  const app = await buildApp(runtime, { logger: log });

  if (config.demo) {
    const sale = await seedDemoSale(runtime);
    if (sale) log.info({ saleId: sale.id, startsAt: sale.startsAt }, 'demo sale created: it opens a minute from now');
  }

  closeWithGrace({ delay: config.drainMs + 10_000 }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'closing after an error');
    else log.info({ signal, drainMs: config.drainMs }, 'closing: readiness now 503; draining, then finishing requests in flight');
    // First the balancer learns (readiness 503) while this node still serves; then streams are
    // told to reconnect elsewhere, the port closes and requests in flight finish.
    runtime.draining = true;
    if (!err && config.drainMs > 0) await new Promise((r) => setTimeout(r, config.drainMs));
    await app.close();
    await runtime.close();
  });

  const cap = connectionCap(config.maxConnections);
  if (cap !== null) app.server.maxConnections = cap;
  // A deep accept backlog: at the opening second thousands connect at once.
  await app.listen({ port: config.port, host: config.host, backlog: 4096 });
  const local = `http://localhost:${(app.server.address() as { port: number }).port}`;
  log.info(
    { engine: runtime.engine.kind, ledger: runtime.ledger.kind, maxConnections: cap },
    `Stampede is up: shop ${local}/  admin ${local}/admin  API ${local}/docs/openapi.json`,
  );
  if (config.generatedSecrets.includes('STAMPEDE_ADMIN_TOKEN')) log.info(`demo admin token (this run only): ${config.adminToken}`);
}

main().catch((err) => {
  console.error('stampede: failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
