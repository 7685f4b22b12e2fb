/** The engine as a Fastify plugin: its health for `/readyz` (`engineHealth`). */
import fp from 'fastify-plugin';
import type { Runtime } from '../runtime.js';

export const enginePlugin = fp<{ runtime: Runtime }>(
  async (app, { runtime }) => {
    app.decorate('engineHealth', { kind: runtime.engine.kind, ping: () => runtime.engine.ping() });
  },
  { name: 'engine' },
);
