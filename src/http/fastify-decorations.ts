/**
 * What the app decorates Fastify with, declared once where routes and the app can both see it
 * without importing each other.
 */
import type { Runtime } from '../runtime.js';
import type { Defence } from '../defence/defence-plugin.js';
import type { RouteEntry } from './access.js';

/** A dependency `/readyz` pings. */
export interface Health {
  kind: string;
  ping(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    runtime: Runtime;
    /** Every route with the access it declares (see http/access.ts). */
    routeTable: RouteEntry[];
    // One narrow service per tier, decorated by the tier's plugin:
    queue: Runtime['queue'];
    streams: Runtime['sse'];
    checkout: Runtime['checkout'];
    payments: Runtime['payments'];
    sales: Runtime['sales'];
    saleStats: Runtime['stats'];
    defence: Defence;
    engineHealth: Health;
    ledgerHealth: Health;
  }
}
