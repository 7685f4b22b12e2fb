/**
 * The simulated shoppers' HTTP: undici, one connection pool per source address (so the server
 * sees households and bot farms at their own loopback addresses, and no single address runs out
 * of its ~28,000 ephemeral ports), every call timed and counted per endpoint, and a minimal
 * Server-Sent Events reader over the response body (an EventSource per stream would cost more
 * memory than the stream itself).
 */
import { Agent, request, type Dispatcher } from 'undici';
import { Samples } from '../samples.js';

/** What the report groups calls by: the endpoint, prefixed `bot:` for the bots' calls. */
export type Label = string;

export interface Reply {
  /** The HTTP status; 0 when the request failed before a response (the error says why). */
  status: number;
  body: any;
  ms: number;
  /** `Retry-After` in ms, when the server sent one. */
  retryAfterMs?: number;
  error?: string;
}

export interface CallOptions {
  agent?: Dispatcher;
  headers?: Record<string, string>;
  json?: unknown;
  /** Don't time it (admin reads): only shoppers' calls go into the latency figures. */
  untimed?: boolean;
}

export interface StreamHandle {
  close(): void;
}

export const now = () => performance.timeOrigin + performance.now();

export class Client {
  readonly latency = new Map<Label, Samples>();
  /** Answers per label and status (`purchase 409 SOLD_OUT`). */
  readonly answers = new Map<string, number>();
  /** Requests started per whole second since `startedAt` (for the traffic chart). */
  readonly perSecond: number[] = [];
  readonly startedAt = now();
  inFlight = 0;
  requests = 0;
  failures = 0;
  openStreams = 0;
  /** Server clock minus ours, from the replies with the shortest round trip. */
  private offset = { ms: 0, rtt: Infinity };
  private readonly agents = new Map<string, Agent>();
  private readonly shared: Agent;

  constructor(
    readonly base: string,
    private readonly opts: { keepAliveMs?: number } = {},
  ) {
    this.shared = new Agent({ keepAliveTimeout: opts.keepAliveMs ?? 4000, connections: 64 });
  }

  /**
   * The pool for a source address (created once per address and `connections`): a capped pool
   * for requests (a browser keeps a few sockets per host; a bot farm a few per address) and an
   * uncapped one for event streams, which hold a socket each for as long as they are open.
   */
  agent(address: string | undefined, connections?: number): Dispatcher {
    if (!address) return this.shared;
    const key = `${address}/${connections ?? '∞'}`;
    let a = this.agents.get(key);
    if (!a) {
      a = new Agent({ localAddress: address, keepAliveTimeout: this.opts.keepAliveMs ?? 4000, connections: connections ?? null });
      this.agents.set(key, a);
    }
    return a;
  }

  /** Server time for a local instant (ms since the epoch). */
  serverTime(local = now()): number {
    return local + this.offset.ms;
  }
  /** Local time for a server instant. */
  localTime(server: number): number {
    return server - this.offset.ms;
  }

