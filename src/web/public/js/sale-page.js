/**
 * The shopper's sale page, one state at a time: the drop with its countdown → the proof-of-work
 * → the waiting room (live place, ETA, card pre-authorisation) → your turn (live stock, one-tap
 * Buy) → confirmed, or sold out, or ended. Every time shown is the server's (see `clock`).
 */
import { api, clock, store, isDemo, userToken, uuid, money, sleep, clockFace, waitWords, startWords } from '/js/shop-api.js';
import { follow } from '/js/live-feed.js';

const $ = (id) => document.getElementById(id);
const saleId = new URLSearchParams(location.search).get('id');
const KEY = { ticket: `stampede.ticket.${saleId}`, order: `stampede.order.${saleId}`, auth: `stampede.preauth.${saleId}` };
/** The server flags an entry sent sooner than this after its challenge was issued as a bot's. */
const MIN_SOLVE_MS = 700;
const DEMO_CARD = '4242 4242 4242 4242';
const FINAL = new Set(['confirmed', 'soldout', 'ended']);
/** Refusals that mean the stored ticket is no good: join again. */
const TICKET_GONE = /^(TICKET_|QUEUE_RESTARTED)/;

const st = {
  sale: null, items: '', ticket: null, view: 'loading', feed: null, stock: {}, startsAt: 0, refreshAt: 0,
  firstPos: 0, etaAt: null, admitUntil: 0, payUntil: 0, buying: false, intent: null, soldOutLater: false,
  preauth: store.json(KEY.auth), lastAnnounce: 0, products: new Map(),
};

// ——— views ———

function show(view, title) {
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

function announce(text, force = false) {
  const now = performance.now();
  if (!force && now - st.lastAnnounce < 10_000) return;
  st.lastAnnounce = now;
  $('announce').textContent = text;
}

// ——— products and stock ———

const PALETTES = [['#c7d2fe', '#6366f1'], ['#bae6fd', '#0284c7'], ['#fbcfe8', '#db2777'], ['#bbf7d0', '#059669'], ['#fde68a', '#d97706'], ['#ddd6fe', '#7c3aed']];

function renderProducts(list, withBuy) {
  for (const els of st.products.values()) for (let i = els.length - 1; i >= 0; i--) if (list.contains(els[i])) els.splice(i, 1);
  list.replaceChildren();
  for (const item of st.sale.items) {
    const li = $('product-tpl').content.firstElementChild.cloneNode(true);
    const hash = [...item.sku].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
    const [a, b] = PALETTES[hash % PALETTES.length];
    li.querySelector('.art').style.background = `linear-gradient(135deg, ${a}, ${b})`;
    // The variant's initial when the name has one ("Aurora X1 · Frost" → F), else the name's.
    const label = item.name.includes('·') ? item.name.split('·').pop() : item.name;
    li.querySelector('.art-mono').textContent = label.replace(/[^\p{L}\p{N}]/gu, '').slice(0, 1).toUpperCase();
    li.querySelector('.product-name').textContent = item.name;
    li.querySelector('.product-price').textContent = money(item.price_cents, item.currency);
    const btn = li.querySelector('.buy');
    if (withBuy) {
      btn.hidden = false;
      btn.dataset.sku = item.sku;
      btn.addEventListener('click', () => buy(item.sku));
    }
    list.append(li);
    if (!st.products.has(item.sku)) st.products.set(item.sku, []);
    st.products.get(item.sku).push(li);
  }
  paintStock();
}

function paintStock() {
  const open = st.sale.status !== 'scheduled' || clock.now() >= st.startsAt;
  let total = 0;
  for (const item of st.sale.items) {
    const left = st.stock[item.sku] ?? item.remaining;
    total += left;
    for (const li of st.products.get(item.sku) ?? []) {
      li.classList.toggle('gone', left === 0);
      li.querySelector('.stock-bar span').style.width = `${item.quantity ? Math.round((100 * left) / item.quantity) : 0}%`;
      li.querySelector('.stock-text').textContent = left === 0 ? 'Sold out'
        : !open ? `${left.toLocaleString()} available`
          : left <= 10 ? `Only ${left} left` : `${left.toLocaleString()} of ${item.quantity.toLocaleString()} left`;
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

function updateStock(items) {
  for (const { sku, remaining } of items) st.stock[sku] = remaining;
  const total = paintStock();
  if (total === 0 && (st.view === 'admitted' || st.view === 'waiting')) soldOut();
}

// ——— the drop, before joining ———

function renderSale() {
  const s = st.sale;
  $('sale-name').textContent = s.name;
  for (const id of ['waiting-sale', 'admitted-sale']) $(id).textContent = s.name;
  st.startsAt = Date.parse(s.starts_at);
  for (const item of s.items) st.stock[item.sku] ??= item.remaining;
  // Items change only before the start (an admin's edit): draw them again only then.
  const items = JSON.stringify(s.items.map((i) => [i.sku, i.name, i.price_cents, i.quantity]));
  if (items !== st.items) { st.items = items; renderProducts($('products-intro'), false); }
  const pow = s.bot_protection?.pow_difficulty > 0;
  const scheduled = s.status === 'scheduled';
  $('countdown').hidden = !scheduled;
  $('open-now').hidden = scheduled;
  $('cd-when').textContent = scheduled ? `Opens ${startWords(st.startsAt)}` : '';
  $('join-note').textContent = !scheduled ? 'Places go in order of arrival. We let you in as soon as it’s your turn.'
    : s.queue?.mode === 'randomized_prequeue' ? 'Everyone who joins before the start gets a random place — no need to rush.'
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
  } catch { /* keep what we have; the next tick tries again */ }
}

// ——— joining: proof-of-work in a worker, then enter ———

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
      if (data.error) { worker.terminate(); reject(new Error(data.error)); }
    };
    worker.onerror = (e) => { worker.terminate(); reject(new Error(e.message || 'worker failed')); };
    worker.postMessage(challenge);
  });
}

