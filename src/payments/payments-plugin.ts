/**
 * The payment tier as a Fastify plugin: pre-authorisation (`payments`); the void sweeper runs on
 * one node at a time while the app is up.
 */
import fp from 'fastify-plugin';
import { LeasedLoop, whileUp } from '../engine/leased-loop.js';
import type { Runtime } from '../runtime.js';

export const paymentsPlugin = fp<{ runtime: Runtime }>(
  async (app, { runtime }) => {
    app.decorate('payments', runtime.payments);
    if (!runtime.workers) return;
    whileUp(
      app,
      new LeasedLoop(runtime.engine, {
        name: 'sweeper:voids',
        owner: runtime.nodeId,
        everyMs: 1000,
        leaseMs: 5000,
        log: runtime.log,
        run: () => runtime.voidSweeper.sweep(),
      }),
    );
  },
  { name: 'payments' },
);
