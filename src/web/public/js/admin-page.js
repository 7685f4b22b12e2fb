/**
 * The admin dashboard: sign in with the admin token, list sales, create one, change it before
 * it starts, cancel it, and watch it live (admin-live.js). Routes live in the hash:
 * #/sales, #/new, #/edit/<id>, #/sale/<id>.
 */
import { admin, adminToken, saleUrl, when, badge, el, STATUS_LABEL } from '/js/admin-api.js';
import { watchSale } from '/js/admin-live.js';

const $ = (id) => document.getElementById(id);
let stopLive = null;
let current = null;

function show(view, title) {
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== `view-${view}`;
  document.title = `${title} · Stampede admin`;
  $('nav').hidden = view === 'login';
  const h = document.querySelector(`#view-${view} h1`);
  if (current !== null) h?.focus();
  current = view;
}

admin.onSignedOut = () => {
  adminToken.clear();
  route();
};

async function route() {
  stopLive?.();
  stopLive = null;
  if (!adminToken.get()) {
    show('login', 'Sign in');
    $('admin-token').focus();
    return;
  }
  const [, page = 'sales', id] = location.hash.split('/');
  if (page === 'new') return openForm(null);
  if (page === 'edit' && id) return openForm(decodeURIComponent(id));
  if (page === 'sale' && id) {
    show('live', 'Live sale');
    stopLive = watchSale(decodeURIComponent(id), { cancel: confirmCancel });
    return;
  }
  return listSales();
}

// ——— sign in ———

async function signIn(e) {
  e.preventDefault();
  const token = $('admin-token').value.trim();
  $('login-error').textContent = '';
  if (!token) {
    $('login-error').textContent = 'Please enter the admin token.';
    return;
  }
  try {
    await admin('/api/admin/flash-sales', { token });
    adminToken.set(token);
    $('admin-token').value = '';
    if (!location.hash || location.hash === '#/') location.hash = '#/sales';
    else route();
  } catch (err) {
    $('login-error').textContent = err.status === 401 ? 'That token was not accepted.' : err.message;
  }
}

// ——— the list ———

async function listSales() {
  show('sales', 'Sales');
  const body = $('sales-table').tBodies[0];
  $('sales-error').textContent = '';
  let sales;
  try {
    ({ sales } = await admin('/api/admin/flash-sales'));
  } catch (err) {
    $('sales-error').textContent = err.message;
    return;
  }
  body.replaceChildren();
  $('sales-empty').hidden = sales.length > 0;
  for (const s of sales) {
    const tr = document.createElement('tr');
    const name = el('a', s.name, 'sale-link');
    name.href = `#/sale/${encodeURIComponent(s.id)}`;
    const sold = s.items.reduce((n, i) => n + (i.sold ?? 0), 0);
    const total = s.items.reduce((n, i) => n + i.quantity, 0);
    const minutes = Math.round((Date.parse(s.ends_at) - Date.parse(s.starts_at)) / 60_000);
    const actions = el('div', '', 'row-actions');
    const watch = el('a', 'Watch');
    watch.href = name.href;
    actions.append(watch);
    if (s.status === 'scheduled') {
      const edit = el('a', 'Edit');
      edit.href = `#/edit/${encodeURIComponent(s.id)}`;
      actions.append(edit);
    }
    if (s.status !== 'ended' && s.status !== 'cancelled') {
      const cancel = el('button', 'Cancel', 'linkish danger');
      cancel.type = 'button';
      cancel.addEventListener('click', () => confirmCancel(s).then((done) => done && listSales()));
      actions.append(cancel);
    }
    const cells = [
      name,
      badge(s.status),
      el('span', when(s.starts_at)),
      el('span', `${minutes} min`),
      el('span', `${sold.toLocaleString()} / ${total.toLocaleString()}`),
      actions,
    ];
    cells.forEach((c, i) => {
      const td = document.createElement('td');
      if (i === 4) td.className = 'num';
      td.append(c);
      tr.append(td);
    });
    body.append(tr);
  }
}

/** Asks, then cancels. Resolves true when the sale was cancelled. */
function confirmCancel(sale) {
  const dialog = $('confirm-cancel');
  $('cancel-title').textContent = `Cancel “${sale.name}”?`;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      'close',
      async () => {
        if (dialog.returnValue !== 'cancel') return resolve(false);
        try {
          await admin(saleUrl(sale.id, '/cancel'), { method: 'POST' });
          resolve(true);
        } catch (err) {
          alert(`The sale could not be cancelled: ${err.message}`);
          resolve(false);
        }
      },
      { once: true },
    );
  });
}

// ——— create and edit ———

const pad = (n) => String(n).padStart(2, '0');
/** A Date as the value of a datetime-local input (the admin's own time zone). */
const localInput = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;