async function join() {
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
    onEvent('status', entered);
    if (!FINAL.has(st.view)) startFeed();
  } catch (err) {
    btn.disabled = false;
    btn.hidden = false;
    $('pow').hidden = true;
    if (err.code === 'SALE_ENDED' || err.code === 'SALE_CANCELLED') return ended(err.code === 'SALE_ENDED' ? 'ended' : 'cancelled');
    if (err.code === 'DEMO_DISABLED') return void ($('join-error').textContent = 'Please sign in to the shop first, then come back to this page.');
    $('join-error').textContent = err.status === 0 ? 'We couldn’t reach the shop. Check your connection and try again.'
      : err.code === 'RATE_LIMITED' ? 'Lots of people are joining right now. Please try again in a few seconds.'
        : err.message;
  }
}

// ——— live updates ———

function startFeed() {
  stopFeed();
  st.feed = follow(saleId, st.ticket, onEvent);
}

function stopFeed() {
  st.feed?.stop();
  st.feed = null;
  $('mode-pill').hidden = true;
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
    case 'waiting': return waiting(d);
    case 'admitted': return admitted(d);
    case 'purchased': return purchased();
    case 'sold_out': return soldOut();
    case 'expired': return ended('expired');
    case 'ended': return ended(d.sale_status === 'cancelled' ? 'cancelled' : 'ended');
  }
}

function ticketLost(err) {
  if (err.code === 'SALE_NOT_FOUND') return ended('missing');
  if (!TICKET_GONE.test(err.code)) return;
  store.del(KEY.ticket);
  st.ticket = null;
  stopFeed();
  st.view = 'lost';
  show('sale', 'Join the queue');
  $('join-error').textContent = err.code === 'QUEUE_RESTARTED' ? 'The queue was restarted. Please join again — it only takes a moment.'
    : 'We couldn’t restore your place. Please join the queue again.';
}

// ——— the waiting room ———

function waiting(d) {
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

function paintPreauth() {
  const done = !!st.preauth;
  $('preauth-fields').hidden = done;
  $('preauth-ok').hidden = !done;
  if (done) $('preauth-ok').textContent = `Card ending ${st.preauth.last4} is ready: ${money(st.preauth.amount, st.preauth.currency)} authorised. We only charge you if you get one.`;
  $('testcards').hidden = !isDemo();
  for (const id of ['card', 'card2', 'card3']) if (isDemo() && !$(id).value) $(id).value = DEMO_CARD;
}

const cardToken = (v) => {
  const t = v.trim().replace(/[\s-]/g, '');
  return /^\d{12,19}$/.test(t) || /^tok_\w+$/.test(t) ? t : null;
};

async function preAuth(e) {
  e.preventDefault();
  const token = cardToken($('card').value);
  const err = $('preauth-error');
  err.textContent = '';
  if (!token) { err.textContent = 'Please enter a card number.'; $('card').focus(); return; }
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
    err.textContent = x.code === 'PAYMENT_DECLINED' ? 'That card was declined — nothing was charged. Please try another card.'
      : x.status === 0 || x.transient ? 'We couldn’t reach the payment service. Please try again.'
        : x.message;
  } finally {
    btn.disabled = false;
    btn.textContent = 'Authorise card';
  }
}

// ——— your turn ———

