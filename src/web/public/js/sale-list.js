/** The home page: current drops, or straight to the only one. */
import { api, money, startWords } from '/js/shop-api.js';

const LABEL = { scheduled: 'Coming up', open: 'Open now', sold_out: 'Sold out' };
const note = document.getElementById('drops-note');

async function main() {
  let sales;
  try {
    sales = (await api.sales()).filter((s) => s.status !== 'ended' && s.status !== 'cancelled');
  } catch {
    note.textContent = 'We can’t reach the shop right now. Please try again in a moment.';
    return;
  }
  if (sales.length === 1 && !new URLSearchParams(location.search).has('all')) {
    location.replace(`/sale?id=${encodeURIComponent(sales[0].id)}`);
    return;
  }
  note.textContent = sales.length ? 'Pick a drop to join its queue.' : 'No drops right now. Check back soon.';
  // Open first, then the soonest to start, and the sold out last.
  const rank = { open: 0, scheduled: 1, sold_out: 2 };
  sales.sort((a, b) => rank[a.status] - rank[b.status] || Date.parse(a.starts_at) - Date.parse(b.starts_at));
  const list = document.getElementById('drops');
  for (const s of sales) {
    const li = document.getElementById('drop-tpl').content.firstElementChild.cloneNode(true);
    li.querySelector('a').href = `/sale?id=${encodeURIComponent(s.id)}`;
    const badge = li.querySelector('.status');
    badge.textContent = LABEL[s.status] ?? s.status;
    badge.classList.add(`status-${s.status}`);
    li.querySelector('.drop-name').textContent = s.name;
    li.querySelector('.drop-when').textContent =
      s.status === 'scheduled'
        ? `Starts ${startWords(Date.parse(s.starts_at))}`
        : s.status === 'sold_out'
          ? 'Every unit found a home'
          : `${s.items.reduce((n, i) => n + i.remaining, 0).toLocaleString()} left`;
    const from = Math.min(...s.items.map((i) => i.price_cents));
    li.querySelector('.drop-from').textContent = `${s.items.length > 1 ? 'From ' : ''}${money(from, s.items[0].currency)}`;
    list.append(li);
  }
}

main();
