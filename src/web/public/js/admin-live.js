/**
 * One sale, live: the counters polled every second into a rolling series (five minutes), drawn
 * with Chart.js; the items, orders and payments by status; and the latest orders.
 */
import { admin, saleUrl, money, when, badge, el, STATUS_LABEL } from '/js/admin-api.js';

const STATS_MS = 1000;
const ORDERS_MS = 3000;
const POINTS = 300;
const COLORS = ['#4f46e5', '#0284c7', '#d97706', '#059669', '#dc2626', '#7c3aed', '#475569', '#db2777'];
const $ = (id) => document.getElementById(id);

/** Starts watching a sale; returns the function that stops it. */
export function watchSale(id, { cancel }) {
  let stopped = false;
  let sale = null;
  let statsTimer = 0;
  let lastRejections = null;
  let lastAt = 0;
  let ordersSeen = '';
  let ordersTimer = 0;
  const charts = makeCharts();
  $('live-error').textContent = '';
  $('live-title').textContent = 'Loading…';

  const loadSale = async () => {
    sale = await admin(saleUrl(id));
    $('live-title').textContent = sale.name;
    $('live-when').textContent =
      `${when(sale.starts_at)} – ${when(sale.ends_at)} · ${sale.items.length} item${sale.items.length > 1 ? 's' : ''} · ${sale.queue.admission_rate_per_sec}/s admission`;
    $('live-shop').href = `/sale?id=${encodeURIComponent(sale.id)}`;
    $('live-edit').href = `#/edit/${encodeURIComponent(sale.id)}`;
    paintStatus(sale.status);
  };

  const paintStatus = (status) => {
    const b = $('live-status');
    b.className = `status status-${status}`;
    b.textContent = STATUS_LABEL[status] ?? status;
    $('live-edit').hidden = status !== 'scheduled';
    $('live-cancel').hidden = status === 'ended' || status === 'cancelled';
  };

  const pollStats = async () => {
    if (stopped) return;
    try {
      const s = await admin(saleUrl(id, '/stats'));
      if (stopped) return;
      $('live-error').textContent = '';
      if (sale && s.status !== sale.status) {
        sale.status = s.status;
        paintStatus(s.status);
      }
      paintStats(s);
      const at = Date.parse(s.server_time);
      const rejections = perSecond(lastRejections, s.rejections, (at - lastAt) / 1000);
      lastRejections = s.rejections;
      lastAt = at;
      charts.push(s, rejections);
      // A new or changed order shows in the list at once, not at the next slow poll.
      const orders = JSON.stringify(s.orders);
      if (orders !== ordersSeen) {
        ordersSeen = orders;
        clearTimeout(ordersTimer);
        void pollOrders();
      }
    } catch (err) {
      if (!stopped) $('live-error').textContent = `Live counters paused: ${err.message}`;
    }
    if (!stopped) statsTimer = setTimeout(pollStats, STATS_MS);
  };

  const pollOrders = async () => {
    if (stopped) return;
    try {
      const { orders } = await admin(`${saleUrl(id, '/orders')}?limit=50`);
      if (!stopped) paintOrders(orders);
    } catch {
      /* the stats line says so */
    }
    clearTimeout(ordersTimer);
    if (!stopped) ordersTimer = setTimeout(pollOrders, ORDERS_MS);
  };

  $('live-cancel').onclick = async () => {
    if (sale && (await cancel(sale))) await loadSale();
  };

  loadSale().then(
    () => {
      pollStats();
    },
    (err) => {
      $('live-title').textContent = 'Sale';
      $('live-error').textContent = err.message;
    },
  );

  return () => {
    stopped = true;
    clearTimeout(statsTimer);
    clearTimeout(ordersTimer);
    charts.destroy();
  };
}

/** Refusals per second over the last interval, per reason, from two cumulative readings. */
function perSecond(before, now, seconds) {
  const out = {};
  for (const [code, n] of Object.entries(now ?? {})) {
    out[code] = before && seconds > 0 ? Math.round((Math.max(0, n - (before[code] ?? 0)) / seconds) * 10) / 10 : 0;
  }
  return out;
}

function paintStats(s) {
  const remaining = s.items.reduce((n, i) => n + i.remaining, 0);
  const set = (id, v) => {
    $(id).textContent = typeof v === 'number' ? v.toLocaleString() : v;
  };
  set('kpi-entered', s.entered);
  set('kpi-waiting', s.waiting);
  set('kpi-admitted', s.admitted);
  set('kpi-holds', s.holds);
  set('kpi-sold', s.sold);
  set('kpi-remaining', remaining);
  set('kpi-rps', s.requests_per_sec);
  set('kpi-sse', s.sse_connections);
  set('kpi-nodes', s.nodes_reporting ?? 1);

  const rows = s.items.map((i) => [i.sku, i.quantity, i.sold, i.held, i.remaining]);
  const body = $('items-live').tBodies[0];
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement('tr');
      cells.forEach((c, k) => tr.append(el('td', typeof c === 'number' ? c.toLocaleString() : c, k ? 'num' : 'mono-cell')));
      return tr;
    }),
  );
  counts('order-counts', 'Orders', s.orders);
  counts('auth-counts', 'Card authorisations', s.authorizations);
  counts('reject-counts', 'Rejections', s.rejections);
}

