/**
 * The one catalogue of error codes. Every refusal the API gives is one of these, in the shape
 * `{error: {code, message}}`; `docs/errors.md` lists them and a test keeps the two in step.
 */
export const ErrorCatalogue = {
  VALIDATION_FAILED: { status: 400, message: 'The request is not valid' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body is not JSON' },
  INVALID_SALE: { status: 422, message: 'The sale definition is not valid' },
  UNAUTHENTICATED: { status: 401, message: 'A valid bearer token is required' },
  NOT_FOUND: { status: 404, message: 'Not found' },
  SALE_NOT_FOUND: { status: 404, message: 'No such sale' },
  ORDER_NOT_FOUND: { status: 404, message: 'No such order' },
  SALE_NOT_OPEN: { status: 409, message: 'The sale is not open' },
  SALE_STARTED: { status: 409, message: 'The sale has started and can no longer be changed' },
  SALE_ENDED: { status: 410, message: 'The sale has ended' },
  SALE_CANCELLED: { status: 410, message: 'The sale was cancelled' },
  SOLD_OUT: { status: 409, message: 'Sold out' },
  INSUFFICIENT_STOCK: { status: 409, message: 'Fewer units remain than requested' },
  UNKNOWN_SKU: { status: 404, message: 'No such item in this sale' },
  NOT_ADMITTED: { status: 403, message: 'The ticket has not been admitted yet' },
  ADMISSION_EXPIRED: { status: 410, message: 'The admission window has passed' },
  LIMIT_REACHED: { status: 409, message: 'The per-user limit for this item is reached' },
  ORDER_TOO_LARGE: { status: 422, message: 'The quantity is over the per-order maximum' },
  TICKET_INVALID: { status: 401, message: 'The queue ticket is not valid' },
  TICKET_EXPIRED: { status: 401, message: 'The queue ticket has expired' },
  TICKET_WRONG_USER: { status: 403, message: 'The queue ticket belongs to another user' },
  TICKET_WRONG_SALE: { status: 403, message: 'The queue ticket is for another sale' },
  QUEUE_RESTARTED: { status: 409, message: 'The queue was restarted; enter it again' },
  IDEMPOTENCY_KEY_REQUIRED: { status: 400, message: 'An Idempotency-Key header is required' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'The Idempotency-Key was used with other parameters' },
  REQUEST_IN_PROGRESS: { status: 409, message: 'A request with this Idempotency-Key is still in progress' },
  PAYMENT_DECLINED: { status: 402, message: 'The payment was declined' },
  PAYMENT_WINDOW_PASSED: { status: 410, message: 'The payment window has passed' },
  ORDER_NOT_PAYABLE: { status: 409, message: 'The order cannot be paid in its current state' },
  NOTHING_TO_REFUND: { status: 409, message: 'The order holds no captured payment to refund' },
  POW_REQUIRED: { status: 400, message: 'A proof-of-work solution is required' },
  POW_INVALID: { status: 403, message: 'The proof-of-work solution is not valid or was already used' },
  CAPTCHA_REQUIRED: { status: 400, message: 'A CAPTCHA token is required' },
  CAPTCHA_INVALID: { status: 403, message: 'The CAPTCHA token was not accepted' },
  RATE_LIMITED: { status: 429, message: 'Too many requests' },
  DEMO_DISABLED: { status: 404, message: 'Guest sessions are only available in demo mode' },
  UNAVAILABLE: { status: 503, message: 'Temporarily unavailable; retry shortly' },
  PAYMENT_UNAVAILABLE: { status: 503, message: 'The payment processor is unavailable; retry shortly' },
  INTERNAL: { status: 500, message: 'Internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ErrorCatalogue;

/** A refusal with a stable code; the HTTP layer turns it into `{error: {code, message}}`. */
export class StampedeError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds, sent as `Retry-After` (429 and 503). */
  readonly retryAfter?: number;
  /** Extra fields merged into the error body (e.g. `{status: 'sold_out'}`). */
  readonly extra?: Record<string, unknown>;

  constructor(code: ErrorCode, message?: string, opts: { retryAfter?: number; extra?: Record<string, unknown> } = {}) {
    // A refusal is an answer, not a fault: no stack to capture (it was 3 % of a sold-out reply).
    const { stackTraceLimit } = Error;
    if (ErrorCatalogue[code].status < 500) Error.stackTraceLimit = 0;
    super(message ?? ErrorCatalogue[code].message);
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'StampedeError';
    this.code = code;
    this.status = ErrorCatalogue[code].status;
    this.retryAfter = opts.retryAfter;
    this.extra = opts.extra;
  }

  private body?: string;

  /** The answer's body, `{...extra, error: {code, message, field?}}`, serialised once per error. */
  json(): string {
    if (this.body === undefined) {
      const { field, ...top } = this.extra ?? {};
      this.body = JSON.stringify({ ...top, error: { code: this.code, message: this.message, ...(field ? { field } : {}) } });
    }
    return this.body;
  }
}

/** Seconds a client is told to wait (`Retry-After`) before retrying while a dependency is down. */
export const UNAVAILABLE_RETRY_AFTER_SEC = 1;

/**
 * A dependency (the engine's Redis, the ledger's PostgreSQL) that did not answer within its
 * deadline, or that recently stopped answering and is not asked again for a moment. The request
 * did nothing wrong: it may be retried shortly.
 */
export class DependencyUnavailableError extends Error {
  constructor(
    readonly dependency: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DependencyUnavailableError';
  }
}

/** Node's socket errors: the peer refused, reset, or could not be reached. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EAI_AGAIN',
  'ENOTCONN',
]);
/**
 * SQLSTATEs that mean "not now" rather than "no": connection exceptions (class 08), the server
 * shutting down or starting up (57P01–57P03), a statement cut at `statement_timeout` (57014),
 * too many connections (53300).
 */
const UNAVAILABLE_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[1-3]|57014|53300)$/;
/** Redis replies that mean "not now": loading its data after a restart, a script running long, a failover. */
const UNAVAILABLE_REDIS_REPLY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY)\b/;
/** What ioredis and pg say when a deadline passes or the connection is gone (they set no code). */
const UNAVAILABLE_MESSAGES = [
  /^Command timed out$/, // ioredis commandTimeout
  /^Stream isn't writeable and enableOfflineQueue options is false$/, // ioredis while disconnected
  /^Cluster isn't ready and enableOfflineQueue options is false$/,
  /^Connection is closed\.?$/,
  /^Socket timeout/,
  /^Failed to refresh slots cache/,
  /^None of startup nodes is available/, // ioredis Cluster with no node reachable
  /^Query read timeout$/, // pg query_timeout
  /^Connection terminated/, // pg: the server went away ('… unexpectedly', '… due to connection timeout')
  /^timeout exceeded when trying to connect$/, // pg-pool connectionTimeoutMillis
  /is not queryable$/, // pg: a client whose connection failed or ended
];
const UNAVAILABLE_NAMES = new Set(['DependencyUnavailableError', 'MaxRetriesPerRequestError', 'ClusterAllFailedError']);

