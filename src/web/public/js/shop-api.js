/**
 * What every shopper page shares: calls to the Stampede API, the guest identity, the server's
 * clock and formatting. The API is on the page's own origin unless
 * `<meta name="stampede-api" content="https://...">` says otherwise (pages served from a CDN).
 */
const BASE = document.querySelector('meta[name="stampede-api"]')?.content.replace(/\/$/, '') ?? '';
const TOKEN_KEY = 'stampede.token';

/** A refusal from the API, or a network failure (`status` 0). */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body?.error?.message ?? (status ? `HTTP ${status}` : 'Network error'));
    this.status = status;
    this.body = body ?? {};
    this.code = body?.error?.code ?? (status ? 'HTTP_' + status : 'NETWORK');
    this.retryAfter = Number(retryAfter) || 0;
  }
  /** Worth sending again as it is: the request may not have arrived, or the server was busy. */
  get transient() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504 || this.code === 'REQUEST_IN_PROGRESS';
  }
}

/**
 * The server's clock, read from `server_time` in responses and corrected by half the round
 * trip. It runs on `performance.now()`, so a device clock that is wrong, or changes while the
 * page is open, moves nothing. The sample with the shortest round trip wins; a newer one
 * replaces it after a while, so a long-lived page keeps up with the server.
 */
export const clock = {
  base: null,
  at: 0,
  rtt: Infinity,
  sample(iso, t0, t1, age) {
    const server = Date.parse(iso);
    if (Number.isNaN(server)) return;
    const rtt = t1 - t0;
    if (this.base !== null && rtt > this.rtt * 1.5 && t1 - this.at < 60_000) return;
    this.rtt = rtt;
    this.base = server + (Number(age) || 0) * 1000 + rtt / 2;
    this.at = t1;
  },
  /** Server time in epoch milliseconds. */
  now() {
    return this.base === null ? Date.now() : this.base + (performance.now() - this.at);
  },
};

/** localStorage that never throws (private mode, full quota, storage off). */
export const store = {
  get(key) {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch {
      /* the page still works, without resuming */
    }
  },
  del(key) {
    try {
      localStorage.removeItem(key);
    } catch {
      /* as above */
    }
  },
  json(key) {
    try {
      return JSON.parse(this.get(key));
    } catch {
      return null;
    }
  },
};

let pendingSession = null;

/** The shopper's token: the shop's own when it put one in storage, or a guest one (demo mode). */
export async function userToken() {
  const known = store.get(TOKEN_KEY);
  if (known) return known;
  pendingSession ??= call('/api/session', { method: 'POST', body: {} })
    .then(({ data }) => {
      store.set(TOKEN_KEY, data.token);
      store.set('stampede.demo', '1');
      return data.token;
    })
    .finally(() => {
      pendingSession = null;
    });
  return pendingSession;
}

/** True when the identity is a demo guest (the sandbox gateway and its test cards are in use). */
export const isDemo = () => store.get('stampede.demo') === '1';

/**
 * One API call. Throws ApiError on a refusal or a network failure. `auth` sends the shopper's
 * token (a rejected guest token is replaced once); `fresh` skips every cache (clock samples).
 */
export async function call(path, { method = 'GET', body, auth = false, headers = {}, fresh = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    const h = { accept: 'application/json', ...headers };
    if (body !== undefined) h['content-type'] = 'application/json';
    if (auth) h.authorization = `Bearer ${await userToken()}`;
    const t0 = performance.now();
    let res;
    try {
      res = await fetch(BASE + path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: fresh ? 'no-store' : 'default',
      });
    } catch {
      throw new ApiError(0, null);
    }
    const t1 = performance.now();
    const data = await res.json().catch(() => null);
    if (data?.server_time) clock.sample(data.server_time, t0, t1, res.headers.get('age'));
    if (auth && res.status === 401 && data?.error?.code === 'UNAUTHENTICATED' && attempt === 0 && isDemo()) {
      store.del(TOKEN_KEY);
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, data, res.headers.get('retry-after'));
    return { status: res.status, data };
  }
}

const sale = (id) => `/api/flash-sales/${encodeURIComponent(id)}`;
/** `seen`: the highest watermark shown so far, so the next node never answers with an older picture. */
const q = (ticket, seen) => `?ticket=${encodeURIComponent(ticket)}${seen == null ? '' : `&seen=${seen}`}`;

export const api = {
  sales: () => call('/api/flash-sales', { fresh: true }).then((r) => r.data.sales),
  sale: (id) => call(sale(id), { fresh: true }).then((r) => r.data),
  inventory: (id) => call(`${sale(id)}/inventory`).then((r) => r.data),
  challenge: (id) => call(`${sale(id)}/challenge`).then((r) => r.data),
  enter: (id, body) => call(`${sale(id)}/enter-queue`, { method: 'POST', body, auth: true }).then((r) => r.data),
  status: (id, ticket, seen) => call(`${sale(id)}/status${q(ticket, seen)}`, { fresh: true }).then((r) => r.data),
  eventsUrl: (id, ticket, seen) => `${BASE}${sale(id)}/events${q(ticket, seen)}`,
  preAuth: (id, ticket, token) => call(`${sale(id)}/pre-auth`, { method: 'POST', body: { ticket, payment_token: token }, auth: true }).then((r) => r.data),
  purchase: (id, body, key) => call(`${sale(id)}/purchase`, { method: 'POST', body, auth: true, headers: { 'idempotency-key': key } }).then((r) => r.data),
  pay: (orderId, token) =>
    call(`/api/orders/${encodeURIComponent(orderId)}/pay`, { method: 'POST', body: { payment_token: token }, auth: true }).then((r) => r.data),
};

/** A random id for an Idempotency-Key (crypto.randomUUID needs a secure context; this does not). */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export const money = (cents, currency) => new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(cents / 100);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `1:05:09`, `4:07`, `0:09`: a countdown's face. */
export function clockFace(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A wait in words, rounded so it does not flicker: "less than a minute", "about 4 minutes". */
export function waitWords(sec) {
  if (sec < 15) return 'any moment now';
  if (sec < 60) return 'less than a minute';
  if (sec < 5400) {
    const m = Math.round(sec / 60);
    return m === 1 ? 'about a minute' : `about ${m} minutes`;
  }
  const h = Math.round(sec / 3600);
  return h === 1 ? 'about an hour' : `about ${h} hours`;
}

/** The start of a sale in the shopper's own words: "today at 18:00", "Fri 14 Mar, 09:00". */
export function startWords(ms) {
  const d = new Date(ms);
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (new Date(clock.now()).toDateString() === d.toDateString()) return `today at ${time}`;
  return `${d.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short' })}, ${time}`;
}
