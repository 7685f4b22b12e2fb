/**
 * What the access log may say about a request. A queue ticket in the query (`/status` and
 * `/events` carry it there, since EventSource sends no headers) is a bearer credential: whoever
 * reads the log could wait in line as that shopper. The log keeps its first characters, enough to
 * follow one client through the log, and never the signature.
 */
import type { FastifyRequest } from 'fastify';

const CREDENTIALS = /([?&](?:ticket|token|pass)=)([^&#]*)/gi;

/** The URL with credentials in its query cut to a short prefix. */
export function redactUrl(url: string): string {
  if (!url.includes('?')) return url;
  return url.replace(CREDENTIALS, (_m, name: string, value: string) => `${name}${value.slice(0, 8)}…[redacted]`);
}

/** pino serializers for Fastify's request logs, with the URL redacted. */
export const accessLogSerializers = {
  req(req: FastifyRequest) {
    return {
      method: req.method,
      url: redactUrl(req.url),
      host: req.host,
      remoteAddress: req.ip,
      remotePort: req.socket ? req.socket.remotePort : undefined,
    };
  },
};
