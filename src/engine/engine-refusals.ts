import { StampedeError, type ErrorCode } from '../errors.js';

/**
 * Lua scripts answer a refusal with a negative integer; the embedded engine throws the same
 * errors through `refuse()`. One table maps both, so callers cannot tell the engines apart.
 */
export const Refusal = {
  SALE_NOT_FOUND: -1,
  SALE_NOT_OPEN: -2,
  SALE_ENDED: -3,
  SALE_CANCELLED: -4,
  NOT_ADMITTED: -5,
  ADMISSION_EXPIRED: -6,
  IDEMPOTENCY_KEY_REUSED: -7,
  UNKNOWN_SKU: -8,
  ORDER_TOO_LARGE: -9,
  LIMIT_REACHED: -10,
  SOLD_OUT: -11,
  INSUFFICIENT_STOCK: -12,
  INVALID_SALE: -13,
} as const satisfies Partial<Record<ErrorCode, number>>;

const byNumber = new Map<number, keyof typeof Refusal>(Object.entries(Refusal).map(([code, n]) => [n, code as keyof typeof Refusal]));

export function refusalError(n: number): StampedeError {
  const code = byNumber.get(n);
  if (!code) return new StampedeError('INTERNAL', `engine answered unknown refusal ${n}`);
  return new StampedeError(code, undefined, code === 'SOLD_OUT' ? { extra: { status: 'sold_out' } } : {});
}

export function refuse(code: keyof typeof Refusal): never {
  throw refusalError(Refusal[code]);
}
