/**
 * The drop's product cards and their stock, drawn in two views (before joining, and on your
 * turn with Buy buttons). A card's stock is repainted in place, never redrawn, so focus and a
 * screen reader's position survive the live updates.
 */
import { clock, money } from '/js/shop-api.js';
import { $, st } from '/js/sale-state.js';
import { soldOut } from '/js/sale-endings.js';

const PALETTES = [
  ['#c7d2fe', '#6366f1'],
  ['#bae6fd', '#0284c7'],
  ['#fbcfe8', '#db2777'],
  ['#bbf7d0', '#059669'],
  ['#fde68a', '#d97706'],
  ['#ddd6fe', '#7c3aed'],
];

/** `onBuy(sku)` is the Buy button's action; without it the cards show no button. */
export function renderProducts(list, onBuy) {
  for (const els of st.products.values()) for (let i = els.length - 1; i >= 0; i--) if (list.contains(els[i])) els.splice(i, 1);
  list.replaceChildren();
  for (const item of st.sale.items) {
    const li = $('product-tpl').content.firstElementChild.cloneNode(true);
    const hash = [...item.sku].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
    const [a, b] = PALETTES[hash % PALETTES.length];
    li.querySelector('.art').style.background = `linear-gradient(135deg, ${a}, ${b})`;
    // The variant's initial when the name has one ("Aurora X1 · Frost" → F), else the name's.
    const label = item.name.includes('·') ? item.name.split('·').pop() : item.name;
    li.querySelector('.art-mono').textContent = label
      .replace(/[^\p{L}\p{N}]/gu, '')
      .slice(0, 1)
      .toUpperCase();
    li.querySelector('.product-name').textContent = item.name;
    li.querySelector('.product-price').textContent = money(item.price_cents, item.currency);
    const btn = li.querySelector('.buy');
    if (onBuy) {
      btn.hidden = false;
      btn.dataset.sku = item.sku;
      btn.addEventListener('click', () => onBuy(item.sku));
    }
    list.append(li);
    if (!st.products.has(item.sku)) st.products.set(item.sku, []);
    st.products.get(item.sku).push(li);
  }
  paintStock();
}

export function paintStock() {
  const open = st.sale.status !== 'scheduled' || clock.now() >= st.startsAt;
  let total = 0;
  for (const item of st.sale.items) {
    const left = st.stock[item.sku] ?? item.remaining;
    total += left;
    for (const li of st.products.get(item.sku) ?? []) {
      li.classList.toggle('gone', left === 0);
      li.querySelector('.stock-bar span').style.width = `${item.quantity ? Math.round((100 * left) / item.quantity) : 0}%`;
      li.querySelector('.stock-text').textContent =
        left === 0
          ? 'Sold out'
          : !open
            ? `${left.toLocaleString()} available`
            : left <= 10
              ? `Only ${left} left`
              : `${left.toLocaleString()} of ${item.quantity.toLocaleString()} left`;
      const btn = li.querySelector('.buy');
      if (!btn.hidden && !st.buying) {
        btn.disabled = left === 0;
        btn.textContent = left === 0 ? 'Sold out' : `Buy now · ${money(item.price_cents, item.currency)}`;
        // The visible words first (what a voice user says), then which item it is.
        btn.setAttribute('aria-label', `${btn.textContent}: ${item.name}`);
      }
    }
  }
  $('waiting-stock').textContent = total.toLocaleString();
  return total;
}

export function updateStock(items) {
  for (const { sku, remaining } of items) st.stock[sku] = remaining;
  const total = paintStock();
  if (total === 0 && (st.view === 'admitted' || st.view === 'waiting')) soldOut();
}
