/**
 * The ledger as a Fastify plugin: its health for `/readyz` (`ledgerHealth`); the outbox relay to
 * NATS runs on its own loop and lease, so a slow stream never delays a sweeper.
 */
import fp from 'fastify-plugin';
import { leasedJobWhileUp } from '../engine/leased-loop.js';
import type { Runtime } from '../runtime.js';

export const ledgerPlugin = fp<{ runtime: Runtime }>(
  async (app, { runtime }) => {
    app.decorate('ledgerHealth', { kind: runtime.ledger.kind, ping: () => runtime.ledger.ping() });
    const relay = runtime.outbox;
    if (!runtime.workers || !relay) return;
    leasedJobWhileUp(app, runtime, 'outbox', () => relay.relay());
  },
  { name: 'ledger' },
);