/**
 * True when `err` says a dependency is down, unreachable or past its deadline — a fault of the
 * moment, not of the request. Follows `cause` a few levels (wrapped errors keep theirs).
 */
export function isUnavailable(err: unknown): boolean {
  let e = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null && !(e instanceof StampedeError); depth++) {
    const { name, code, message, cause } = e as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown };
    const text = typeof message === 'string' ? message : '';
    if (typeof name === 'string' && UNAVAILABLE_NAMES.has(name)) return true;
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return true;
    // ioredis' AbortError: a command dropped with its connection.
    if (name === 'AbortError' && text.startsWith('Command aborted')) return true;
    if (name === 'ReplyError' && UNAVAILABLE_REDIS_REPLY.test(text)) return true;
    if (UNAVAILABLE_MESSAGES.some((re) => re.test(text))) return true;
    e = cause;
  }
  return false;
}

/**
 * The one mapping of dependency faults to an answer: 503 UNAVAILABLE with `Retry-After`, or
 * null when `err` is something else (a bug stays a 500). The app's error handler applies it, so
 * routes and tiers let such errors through instead of catching them one by one.
 */
export function unavailableError(err: unknown): StampedeError | null {
  if (!isUnavailable(err)) return null;
  return new StampedeError('UNAVAILABLE', undefined, { retryAfter: UNAVAILABLE_RETRY_AFTER_SEC });
}

/** The levels a node logs at (pino's, or the runtime's silent stand-in). */
export interface LevelLog {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

/**
 * A logger that reports a dependency fault once at warn — and then once per `everyMs` with the
 * number of repeats — rather than every failed call at the level its caller chose: during an
 * outage every request and every background pass fails at once, and a line each would bury the
 * rest. Lines about anything else pass through unchanged.
 */
export function quietDuringOutages(log: LevelLog, everyMs = 10_000): LevelLog {
  const seen = new Map<string, { at: number; repeats: number }>();
  const report = (level: 'warn' | 'error', obj: object | string, msg?: string) => {
    const err = typeof obj === 'object' ? (obj as { err?: unknown }).err : undefined;
    if (!isUnavailable(err)) return log[level](obj, msg);
    const key = `${msg ?? ''}|${(err as Error).message}`;
    const now = Date.now();
    const last = seen.get(key);
    if (last && now - last.at < everyMs) {
      last.repeats++;
      return;
    }
    if (seen.size > 1000) seen.clear();
    seen.set(key, { at: now, repeats: 0 });
    log.warn({ ...(obj as object), ...(last?.repeats ? { repeats: last.repeats } : {}) }, msg);
  };
  return {
    info: (obj, msg) => log.info(obj, msg),
    warn: (obj, msg) => report('warn', obj, msg),
    error: (obj, msg) => report('error', obj, msg),
  };
}
