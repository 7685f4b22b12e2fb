/**
 * The sales tier as a Fastify plugin: sale lifecycle (`sales`) and the admin's read model
 * (`saleStats`); every node keeps following current sales while the app is up.
 */
import fp from 'fastify-plugin';
import type { Runtime } from '../runtime.js';

export const salesPlugin = fp<{ runtime: Runtime }>(
  async (app, { runtime }) => {
    app.decorate('sales', runtime.sales);
    app.decorate('saleStats', runtime.stats);
    if (!runtime.workers) return;
    let timer: NodeJS.Timeout | null = null;
    app.addHook('onReady', async () => {
      timer = setInterval(() => {
        runtime.follower.discover().catch((err: unknown) => runtime.log.warn({ err }, 'following sales failed; trying again in 5 s'));
      }, 5000);
      timer.unref();
    });
    app.addHook('onClose', async () => {
      if (timer) clearInterval(timer);
    });
  },
  { name: 'sales' },
);
