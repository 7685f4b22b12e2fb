/**
 * The checkout tier as a Fastify plugin: purchase, orders and payment of reserved orders
 * (`checkout`); the hold sweeper and the drift check run on one node at a time while the app is up.
 */
import fp from 'fastify-plugin';
import { leasedJobWhileUp } from '../engine/leased-loop.js';
import type { Runtime } from '../runtime.js';

export const checkoutPlugin = fp<{ runtime: Runtime }>(
  async (app, { runtime }) => {
    app.decorate('checkout', runtime.checkout);
    if (!runtime.workers) return;
    leasedJobWhileUp(app, runtime, 'sweeper:holds', () => runtime.holdSweeper.sweep());
    const every = runtime.config.driftCheckSec * 1000;
    if (every > 0) {
      leasedJobWhileUp(
        app,
        runtime,
        'drift-check',
        async () => {
          for (const saleId of runtime.monitor.watched()) {
            // One sale that cannot be checked now (a repair of it running elsewhere, an outage) must not skip the others.
            const report = await runtime.driftCheck.check(saleId, { fix: true }).catch((err: unknown) => {
              runtime.log.warn({ err, saleId }, 'drift check failed; the next one tries again');
              return null;
            });
            if (report && (report.drifted || report.engine !== 'ok')) runtime.metrics.driftRepairs.inc({ sale: saleId, fixed: String(report.fixed) });
          }
        },
        every,
      );
    }
  },
  { name: 'checkout' },
);
