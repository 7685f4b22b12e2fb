/**
 * The defence tier as a Fastify plugin (`defence`): per-node and shared rate limits, and the
 * proof-of-work challenge. CAPTCHA and bot signals act inside the queue's entry gate.
 */
import fp from 'fastify-plugin';
import type { Runtime } from '../runtime.js';

export interface Defence {
  /** Per-node limits: addresses, reads. */
  readonly local: Runtime['localLimits'];
  /** Limits shared by every node through the engine: purchase, enter. */
  readonly shared: Runtime['sharedLimits'];
  readonly pow: Runtime['pow'];
}

export const defencePlugin = fp<{ runtime: Runtime }>(
  async (app, { runtime }) => {
    const defence: Defence = { local: runtime.localLimits, shared: runtime.sharedLimits, pow: runtime.pow };
    app.decorate('defence', defence);
  },
  { name: 'defence' },
);