async function admitted(d) {
  if (FINAL.has(st.view) || st.view === 'pay') return;
  if (d.admission_expires_at) st.admitUntil = Date.parse(d.admission_expires_at);
  if (st.view === 'admitted') return;
  show('admitted', 'Your turn');
  renderProducts($('products-buy'), true);
  $('pay-card').hidden = !!st.preauth;
  $('paying-with').hidden = !st.preauth;
  if (st.preauth) $('paying-card').textContent = `Card ending ${st.preauth.last4}`;
  paintPreauth();
  announce('It’s your turn. You can buy now.', true);
  // The SSE message carries neither the turn's end nor per-item stock: fetch both once.
  const [view, inv] = await Promise.all([
    st.admitUntil ? null : api.status(saleId, st.ticket).catch(() => null),
    api.inventory(saleId).catch(() => null),
  ]);
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
    if (!token) { err.textContent = 'Please enter your card number to buy.'; $('card2').focus(); return; }
  }
  // One key per intent to buy this item: a retry of the same intent must not make a second order.
  if (st.intent?.sku !== sku) st.intent = { sku, key: uuid() };
  const { key } = st.intent;
  st.buying = true;
  for (const b of document.querySelectorAll('.buy')) {
    b.disabled = true;
    if (b.dataset.sku === sku) { b.textContent = 'Buying…'; b.removeAttribute('aria-label'); }
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
    if (order.status === 'confirmed') confirmed(order); else payOwed(order);
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
    case 'SOLD_OUT': case 'INSUFFICIENT_STOCK':
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
    case 'ADMISSION_EXPIRED': return ended('expired');
    case 'SALE_ENDED': return ended('ended');
    case 'SALE_CANCELLED': return ended('cancelled');
    case 'TICKET_INVALID': case 'TICKET_EXPIRED': case 'TICKET_WRONG_USER': case 'TICKET_WRONG_SALE': case 'QUEUE_RESTARTED':
      return ticketLost(x);
    case 'LIMIT_REACHED': err.textContent = 'You’ve already bought the most this drop allows per person.'; return;
  }
  if (x.transient || x.code === 'RATE_LIMITED') {
    err.textContent = 'We couldn’t reach the shop. Your order is safe to send again — you won’t be charged twice.';
    $('buy-retry').hidden = false;
    $('buy-retry').onclick = () => buy(sku);
  } else {
    err.textContent = x.message;
  }
}

// ——— endings ———

function confirmed(order) {
  const item = st.sale?.items.find((i) => i.sku === order.sku);
  $('order-item').textContent = order.name ?? item?.name ?? order.sku;
  $('order-amount').textContent = money(order.amount_cents, order.currency ?? item?.currency ?? 'EUR');
  $('order-id').textContent = order.order_id;
  show('confirmed', 'Order confirmed');
  announce('Order confirmed.', true);
}

function purchased() {
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
    if (!token) { $('pay-error').textContent = 'Please enter a card number.'; return; }
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

function soldOut() {
  // Our own purchase may have taken the last unit: its answer, not the broadcast, decides.
  if (st.buying) { st.soldOutLater = true; return; }
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

function ended(kind) {
  if (FINAL.has(st.view) || (st.view === 'pay' && kind !== 'window')) return;
  const [title, text] = ENDINGS[kind] ?? ENDINGS.ended;
  $('ended-title').textContent = title;
  $('ended-text').textContent = text;
  $('ended-action').hidden = kind !== 'unreachable';
  show('ended', title);
}

// ——— the clock ———

function tick() {
  const now = clock.now();
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
  if (st.view === 'waiting') {
    $('opens').hidden = untilStart <= 0;
    $('opens-in').textContent = clockFace(untilStart);
    if (st.etaAt !== null) {
      const eta = Math.max(0, st.etaAt - now);
      $('eta').textContent = untilStart > 0 && eta - untilStart < 15_000 ? 'as soon as it opens' : waitWords(eta / 1000);
    }
  }
  if (st.view === 'admitted' && st.admitUntil) {
    $('admit-left').textContent = clockFace(st.admitUntil - now);
    if (st.admitUntil - now < -1000 && !st.buying) ended('expired');
  }
  if (st.view === 'pay') $('pay-left').textContent = clockFace(st.payUntil - now);
}

// ——— start ———

function formatCard(e) {
  const el = e.target;
  if (/^[\d\s]*$/.test(el.value)) el.value = el.value.replace(/\D/g, '').slice(0, 19).replace(/(\d{4})(?=\d)/g, '$1 ');
}

async function main() {
  if (!saleId) return location.replace('/');
  $('join').addEventListener('click', join);
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
      if (err.status >= 400 && err.status < 500) { store.del(KEY.ticket); st.ticket = null; }
    }
  }
  const s = st.sale.status;
  if (s === 'sold_out') soldOut();
  else if (s === 'ended' || s === 'cancelled') ended(s);
  else show('sale', s === 'scheduled' ? 'Starts soon' : 'Open now');
  paintPreauth();
}

main();
