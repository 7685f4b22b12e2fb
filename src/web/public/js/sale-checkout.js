/**
 * The shopper's turn and the payment: live stock with one-tap Buy, then paying for an order the
 * shop holds. Buying is built to be sent again safely: one idempotency key per intent.
 */
import { api, store, uuid, money, sleep, clockFace } from '/js/shop-api.js';
import { $, FINAL, KEY, saleId, announce, show, st } from '/js/sale-state.js';
import { paintStock, renderProducts, updateStock } from '/js/sale-products.js';
import { confirmed, ended, soldOut } from '/js/sale-endings.js';
import { ticketLost } from '/js/sale-drop.js';
import { cardToken, paintPreauth } from '/js/sale-waiting.js';

export async function admitted(d) {
  if (FINAL.has(st.view) || st.view === 'pay') return;
  if (d.admission_expires_at) st.admitUntil = Date.parse(d.admission_expires_at);
  if (st.view === 'admitted') return;
  show('admitted', 'Your turn');
  renderProducts($('products-buy'), buy);
  $('pay-card').hidden = !!st.preauth;
  $('paying-with').hidden = !st.preauth;
  if (st.preauth) $('paying-card').textContent = `Card ending ${st.preauth.last4}`;
  paintPreauth();
  announce('It’s your turn. You can buy now.', true);
  // The SSE message carries neither the turn's end nor per-item stock: fetch both once.
  const [view, inv] = await Promise.all([st.admitUntil ? null : api.status(saleId, st.ticket).catch(() => null), api.inventory(saleId).catch(() => null)]);
  if (view?.admission_expires_at) st.admitUntil = Date.parse(view.admission_expires_at);
  if (inv) updateStock(inv.items);
}

async function buy(sku) {
  if (st.buying) return;
  const err = $('buy-error');
  err.textContent = '';
  $('buy-retry').hidden = true;
  let token;
  if (!st.preauth) {
    token = cardToken($('card2').value);
    if (!token) {
      err.textContent = 'Please enter your card number to buy.';
      $('card2').focus();
      return;
    }
  }
  // One key per intent to buy this item: a retry of the same intent must not make a second order.
  if (st.intent?.sku !== sku) st.intent = { sku, key: uuid() };
  const { key } = st.intent;
  st.buying = true;
  for (const b of document.querySelectorAll('.buy')) {
    b.disabled = true;
    if (b.dataset.sku === sku) {
      b.textContent = 'Buying…';
      b.removeAttribute('aria-label');
    }
  }
  const body = { ticket: st.ticket, sku, quantity: 1, ...(token ? { payment_token: token } : {}) };
  try {
    let order;
    for (let attempt = 0; !order; attempt++) {
      try {
        order = await api.purchase(saleId, body, key);
      } catch (x) {
        if (!(x.transient || x.code === 'RATE_LIMITED') || attempt >= 5) throw x;
        await sleep(x.retryAfter ? x.retryAfter * 1000 : 300 * 2 ** attempt);
      }
    }
    st.intent = null;
    const item = st.sale.items.find((i) => i.sku === order.sku);
    store.set(KEY.order, JSON.stringify({ ...order, name: item?.name }));
    if (order.status === 'confirmed') confirmed(order);
    else payOwed(order);
  } catch (x) {
    buyFailed(x, sku);
  } finally {
    st.buying = false;
    if (st.view === 'admitted') paintStock();
    if (st.soldOutLater && st.view === 'admitted') soldOut();
  }
}

function buyFailed(x, sku) {
  const err = $('buy-error');
  if (!x.transient) st.intent = null;
  switch (x.code) {
    case 'SOLD_OUT':
    case 'INSUFFICIENT_STOCK':
      st.stock[sku] = 0;
      if (paintStock() === 0) return soldOut();
      err.textContent = 'That one just sold out — but there’s still another option.';
      return;
    case 'PAYMENT_DECLINED':
      st.preauth = null;
      store.del(KEY.auth);
      $('pay-card').hidden = false;
      $('paying-with').hidden = true;
      err.textContent = 'Your card was declined — nothing was charged. Please try another card.';
      $('card2').focus();
      return;
    case 'ADMISSION_EXPIRED':
      return ended('expired');
    case 'SALE_ENDED':
      return ended('ended');
    case 'SALE_CANCELLED':
      return ended('cancelled');
    case 'TICKET_INVALID':
    case 'TICKET_EXPIRED':
    case 'TICKET_WRONG_USER':
    case 'TICKET_WRONG_SALE':
    case 'QUEUE_RESTARTED':
      return ticketLost(x);
    case 'LIMIT_REACHED':
      err.textContent = 'You’ve already bought the most this drop allows per person.';
      return;
  }
  if (x.transient || x.code === 'RATE_LIMITED') {
    err.textContent = 'We couldn’t reach the shop. Your order is safe to send again — you won’t be charged twice.';
    $('buy-retry').hidden = false;
    $('buy-retry').onclick = () => buy(sku);
  } else {
    err.textContent = x.message;
  }
}

/** The ticket has bought: show the order this tab kept, or ask for the payment it still owes. */
export function purchased() {
  const order = store.json(KEY.order);
  if (order?.status === 'reserved') return payOwed(order);
  if (order) return confirmed(order);
  $('order-item').textContent = 'Your item from this drop';
  $('order-amount').closest('div').hidden = true;
  $('order-id').closest('div').hidden = true;
  show('confirmed', 'Order confirmed');
}

function payOwed(order) {
  st.payUntil = Date.parse(order.reservation_expires_at);
  const item = st.sale.items.find((i) => i.sku === order.sku);
  $('pay-item').textContent = item?.name ?? order.sku;
  $('pay-btn').textContent = `Pay ${money(order.amount_cents, order.currency)}`;
  $('pay-form').onsubmit = async (e) => {
    e.preventDefault();
    const token = cardToken($('card3').value);
    if (!token) {
      $('pay-error').textContent = 'Please enter a card number.';
      return;
    }
    $('pay-btn').disabled = true;
    try {
      const paid = await api.pay(order.order_id, token);
      store.set(KEY.order, JSON.stringify({ ...paid, name: item?.name }));
      confirmed(paid);
    } catch (x) {
      if (x.code === 'PAYMENT_WINDOW_PASSED') return ended('window');
      $('pay-error').textContent = x.code === 'PAYMENT_DECLINED' ? 'That card was declined. Please try another card.' : x.message;
    } finally {
      $('pay-btn').disabled = false;
    }
  };
  paintPreauth();
  show('pay', 'Pay for your order');
}

/** One tick of the page clock (`now` is the server's): a turn that runs out ends the page. */
export function tickCheckout(now) {
  if (st.view === 'admitted' && st.admitUntil) {
    $('admit-left').textContent = clockFace(st.admitUntil - now);
    if (st.admitUntil - now < -1000 && !st.buying) ended('expired');
  }
  if (st.view === 'pay') $('pay-left').textContent = clockFace(st.payUntil - now);
}
