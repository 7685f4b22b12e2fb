/**
 * Who may call a route is a property of the route, never a test on its URL: the router decodes
 * `%61dmin`, `//` and `/./` before it picks a route, so only the route it picked can say who may
 * call it. Every route declares `config: { access }`; `guardRoutes` refuses to build an app with
 * a route that does not, and puts the check for `admin` and `metrics` routes in front of the
 * route's own hooks. The other kinds are checked inside the use case (the user token names the
 * buyer, the ticket is the credential) and are declared here so the route table says so.
 */
import type { FastifyInstance, onRequestHookHandler, RouteOptions } from 'fastify';
import type { Auth } from './auth.js';

export type Access =
  /** Anyone: pages, public sale data, probes. */
  | 'public'
  /** A user token (the shop's JWT, or a demo guest's): the handler resolves the user. */
  | 'user'
  /** A signed queue ticket in the query: the ticket is the credential (EventSource sends no headers). */
  | 'ticket'
  /** The admin token. */
  | 'admin'
  /** The metrics token (or, without one, the admin token). */
  | 'metrics';

export const ACCESS_KINDS: readonly Access[] = ['public', 'user', 'ticket', 'admin', 'metrics'];

export interface RouteEntry {
  method: string;
  url: string;
  access: Access;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}

/**
 * Registers the `onRoute` hook that enforces declared access on every route registered after
 * it, and returns the route table it fills (for the security tests and docs/security.md).
 */
export function guardRoutes(app: FastifyInstance<any, any, any, any, any>, auth: Pick<Auth, 'requireAdmin' | 'requireMetrics'>): RouteEntry[] {
  const table: RouteEntry[] = [];
  /** An onRequest hook that lets the request on only if `check` accepts its Authorization header. */
  const guardBy =
    (check: (header: string | undefined) => void): onRequestHookHandler =>
    (req, _reply, done) => {
      try {
        check(req.headers.authorization);
        done();
      } catch (err) {
        done(err as Error);
      }
    };
  const admin = guardBy((h) => auth.requireAdmin(h));
  const metrics = guardBy((h) => auth.requireMetrics(h));
  app.addHook('onRoute', (route: RouteOptions) => {
    const access = route.config?.access;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!access || !ACCESS_KINDS.includes(access)) {
      throw new Error(`route ${methods.join(',')} ${route.url} declares no access (config.access: ${ACCESS_KINDS.join(' | ')})`);
    }
    const guard = access === 'admin' ? admin : access === 'metrics' ? metrics : null;
    if (guard) {
      // First of the route's own onRequest hooks: nothing of the route runs before it.
      const own = route.onRequest ? (Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]) : [];
      route.onRequest = [guard, ...own];
    }
    for (const method of methods) table.push({ method, url: route.url, access });
  });
  return table;
}
