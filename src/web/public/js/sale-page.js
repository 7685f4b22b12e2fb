/**
 * The shopper's sale page, one state at a time: the drop with its countdown → the proof-of-work
 * → the waiting room (live place, ETA, card pre-authorisation) → your turn (live stock, one-tap
 * Buy) → confirmed, or sold out, or ended. Every time shown is the server's (see `clock`).
 *
 * This entry module only routes: each view lives in its own module, and the live feed's events
 * and the page clock are dispatched from here, so no view has to import the views that follow it.
 */
import { api, clock, store } from '/js/shop-api.js';
import { follow } from '/js/live-feed.js';
import { $, FINAL, KEY, saleId, show, st, stopFeed } from '/js/sale-state.js';
import { updateStock } from '/js/sale-products.js';
import { ended, soldOut } from '/js/sale-endings.js';
import { join, renderSale, tickSale, ticketLost } from '/js/sale-drop.js';
import { paintPreauth, preAuth, tickWaiting, waiting } from '/js/sale-waiting.js';
import { admitted, purchased, tickCheckout } from '/js/sale-checkout.js';

// ——— live updates ———

function startFeed() {
  stopFeed();
  st.feed = follow(saleId, st.ticket, onEvent);
}

function onEvent(kind, d) {
  if (st.feed) {
    $('mode-pill').hidden = false;
    $('mode-pill').textContent = st.feed.mode === 'live' ? 'Live' : 'Auto-refresh';
  }
  if (kind === 'error') return ticketLost(d);
  if (kind === 'inventory') return updateStock(d.items ?? []);
  if (kind === 'sold_out') {
    if (d.inventory) updateStock(Object.entries(d.inventory).map(([sku, remaining]) => ({ sku, remaining })));
    return soldOut();
  }
  if (kind === 'ended') return ended(d.status === 'cancelled' || d.sale_status === 'cancelled' ? 'cancelled' : 'ended');
  if (d.server_time && d.starts_at) st.startsAt = Date.parse(d.starts_at);
  switch (d.status) {
    case 'waiting':
      return waiting(d);
    case 'admitted':
      return admitted(d);
    case 'purchased':
      return purchased();
    case 'sold_out':
      return soldOut();
    case 'expired':
      return ended('expired');
    case 'ended':
      return ended(d.sale_status === 'cancelled' ? 'cancelled' : 'ended');
  }
}

/** A ticket from joining: show where it stands, and follow it unless that already ended the page. */
function entered(status) {
  onEvent('status', status);
  if (!FINAL.has(st.view)) startFeed();
}

// ——— the clock ———

function tick() {
  const now = clock.now();
  tickSale(now);
  tickWaiting(now);
  tickCheckout(now);
}

// ——— start ———

function formatCard(e) {
  const el = e.target;
  if (/^[\d\s]*$/.test(el.value))
    el.value = el.value
      .replace(/\D/g, '')
      .slice(0, 19)
      .replace(/(\d{4})(?=\d)/g, '$1 ');
}

async function main() {
  if (!saleId) return location.replace('/');
  $('join').addEventListener('click', () => join(entered));
  $('preauth').addEventListener('submit', preAuth);
  $('ended-action').addEventListener('click', () => location.reload());
  for (const id of ['card', 'card2', 'card3']) $(id).addEventListener('input', formatCard);
  try {
    st.sale = await api.sale(saleId);
  } catch (err) {
    st.sale = null;
    return ended(err.status === 404 ? 'missing' : 'unreachable');
  }
  renderSale();
  setInterval(tick, 250);
  tick();
  st.ticket = store.get(KEY.ticket);
  if (st.ticket) {
    try {
      onEvent('status', await api.status(saleId, st.ticket));
      if (!FINAL.has(st.view)) startFeed();
      if (st.view !== 'loading') return;
    } catch (err) {
      if (err.status >= 400 && err.status < 500) {
        store.del(KEY.ticket);
        st.ticket = null;
      }
    }
  }
  const s = st.sale.status;
  if (s === 'sold_out') soldOut();
  else if (s === 'ended' || s === 'cancelled') ended(s);
  else show('sale', s === 'scheduled' ? 'Starts soon' : 'Open now');
  paintPreauth();
}

main();
