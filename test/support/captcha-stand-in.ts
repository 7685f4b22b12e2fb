/**
 * A STAND-IN for a CAPTCHA provider's siteverify endpoint (Turnstile / hCaptcha / reCAPTCHA).
 *
 * This is a test double, not the real service: tests cannot reach Cloudflare, hCaptcha or
 * Google, and must not depend on them. It speaks the same protocol (a form-encoded POST of
 * `secret`, `response`, `remoteip`; a JSON answer with `success` and `error-codes`) so that
 * `SiteverifyCaptcha` is exercised end to end over real HTTP. Passing tests here show that we
 * speak the protocol as documented, not that a real provider accepts our requests.
 *
 * Rules: the token `pass` succeeds, every other token fails; a wrong secret fails with
 * `invalid-input-secret` when the stand-in was given one to expect. Every request is recorded.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SiteverifyRequest {
  secret: string | null;
  response: string | null;
  remoteip: string | null;
  contentType: string | undefined;
}

export interface CaptchaStandIn {
  /** The siteverify URL to pass as `verifyUrl`. */
  url: string;
  /** Every request received, oldest first. */
  requests: SiteverifyRequest[];
  close(): Promise<void>;
}

export interface CaptchaStandInOptions {
  /** When set, requests with another secret are refused as the real services do. */
  secret?: string;
  /** Hold every answer this long (to test our timeout). */
  delayMs?: number;
  /** Answer every request with this HTTP status and no JSON (a provider outage). */
  failWithStatus?: number;
}

/** Starts the stand-in on 127.0.0.1 and a free port. */
export async function startCaptchaStandIn(opts: CaptchaStandInOptions = {}): Promise<CaptchaStandIn> {
  const requests: SiteverifyRequest[] = [];
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const form = new URLSearchParams(await readBody(req));
    const record: SiteverifyRequest = {
      secret: form.get('secret'),
      response: form.get('response'),
      remoteip: form.get('remoteip'),
      contentType: req.headers['content-type'],
    };
    requests.push(record);
    if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
    if (req.method !== 'POST') return void res.writeHead(405).end();
    if (opts.failWithStatus) return void res.writeHead(opts.failWithStatus).end('upstream trouble');

    let answer: Record<string, unknown>;
    if (opts.secret !== undefined && record.secret !== opts.secret) {
      answer = { success: false, 'error-codes': ['invalid-input-secret'] };
    } else if (!record.response) {
      answer = { success: false, 'error-codes': ['missing-input-response'] };
    } else if (record.response === 'pass') {
      answer = { success: true, challenge_ts: new Date().toISOString(), hostname: 'localhost', 'error-codes': [] };
    } else {
      answer = { success: false, 'error-codes': ['invalid-input-response'] };
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  };
  // A request that fails answers 500 instead of leaving an unhandled rejection.
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      res.statusCode = 500;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/siteverify`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
