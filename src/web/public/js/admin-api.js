/** The admin API with the token from this tab's sessionStorage. A 401 signs the tab out. */
const TOKEN_KEY = 'stampede.admin';

export const adminToken = {
  get() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set(token) {
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      /* kept in memory only */
    }
  },
  clear() {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* nothing kept */
    }
  },
};

export class AdminError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? (status ? `HTTP ${status}` : 'The server cannot be reached'));
    this.status = status;
    this.code = body?.error?.code ?? 'NETWORK';
    this.field = body?.error?.field;
  }
}

/** Calls the admin API; on 401 the `onSignedOut` hook runs (the page shows the sign-in form). */
export async function admin(path, { method = 'GET', body, token = adminToken.get() } = {}) {
  let res;
  try {
    res = await fetch(path, {
      method,
      cache: 'no-store',
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new AdminError(0, null);
  }
  const data = await res.json().catch(() => null);
  if (res.status === 401) admin.onSignedOut?.();
  if (!res.ok) throw new AdminError(res.status, data);
  return data;
}

export const saleUrl = (id, rest = '') => `/api/admin/flash-sales/${encodeURIComponent(id)}${rest}`;

export const money = (cents, currency) => new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(cents / 100);
export const when = (iso) => new Date(iso).toLocaleString(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
export const STATUS_LABEL = { scheduled: 'Scheduled', open: 'Open', sold_out: 'Sold out', ended: 'Ended', cancelled: 'Cancelled' };

/** A status badge element. */
export function badge(status, label = STATUS_LABEL[status] ?? status) {
  const el = document.createElement('span');
  el.className = `status status-${status}`;
  el.textContent = label;
  return el;
}

/** An element with text (never HTML: names come from people). */
export function el(tag, text = '', className = '') {
  const e = document.createElement(tag);
  if (text !== '') e.textContent = text;
  if (className) e.className = className;
  return e;
}
