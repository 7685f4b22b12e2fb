/**
 * The sale page's final views: confirmed, sold out, ended. Once the page is in one of them it
 * stays there, so a late broadcast or poll cannot pull the shopper back into the queue.
 */
import { money } from '/js/shop-api.js';
import { $, FINAL, announce, show, st } from '/js/sale-state.js';

export function confirmed(order) {
  const item = st.sale?.items.find((i) => i.sku === order.sku);
  $('order-item').textContent = order.name ?? item?.name ?? order.sku;
  $('order-amount').textContent = money(order.amount_cents, order.currency ?? item?.currency ?? 'EUR');
  $('order-id').textContent = order.order_id;
  show('confirmed', 'Order confirmed');
  announce('Order confirmed.', true);
}

export function soldOut() {
  // Our own purchase may have taken the last unit: its answer, not the broadcast, decides.
  if (st.buying) {
    st.soldOutLater = true;
    return;
  }
  if (FINAL.has(st.view) || st.view === 'pay') return;
  $('soldout-card').hidden = !st.preauth;
  show('soldout', 'Sold out');
  announce('This drop is sold out.', true);
}

const ENDINGS = {
  ended: ['This sale has ended', 'Thanks for stopping by — keep an eye out for the next drop.'],
  cancelled: ['This sale was cancelled', 'Nothing was charged. Any card authorisation has been released.'],
  expired: ['Your turn has passed', 'Admitted shoppers have a few minutes to buy, and yours ran out. Any card authorisation is released automatically.'],
  window: ['The payment window has passed', 'The item went back on sale. You were not charged.'],
  missing: ['We can’t find this sale', 'The link may be old or mistyped.'],
  unreachable: ['We can’t reach the shop right now', 'Please check your connection and try again.'],
};

export function ended(kind) {
  if (FINAL.has(st.view) || (st.view === 'pay' && kind !== 'window')) return;
  const [title, text] = ENDINGS[kind] ?? ENDINGS.ended;
  $('ended-title').textContent = title;
  $('ended-text').textContent = text;
  $('ended-action').hidden = kind !== 'unreachable';
  show('ended', title);
}
