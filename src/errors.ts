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
}
