/**
 * Keeps a waiting shopper's page current: Server-Sent Events while they work, and polling the
 * status (and, once admitted, the inventory) every 2 s when they do not — a proxy that buffers,
 * a network that drops long requests. SSE is tried again now and then while polling, except in
 * a tab whose stream was replaced by the same shopper's newer tab.
 *
 * `onEvent(kind, data)`: kind is an SSE event name (position, admitted, inventory, sold_out,
 * ended) or `status` for a polled ticket view.
 */
import { api } from '/js/shop-api.js';

const POLL_MS = 2000;
const SSE_RETRY_MS = 30_000;
const EVENTS = ['position', 'admitted', 'inventory', 'sold_out', 'ended'];

export function follow(saleId, ticket, onEvent) {
  let es = null;
  let pollTimer = 0;
  let retryTimer = 0;
  let stopped = false;
  let admitted = false;
  /** The highest watermark any node showed: sent back, so a lagging node reads afresh rather than step back. */
  let seen;

  const emit = (kind, data) => {
    if (stopped) return;
    if (Number.isSafeInteger(data?.watermark) && !(data.watermark <= seen)) seen = data.watermark;
    if (kind === 'admitted' || data?.status === 'admitted') admitted = true;
    onEvent(kind, data);
  };

  const openStream = () => {
    if (stopped || es || typeof EventSource === 'undefined') return poll();
    clearTimeout(pollTimer);
    pollTimer = 0;
    es = new EventSource(api.eventsUrl(saleId, ticket, seen));
    for (const kind of EVENTS) {
      es.addEventListener(kind, (e) => {
        try {
          emit(kind, JSON.parse(e.data));
        } catch {
          /* a torn message: the next one fixes it */
        }
      });
    }
    // The node is shutting down: open the stream again at once (the balancer picks another
    // node), a little apart from everyone else's.
    es.addEventListener('reconnect', () => {
      es.close();
      es = null;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(openStream, 200 + Math.random() * 1500);
    });
    // Another tab of this shopper opened the stream (a ticket holds one): this tab polls instead.
    es.addEventListener('replaced', () => {
      es.close();
      es = null;
      clearTimeout(retryTimer);
      poll();
    });
    es.onerror = () => {
      if (stopped) return;
      es.close();
      es = null;
      poll();
      retryTimer = setTimeout(openStream, SSE_RETRY_MS);
    };
  };

  const poll = async () => {
    if (stopped || es) return;
    try {
      emit('status', await api.status(saleId, ticket, seen));
      if (admitted && !stopped) emit('inventory', await api.inventory(saleId));
    } catch (err) {
      if (err.status >= 400 && err.status < 500 && err.status !== 429) emit('error', err);
    }
    if (!stopped && !es) pollTimer = setTimeout(poll, POLL_MS);
  };

  openStream();
  return {
    stop() {
      stopped = true;
      es?.close();
      clearTimeout(pollTimer);
      clearTimeout(retryTimer);
    },
    get mode() {
      return es ? 'live' : 'polling';
    },
  };
}
