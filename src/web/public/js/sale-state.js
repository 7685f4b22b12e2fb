/**
 * What every view of the sale page shares: one state object, so a view can tell which state the
 * page is in before it repaints, and the view switch that moves focus for screen readers. It
 * imports no view, so every view can import it without a cycle (asset hashing refuses cycles).
 */
import { store } from '/js/shop-api.js';

export const $ = (id) => document.getElementById(id);
export const saleId = new URLSearchParams(location.search).get('id');
export const KEY = { ticket: `stampede.ticket.${saleId}`, order: `stampede.order.${saleId}`, auth: `stampede.preauth.${saleId}` };
export const FINAL = new Set(['confirmed', 'soldout', 'ended']);
/** Refusals that mean the stored ticket is no good: join again. */
export const TICKET_GONE = /^(TICKET_|QUEUE_RESTARTED)/;

export const st = {
  sale: null,
  items: '',
  ticket: null,
  view: 'loading',
  feed: null,
  stock: {},
  startsAt: 0,
  refreshAt: 0,
  firstPos: 0,
  etaAt: null,
  admitUntil: 0,
  payUntil: 0,
  buying: false,
  intent: null,
  soldOutLater: false,
  preauth: store.json(KEY.auth),
  lastAnnounce: 0,
  products: new Map(),
};

export function show(view, title) {
  if (st.view === view) return;
  const first = st.view === 'loading';
  st.view = view;
  for (const el of document.querySelectorAll('.view')) el.hidden = el.id !== `view-${view}`;
  document.title = `${title} · ${st.sale?.name ?? 'Flash sale'}`;
  if (FINAL.has(view)) stopFeed();
  // Focus follows the state, so a screen reader hears the new heading; not on the first paint.
  if (!first) {
    const h = document.querySelector(`#view-${view} h1`);
    h?.focus();
    scrollTo(0, 0);
  }
}

export function announce(text, force = false) {
  const now = performance.now();
  if (!force && now - st.lastAnnounce < 10_000) return;
  st.lastAnnounce = now;
  $('announce').textContent = text;
}

export function stopFeed() {
  st.feed?.stop();
  st.feed = null;
  $('mode-pill').hidden = true;
}
