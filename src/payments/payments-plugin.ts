/**
 * The payment tier as a Fastify plugin: pre-authorisation (`payments`); the void sweeper runs on
 * one node at a time while the app is up.
 */
import fp from 'fastify-plugin';
import { leasedJobWhileUp } from '../engine/leased-loop.js';
import type { Runtime } from '../runtime.js';

export const paymentsPlugin = fp<{ runtime: Runtime }>(
  async (app, { runtime }) => {
    app.decorate('payments', runtime.payments);
    if (!runtime.workers) return;
    leasedJobWhileUp(app, runtime, 'sweeper:voids', () => runtime.voidSweeper.sweep());
  },
  { name: 'payments' },
);
