/**
 * Every answer the chaos buyers get, kept whole: what was asked, of which node, when it was sent
 * (epoch ms), how long the answer took, its status and error code, and whether it said when to
 * come back. The outside half of every check reads this log; nothing is sampled.
 */
import type { Dispatcher } from 'undici';
import { Client, now, type CallOptions, type Reply, type StreamHandle } from '../rehearsal/client.js';

export interface Answer {
  /** What was asked: `enter`, `status`, `events`, `pre_auth`, `purchase`, `pay`, `sale`. */
  label: string;
  /** Which node was asked (its index). */
  node: number;
  /** When it was sent (epoch ms) and how long the answer took (ms). */
  at: number;
  ms: number;
  /** HTTP status; 0 when no answer came (the error says why). */
  status: number;
  code?: string;
  /** True when the answer carried `Retry-After`. */
  retryAfter: boolean;
  error?: string;
  userId?: string;
  /** The purchase's Idempotency-Key. */
  key?: string;
  /** The order a 201 or a paid answer named, and the order status it gave. */
  orderId?: string;
  orderStatus?: string;
  /** The `status` field of any other answer (a ticket's or the sale's state). */
  state?: string;
}

/** Extra fields a caller attaches to the answer of one call. */
export type AnswerTags = Pick<Answer, 'userId' | 'key'>;

/** One node's HTTP client whose every answer lands in a shared log. */
export class RecordingClient extends Client {
  constructor(
    base: string,
    readonly node: number,
    private readonly log: Answer[],
  ) {
    super(base);
  }

  /** A call whose answer is logged (admin reads pass `untimed` and are not). */
  async ask(label: string, method: 'GET' | 'POST', path: string, opts: CallOptions = {}, tags: AnswerTags = {}): Promise<Reply> {
    const at = now();
    const r = await this.call(label, method, path, opts);
    if (!opts.untimed) this.log.push(answerOf(label, this.node, at, r, tags));
    return r;
  }

  /**
   * An event stream, logged once: when its first event arrives (the stream "answered"), or when
   * it was refused or failed before one did.
   */
  listen(
    path: string,
    agent: Dispatcher | undefined,
    tags: AnswerTags,
    onEvent: (event: string, data: any) => void,
    onEnd: (why: string | Reply | null) => void,
  ): StreamHandle {
    const at = now();
    let logged = false;
    const note = (r: Reply) => {
      if (logged) return;
      logged = true;
      this.log.push(answerOf('events', this.node, at, r, tags));
    };
    return this.stream(
      'events',
      path,
      agent,
      (event, data) => {
        note({ status: 200, body: null, ms: now() - at });
        onEvent(event, data);
      },
      (why) => {
        if (why === null) note({ status: 200, body: null, ms: now() - at });
        else if (typeof why === 'string') note({ status: 0, body: null, ms: now() - at, error: why });
        else note(why);
        onEnd(why);
      },
    );
  }
}

function answerOf(label: string, node: number, at: number, r: Reply, tags: AnswerTags): Answer {
  const a: Answer = { label, node, at, ms: r.ms, status: r.status, retryAfter: r.retryAfterMs !== undefined, ...tags };
  const code = r.body?.error?.code;
  if (typeof code === 'string') a.code = code;
  if (r.error) a.error = r.error;
  if (typeof r.body?.order_id === 'string' && (r.status === 200 || r.status === 201)) {
    a.orderId = r.body.order_id;
    a.orderStatus = r.body.status;
  } else if (typeof r.body?.status === 'string') a.state = r.body.status;
  return a;
}
