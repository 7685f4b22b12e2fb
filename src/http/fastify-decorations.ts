/**
 * What the app decorates Fastify with, declared once where routes and the app can both see it
 * without importing each other.
 */
import type { Runtime } from '../runtime.js';
import type { RouteEntry } from './access.js';

declare module 'fastify' {
  interface FastifyInstance {
    runtime: Runtime;
    /** Every route with the access it declares (see http/access.ts). */
    routeTable: RouteEntry[];
  }
}
