/**
 * The checkout tier as a Fastify plugin: purchase, orders and payment of reserved orders
 * (`checkout`); the hold sweeper runs on one node at a time while the app is up.
 */
import fp from 'fastify-plugin';
import { leasedJobWhileUp } from '../engine/leased-loop.js';
import type { Runtime } from '../runtime.js';

export const checkoutPlugin = fp<{ runtime: Runtime }>(
  async (app, { runtime }) => {
    app.decorate('checkout', runtime.checkout);
    if (!runtime.workers) return;
    leasedJobWhileUp(app, runtime, 'sweeper:holds', () => runtime.holdSweeper.sweep());
  },
  { name: 'checkout' },
);