  async call(label: Label, method: 'GET' | 'POST' | 'PATCH', path: string, opts: CallOptions = {}): Promise<Reply> {
    const started = now();
    if (!opts.untimed) this.tick(started);
    this.inFlight++;
    const headers: Record<string, string> = { ...opts.headers };
    let body: string | undefined;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    }
    try {
      const res = await request(this.base + path, {
        method,
        headers,
        body,
        dispatcher: opts.agent ?? this.shared,
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      });
      const text = await res.body.text();
      const done = now();
      let parsed: any = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = text;
      }
      const reply: Reply = { status: res.statusCode, body: parsed, ms: done - started };
      const ra = res.headers['retry-after'];
      if (typeof ra === 'string' && Number.isFinite(Number(ra))) reply.retryAfterMs = Number(ra) * 1000;
      if (parsed && typeof parsed.server_time === 'string') this.observeClock(Date.parse(parsed.server_time), started, done);
      if (!opts.untimed) this.record(label, reply);
      return reply;
    } catch (err) {
      const reply: Reply = { status: 0, body: null, ms: now() - started, error: (err as { code?: string }).code ?? (err as Error).message };
      if (!opts.untimed) this.record(label, reply);
      return reply;
    } finally {
      this.inFlight--;
    }
  }

  /**
   * Opens an event stream and calls `onEvent` per message. `onEnd` gets null when the server
   * ended the stream, an error string when it failed, or the HTTP reply when it was refused.
   */
  stream(
    label: Label,
    path: string,
    agent: Dispatcher | undefined,
    onEvent: (event: string, data: any) => void,
    onEnd: (why: string | Reply | null) => void,
  ): StreamHandle {
    const controller = new AbortController();
    let closed = false;
    let counted = false;
    const end = (why: string | Reply | null) => {
      if (counted) {
        this.openStreams--;
        counted = false;
      }
      if (!closed) {
        closed = true;
        onEnd(why);
      }
    };
    const started = now();
    this.tick(started);
    request(this.base + path, {
      method: 'GET',
      headers: { accept: 'text/event-stream' },
      dispatcher: agent ?? this.shared,
      signal: controller.signal,
      headersTimeout: 60_000,
      bodyTimeout: 0,
    }).then(
      async (res) => {
        const ms = now() - started;
        if (res.statusCode !== 200) {
          const text = await res.body.text().catch(() => '');
          let parsed: any = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* keep text */
          }
          const reply: Reply = { status: res.statusCode, body: parsed, ms };
          const ra = res.headers['retry-after'];
          if (typeof ra === 'string' && Number.isFinite(Number(ra))) reply.retryAfterMs = Number(ra) * 1000;
          this.record(label, reply);
          end(reply);
          return;
        }
        this.record(label, { status: 200, body: null, ms });
        this.openStreams++;
        counted = true;
        let buf = '';
        res.body.setEncoding('utf8');
        res.body.on('data', (chunk: string) => {
          buf += chunk;
          let cut: number;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let event = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) event = line.slice(6).trim();
              else if (line.startsWith('data:')) data += line.slice(5).trimStart();
            }
            if (!data || closed) continue;
            let parsed: any = data;
            try {
              parsed = JSON.parse(data);
            } catch {
              /* keep text */
            }
            onEvent(event, parsed);
          }
        });
        res.body.on('end', () => end(null));
        res.body.on('error', (err: Error) => end(closed ? null : ((err as { code?: string }).code ?? err.message)));
      },
      (err: Error) => {
        if (!closed) this.record(label, { status: 0, body: null, ms: now() - started, error: (err as { code?: string }).code ?? err.message });
        end((err as { code?: string }).code ?? err.message);
      },
    );
    return {
      close: () => {
        if (!closed) {
          closed = true;
          if (counted) {
            this.openStreams--;
            counted = false;
          }
          controller.abort();
        }
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.shared, ...this.agents.values()].map((a) => a.destroy().catch(() => {})));
  }

  private tick(at: number): void {
    this.requests++;
    const sec = Math.floor((at - this.startedAt) / 1000);
    while (this.perSecond.length <= sec) this.perSecond.push(0);
    this.perSecond[sec]++;
  }

  private record(label: Label, reply: Reply): void {
    let s = this.latency.get(label);
    if (!s) this.latency.set(label, (s = new Samples()));
    s.add(reply.ms);
    if (reply.status === 0) this.failures++;
    const code = reply.status === 0 ? `ERR ${reply.error}` : `${reply.status}${reply.body?.error?.code ? ` ${reply.body.error.code}` : ''}`;
    const key = `${label} ${code}`;
    this.answers.set(key, (this.answers.get(key) ?? 0) + 1);
  }

  private observeClock(server: number, sent: number, received: number): void {
    const rtt = received - sent;
    if (!Number.isFinite(server) || rtt > this.offset.rtt) return;
    this.offset = { ms: server - (sent + received) / 2, rtt };
  }
}