function counts(id, title, map) {
  const entries = Object.entries(map ?? {}).filter(([, n]) => n > 0);
  const chips = entries.map(([k, n]) => {
    const chip = el('span', '', 'chip');
    chip.append(el('span', k.toLowerCase().replace(/_/g, ' ')), el('strong', n.toLocaleString()));
    return chip;
  });
  $(id).replaceChildren(el('h3', title), ...(chips.length ? chips : [el('span', 'none yet', 'muted small')]));
}

function paintOrders(orders) {
  orders = [...orders].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  $('orders-empty').hidden = orders.length > 0;
  $('orders-note').textContent = orders.length ? `· latest ${orders.length}` : '';
  $('orders').tBodies[0].replaceChildren(
    ...orders.map((o) => {
      const tr = document.createElement('tr');
      const status = document.createElement('td');
      status.append(badge(o.status, o.status));
      tr.append(
        el('td', new Date(o.created_at).toLocaleTimeString()),
        el('td', o.order_id.slice(0, 8), 'mono-cell'),
        el('td', o.user_id.length > 18 ? `${o.user_id.slice(0, 16)}…` : o.user_id, 'mono-cell'),
        el('td', o.sku, 'mono-cell'),
        el('td', String(o.quantity), 'num'),
        el('td', money(o.amount_cents, o.currency), 'num'),
        status,
      );
      return tr;
    }),
  );
}

// ——— charts ———

function makeCharts() {
  const Chart = globalThis.Chart;
  if (!Chart) return { push() {}, destroy() {} };
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = '#4b5563';
  const labels = [];
  const line = (canvas, series, { stacked = false, bar = false } = {}) =>
    new Chart($(canvas), {
      type: bar ? 'bar' : 'line',
      data: { labels, datasets: series.map((name, i) => dataset(name, i, bar)) },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        plugins: { legend: { position: 'bottom', labels: { boxWidth: 10, boxHeight: 10, usePointStyle: true } } },
        scales: {
          x: { stacked, ticks: { maxTicksLimit: 6, maxRotation: 0 }, grid: { display: false } },
          y: { stacked, beginAtZero: true, ticks: { precision: 0, maxTicksLimit: 5 }, grid: { color: '#eef0f4' } },
        },
      },
    });
  const queue = line('chart-queue', ['Waiting', 'Admitted', 'Entered']);
  const stock = line('chart-stock', ['Remaining', 'Holds', 'Sold']);
  const rps = line('chart-rps', ['Requests/s']);
  const rejections = line('chart-rejections', [], { stacked: true, bar: true });
  rps.data.datasets[0].fill = 'origin';
  rps.data.datasets[0].backgroundColor = 'rgba(79, 70, 229, .12)';

  const all = [queue, stock, rps, rejections];
  return {
    push(s, rejected) {
      labels.push(new Date(s.server_time).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' }));
      const remaining = s.items.reduce((n, i) => n + i.remaining, 0);
      add(queue, [s.waiting, s.admitted, s.entered]);
      add(stock, [remaining, s.holds, s.sold]);
      add(rps, [s.requests_per_sec]);
      // A reason gets its series when first seen, padded with zeros to line up.
      for (const code of Object.keys(rejected)) {
        if (!rejections.data.datasets.some((d) => d.label === code)) {
          const d = dataset(code, rejections.data.datasets.length + 1, true);
          d.data = new Array(labels.length - 1).fill(0);
          rejections.data.datasets.push(d);
        }
      }
      add(
        rejections,
        rejections.data.datasets.map((d) => rejected[d.label] ?? 0),
      );
      if (labels.length > POINTS) {
        labels.shift();
        for (const c of all) for (const d of c.data.datasets) d.data.shift();
      }
      for (const c of all) c.update('none');
    },
    destroy() {
      for (const c of all) c.destroy();
    },
  };
}

function dataset(label, i, bar) {
  const color = COLORS[i % COLORS.length];
  return bar
    ? { label, data: [], backgroundColor: color, borderWidth: 0, barPercentage: 1, categoryPercentage: 0.9 }
    : { label, data: [], borderColor: color, backgroundColor: color, borderWidth: 2, pointRadius: 0, tension: 0.25 };
}

function add(chart, values) {
  chart.data.datasets.forEach((d, i) => d.data.push(values[i] ?? 0));
}