function addItemRow(item = {}) {
  const tbody = $('items').tBodies[0];
  const tr = $('item-row').content.firstElementChild.cloneNode(true);
  const n = tbody.rows.length + 1;
  const set = (cls, value, label) => {
    const input = tr.querySelector(cls);
    if (value !== undefined) input.value = value;
    input.setAttribute('aria-label', `${label}, item ${n}`);
    input.dataset.field = `items/${n - 1}/${{ '.i-sku': 'sku', '.i-name': 'name', '.i-price': 'price_cents', '.i-qty': 'quantity', '.i-limit': 'per_user_limit' }[cls]}`;
  };
  set('.i-sku', item.sku, 'SKU');
  set('.i-name', item.name, 'Item name');
  set('.i-price', item.price_cents === undefined ? undefined : (item.price_cents / 100).toFixed(2), 'Price');
  set('.i-qty', item.quantity, 'Quantity');
  set('.i-limit', item.per_user_limit, 'Limit per shopper');
  tr.querySelector('.i-remove').addEventListener('click', () => {
    if (tbody.rows.length > 1) tr.remove();
  });
  tbody.append(tr);
}

async function openForm(id) {
  const form = $('sale-form');
  form.reset();
  form.dataset.id = id ?? '';
  $('form-error').textContent = '';
  $('items').tBodies[0].replaceChildren();
  $('f-shards').disabled = false;
  $('form-title').textContent = id ? 'Edit sale' : 'New sale';
  $('form-submit').textContent = id ? 'Save changes' : 'Create sale';
  show('form', id ? 'Edit sale' : 'New sale');
  if (!id) {
    const start = new Date(Date.now() + 10 * 60_000);
    start.setSeconds(0, 0);
    $('f-start').value = localInput(start);
    addItemRow();
    return;
  }
  try {
    const s = await admin(saleUrl(id));
    $('f-name').value = s.name;
    $('f-start').value = localInput(new Date(s.starts_at));
    $('f-duration').value = Math.round((Date.parse(s.ends_at) - Date.parse(s.starts_at)) / 60_000);
    $('f-currency').value = s.items[0]?.currency ?? 'EUR';
    $('f-mode').value = s.queue.mode;
    $('f-rate').value = s.queue.admission_rate_per_sec;
    $('f-admitted').value = s.queue.admitted_ttl_sec;
    $('f-shards').value = s.queue.shards ?? 1;
    $('f-shards').disabled = true;
    $('f-reservation').value = s.reservation_ttl_sec;
    $('f-pow').value = s.bot_protection.pow_difficulty;
    for (const item of s.items) addItemRow(item);
    if (s.status !== 'scheduled')
      $('form-error').textContent = `This sale is ${STATUS_LABEL[s.status]?.toLowerCase() ?? s.status}; only a scheduled sale can be changed.`;
  } catch (err) {
    $('form-error').textContent = err.message;
  }
}

const int = (id) => Number.parseInt($(id).value, 10);

function formBody() {
  const currency = $('f-currency').value;
  const start = new Date($('f-start').value);
  return {
    name: $('f-name').value.trim(),
    starts_at: Number.isNaN(start.getTime()) ? '' : start.toISOString(),
    duration_sec: int('f-duration') * 60,
    items: [...$('items').tBodies[0].rows].map((tr) => {
      const v = (cls) => tr.querySelector(cls).value.trim();
      return {
        sku: v('.i-sku'),
        name: v('.i-name'),
        price_cents: Math.round(Number.parseFloat(v('.i-price')) * 100),
        currency,
        quantity: Number.parseInt(v('.i-qty'), 10),
        per_user_limit: Number.parseInt(v('.i-limit'), 10) || 1,
      };
    }),
    queue: { mode: $('f-mode').value, admission_rate_per_sec: int('f-rate'), admitted_ttl_sec: int('f-admitted'), shards: int('f-shards') || 1 },
    reservation_ttl_sec: int('f-reservation'),
    bot_protection: { pow_difficulty: int('f-pow') },
  };
}

async function submitForm(e) {
  e.preventDefault();
  const form = $('sale-form');
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  $('form-error').textContent = '';
  // The browser's own checks first (required, numbers), with the server's as the authority.
  const bad = [...form.querySelectorAll('input')].find((i) => !i.checkValidity());
  if (bad) return fieldError(bad, `${bad.getAttribute('aria-label') ?? bad.labels?.[0]?.textContent ?? 'This field'}: ${bad.validationMessage}`);
  const id = form.dataset.id;
  const btn = $('form-submit');
  btn.disabled = true;
  try {
    const sale = id
      ? await admin(saleUrl(id), { method: 'PATCH', body: formBody() })
      : await admin('/api/admin/flash-sales', { method: 'POST', body: formBody() });
    location.hash = `#/sale/${encodeURIComponent(sale.id)}`;
  } catch (err) {
    const field = err.field?.replace(/^body\/?/, '');
    const input = field && form.querySelector(`[data-field="${field}"]`);
    fieldError(input, err.message);
  } finally {
    btn.disabled = false;
  }
}

function fieldError(input, message) {
  $('form-error').textContent = message;
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

// ——— start ———

$('login-form').addEventListener('submit', signIn);
$('sale-form').addEventListener('submit', submitForm);
$('add-item').addEventListener('click', () => addItemRow());
$('sign-out').addEventListener('click', () => {
  adminToken.clear();
  location.hash = '';
  route();
});
addEventListener('hashchange', route);
route();
