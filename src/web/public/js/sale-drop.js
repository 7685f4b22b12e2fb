/**
 * The sale page before the shopper joins: the drop, its countdown, and the Join button with its
 * proof-of-work. The page also comes back here when a stored ticket turns out to be no good.
 */
import { api, store, userToken, sleep, clockFace, startWords } from '/js/shop-api.js';
import { $, KEY, TICKET_GONE, saleId, show, st, stopFeed } from '/js/sale-state.js';
import { renderProducts, updateStock } from '/js/sale-products.js';
import { ended, soldOut } from '/js/sale-endings.js';

/** The server flags an entry sent sooner than this after its challenge was issued as a bot's. */
const MIN_SOLVE_MS = 700;

export function renderSale() {
  const s = st.sale;
  $('sale-name').textContent = s.name;
  for (const id of ['waiting-sale', 'admitted-sale']) $(id).textContent = s.name;
  st.startsAt = Date.parse(s.starts_at);
  for (const item of s.items) st.stock[item.sku] ??= item.remaining;
  // Items change only before the start (an admin's edit): draw them again only then.
  const items = JSON.stringify(s.items.map((i) => [i.sku, i.name, i.price_cents, i.quantity]));
  if (items !== st.items) {
    st.items = items;
    renderProducts($('products-intro'), null);
  }
  const pow = s.bot_protection?.pow_difficulty > 0;
  const scheduled = s.status === 'scheduled';
  $('countdown').hidden = !scheduled;
  $('open-now').hidden = scheduled;
  $('cd-when').textContent = scheduled ? `Opens ${startWords(st.startsAt)}` : '';
  $('join-note').textContent = !scheduled
    ? 'Places go in order of arrival. We let you in as soon as it’s your turn.'
    : s.queue?.mode === 'randomized_prequeue'
      ? 'Everyone who joins before the start gets a random place — no need to rush.'
      : 'Join now to hold your place. Places go in order of arrival.';
  $('pow-label').textContent = pow ? 'Checking your browser…' : 'Joining…';
}

async function refreshSale() {
  try {
    st.sale = await api.sale(saleId);
    renderSale();
    updateStock(st.sale.items);
    if (st.view === 'sale' && st.sale.status === 'sold_out') soldOut();
    else if (st.view === 'sale' && (st.sale.status === 'ended' || st.sale.status === 'cancelled')) ended(st.sale.status);
  } catch {
    /* keep what we have; the next tick tries again */
  }
}

/** One tick of the page clock (`now` is the server's). */
export function tickSale(now) {
  const untilStart = st.startsAt - now;
  if (st.view === 'sale') {
    $('cd-time').textContent = clockFace(untilStart);
    // At the start, ask the server (not the device) whether the sale is open; then every 5 s for stock.
    const due = st.sale.status === 'scheduled' ? untilStart <= 0 : true;
    if (due && performance.now() > st.refreshAt) {
      st.refreshAt = performance.now() + (st.sale.status === 'scheduled' ? 1000 : 5000);
      void refreshSale();
    }
  }
}

// Proof-of-work runs in a worker, so the page (and its progress bar) stays responsive.
function solve(challenge) {
  return new Promise((resolve, reject) => {
    const worker = new Worker('/js/pow-solver.js');
    const bar = $('pow-bar');
    bar.max = challenge.maxnumber;
    bar.value = 0;
    const label = $('pow-label');
    worker.onmessage = ({ data }) => {
      if (data.progress) {
        bar.value = data.progress;
        label.textContent = `Checking your browser… ${Math.floor((100 * data.progress) / challenge.maxnumber)}%`;
      }
      if (data.solution) {
        bar.value = challenge.maxnumber;
        label.textContent = 'Done — joining the queue…';
        worker.terminate();
        resolve(data.solution);
      }
      if (data.error) {
        worker.terminate();
        reject(new Error(data.error));
      }
    };
    worker.onerror = (e) => {
      worker.terminate();
      reject(new Error(e.message || 'worker failed'));
    };
    worker.postMessage(challenge);
  });
}

/**
 * `onEntered(status)` takes the new ticket's first status. It is passed in rather than imported
 * because it leads to every other view, and those views come back here when a ticket is lost.
 */
export async function join(onEntered) {
  const btn = $('join');
  btn.disabled = true;
  btn.hidden = true;
  $('pow').hidden = false;
  $('join-error').textContent = '';
  try {
    await userToken();
    let entered;
    for (let attempt = 0; !entered; attempt++) {
      const challenge = await api.challenge(saleId);
      const got = performance.now();
      let body = {};
      if (challenge.challenge) {
        if (!crypto.subtle) throw new Error('This page needs a secure (https) connection to join the queue.');
        body = { altcha: await solve(challenge) };
        await sleep(MIN_SOLVE_MS - (performance.now() - got));
      }
      try {
        entered = await api.enter(saleId, body);
      } catch (err) {
        // A challenge can expire or be spent (two tabs): one fresh try.
        if (err.code !== 'POW_INVALID' || attempt > 0) throw err;
      }
    }
    st.ticket = entered.queue_ticket;
    store.set(KEY.ticket, st.ticket);
    onEntered(entered);
  } catch (err) {
    btn.disabled = false;
    btn.hidden = false;
    $('pow').hidden = true;
    if (err.code === 'SALE_ENDED' || err.code === 'SALE_CANCELLED') return ended(err.code === 'SALE_ENDED' ? 'ended' : 'cancelled');
    if (err.code === 'DEMO_DISABLED') return void ($('join-error').textContent = 'Please sign in to the shop first, then come back to this page.');
    $('join-error').textContent =
      err.status === 0
        ? 'We couldn’t reach the shop. Check your connection and try again.'
        : err.code === 'RATE_LIMITED'
          ? 'Lots of people are joining right now. Please try again in a few seconds.'
          : err.message;
  }
}

export function ticketLost(err) {
  if (err.code === 'SALE_NOT_FOUND') return ended('missing');
  if (!TICKET_GONE.test(err.code)) return;
  store.del(KEY.ticket);
  st.ticket = null;
  stopFeed();
  st.view = 'lost';
  show('sale', 'Join the queue');
  $('join-error').textContent =
    err.code === 'QUEUE_RESTARTED'
      ? 'The queue was restarted. Please join again — it only takes a moment.'
      : 'We couldn’t restore your place. Please join the queue again.';
}
