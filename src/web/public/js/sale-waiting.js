/**
 * The waiting room: the shopper's place, a steady ETA, and the card pre-authorisation that makes
 * buying one tap when their turn comes. The card helpers live here because the card is first
 * asked for here; the checkout reuses them.
 */
import { api, clock, store, isDemo, money, clockFace, waitWords } from '/js/shop-api.js';
import { $, FINAL, KEY, TICKET_GONE, announce, saleId, show, st } from '/js/sale-state.js';
import { soldOut } from '/js/sale-endings.js';
import { ticketLost } from '/js/sale-drop.js';

const DEMO_CARD = '4242 4242 4242 4242';

export function waiting(d) {
  if (FINAL.has(st.view) || st.view === 'pay') return;
  if (st.view !== 'waiting') {
    show('waiting', 'In the queue');
    paintPreauth();
    announce('You are in the queue.', true);
  }
  if (d.position != null) {
    if (d.position > st.firstPos) st.firstPos = d.position;
    $('position').textContent = d.position.toLocaleString();
    // Progress counts the shopper too: at the front of the line the bar is full.
    const pct = Math.round((100 * (st.firstPos - d.position + 1)) / st.firstPos);
    const bar = $('queue-progress');
    bar.setAttribute('aria-valuenow', String(pct));
    bar.firstElementChild.style.width = `${Math.max(3, pct)}%`;
    $('queue-progress-label').textContent = d.position === 1 ? 'You’re next' : `${(d.position - 1).toLocaleString()} ahead of you`;
    announce(`Your place in line: ${d.position}.`);
  } else {
    $('position').textContent = 'Drawn at start';
    $('queue-progress-label').textContent = 'Places are drawn when the sale opens';
  }
  // A steady ETA: each estimate moves the target a quarter of the way, and the clock runs it down.
  if (d.estimated_wait_sec != null) {
    const target = clock.now() + d.estimated_wait_sec * 1000;
    st.etaAt = st.etaAt === null ? target : st.etaAt + (target - st.etaAt) / 4;
  }
}

/** One tick of the page clock (`now` is the server's). */
export function tickWaiting(now) {
  const untilStart = st.startsAt - now;
  if (st.view === 'waiting') {
    $('opens').hidden = untilStart <= 0;
    $('opens-in').textContent = clockFace(untilStart);
    if (st.etaAt !== null) {
      const eta = Math.max(0, st.etaAt - now);
      $('eta').textContent = untilStart > 0 && eta - untilStart < 15_000 ? 'as soon as it opens' : waitWords(eta / 1000);
    }
  }
}

export function paintPreauth() {
  const done = !!st.preauth;
  $('preauth-fields').hidden = done;
  $('preauth-ok').hidden = !done;
  if (done)
    $('preauth-ok').textContent =
      `Card ending ${st.preauth.last4} is ready: ${money(st.preauth.amount, st.preauth.currency)} authorised. We only charge you if you get one.`;
  $('testcards').hidden = !isDemo();
  for (const id of ['card', 'card2', 'card3']) if (isDemo() && !$(id).value) $(id).value = DEMO_CARD;
}

export const cardToken = (v) => {
  const t = v.trim().replace(/[\s-]/g, '');
  return /^\d{12,19}$/.test(t) || /^tok_\w+$/.test(t) ? t : null;
};

export async function preAuth(e) {
  e.preventDefault();
  const token = cardToken($('card').value);
  const err = $('preauth-error');
  err.textContent = '';
  if (!token) {
    err.textContent = 'Please enter a card number.';
    $('card').focus();
    return;
  }
  const btn = $('preauth-btn');
  btn.disabled = true;
  btn.textContent = 'Authorising…';
  try {
    const r = await api.preAuth(saleId, st.ticket, token);
    st.preauth = { amount: r.amount_cents, currency: r.currency, last4: token.slice(-4) };
    store.set(KEY.auth, JSON.stringify(st.preauth));
    paintPreauth();
    $('preauth-ok').focus();
  } catch (x) {
    if (x.code === 'SOLD_OUT') return soldOut();
    if (TICKET_GONE.test(x.code)) return ticketLost(x);
    err.textContent =
      x.code === 'PAYMENT_DECLINED'
        ? 'That card was declined — nothing was charged. Please try another card.'
        : x.status === 0 || x.transient
          ? 'We couldn’t reach the payment service. Please try again.'
          : x.message;
  } finally {
    btn.disabled = false;
    btn.textContent = 'Authorise card';
  }
}
