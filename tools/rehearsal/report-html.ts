/**
 * The rehearsal's verdict as one HTML page that opens from disk with no network: Chart.js's UMD
 * build is inlined, the data is embedded as JSON. Charts: admissions over time (as told to the
 * people and as stamped by the server, with the server's live counters), latency histograms per
 * endpoint, the sold-out notice delay, and requests per second.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { DropData } from './drop.js';
import { textReport } from './report-text.js';
import type { Verdict } from './verdict.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function chartJs(): string {
  const require = createRequire(import.meta.url);
  const path = require.resolve('chart.js').replace(/chart\.c?js$/, 'chart.umd.min.js');
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return readFileSync(require.resolve('chart.js/dist/chart.umd.js'), 'utf8');
  }
}

export function htmlReport(d: DropData, v: Verdict): string {
  const endpoints = [...d.client.latency]
    .filter(([, s]) => s.count > 0)
    .sort()
    .map(([label, s]) => ({ label, ...s.histogram(1, 14) }));
  const notice = { sse: v.figures.soldOutNotice.sse.histogram(10, 10), poll: v.figures.soldOutNotice.poll.histogram(10, 10) };
  const data = {
    timeline: d.timeline.map((p) => ({ ...p, t: Math.round(p.t) / 1000 })),
    admitted: v.figures.admittedPerSec,
    endpoints,
    notice,
    perSecond: d.client.perSecond,
    opensAt: (d.sale.opensAt - d.startedAt) / 1000,
  };
  const rows = v.checks
    .map(
      (c) =>
        `<tr class="${c.held === false ? 'bad' : c.held ? 'good' : 'na'}"><td>${c.held === null ? 'n/a' : c.held ? 'held' : 'BROKEN'}</td><td>${c.spec}</td><td>${esc(c.name)}</td><td>${c.source}</td><td>${esc(c.detail)}</td></tr>`,
    )
    .join('\n');
  const targets = v.targets
    .map(
      (t) =>
        `<tr class="${t.met === false ? 'bad' : t.met ? 'good' : 'na'}"><td>${t.met === null ? 'n/a' : t.met ? 'met' : 'MISSED'}</td><td>${esc(t.name)}</td><td>${esc(t.goal)}</td><td>${esc(t.value)}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stampede rehearsal — ${esc(d.sale.name)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
tr.good td:first-child{color:#106b21;font-weight:600}tr.bad td:first-child{color:#b00020;font-weight:700}tr.na td:first-child{color:#777}
.verdict{padding:.8rem 1rem;border-radius:6px;font-weight:600}.ok{background:#e5f5e8}.broken{background:#fde8ea}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1.5rem}canvas{max-height:320px}
pre{background:#f6f6f6;padding:1rem;overflow:auto;font-size:12px}
</style></head><body>
<h1>Stampede rehearsal — ${esc(d.sale.name)}</h1>
<p class="verdict ${v.ok ? 'ok' : 'broken'}">${v.ok ? 'Every invariant held.' : `${v.checks.filter((c) => c.held === false).length} invariant check(s) broken.`}</p>
<h2>Invariants (SPEC §3), checked from outside and from the ledger</h2>
<table><tr><th></th><th>§</th><th>invariant</th><th>seen from</th><th>detail</th></tr>${rows}</table>
<h2>Targets</h2>
<table><tr><th></th><th>target</th><th>goal</th><th>measured</th></tr>${targets}</table>
<h2>Charts</h2>
<div class="grid">
<div><h3>Admissions per second</h3><canvas id="admissions"></canvas></div>
<div><h3>Sale counters over time (server)</h3><canvas id="counters"></canvas></div>
<div><h3>Sold-out notice delay after the last unit sold (ms)</h3><canvas id="notice"></canvas></div>
<div><h3>Requests started per second (this rehearsal)</h3><canvas id="rps"></canvas></div>
</div>
<h2>Latency histograms per endpoint (ms)</h2>
<div class="grid" id="latency"></div>
<h2>Full text report</h2>
<pre>${esc(textReport(d, v))}</pre>
<script>${chartJs()}</script>
<script>
const D = ${JSON.stringify(data)};
const secs = (n) => Array.from({length: n}, (_, i) => i);
const edgesLabels = (e) => [...e.map((x) => '≤' + x), '>' + e[e.length - 1]];
const n = Math.max(D.admitted.told.length, D.admitted.server.length);
new Chart(document.getElementById('admissions'), { type: 'bar', data: { labels: secs(n), datasets: [
  { label: 'told admitted (people)', data: D.admitted.told },
  { label: 'admitted (server stamp)', data: D.admitted.server } ] },
  options: { scales: { x: { title: { display: true, text: 's since the run began (opening at ' + D.opensAt.toFixed(1) + ' s)' } } } } });
new Chart(document.getElementById('counters'), { type: 'line', data: { labels: D.timeline.map((p) => p.t.toFixed(1)), datasets: [
  { label: 'entered', data: D.timeline.map((p) => p.entered), pointRadius: 0 },
  { label: 'admitted (watermark)', data: D.timeline.map((p) => p.admitted), pointRadius: 0 },
  { label: 'sold', data: D.timeline.map((p) => p.sold), pointRadius: 0 },
  { label: 'SSE connections', data: D.timeline.map((p) => p.sse), pointRadius: 0 } ] },
  options: { scales: { x: { title: { display: true, text: 's' } } } } });
new Chart(document.getElementById('notice'), { type: 'bar', data: { labels: edgesLabels(D.notice.sse.edges), datasets: [
  { label: 'event stream', data: D.notice.sse.counts }, { label: 'polling (every 2 s)', data: D.notice.poll.counts } ] } });
new Chart(document.getElementById('rps'), { type: 'line', data: { labels: secs(D.perSecond.length), datasets: [{ label: 'requests/s', data: D.perSecond, pointRadius: 0 }] } });
for (const e of D.endpoints) {
  const div = document.createElement('div');
  div.innerHTML = '<h3>' + e.label + '</h3><canvas></canvas>';
  document.getElementById('latency').appendChild(div);
  new Chart(div.querySelector('canvas'), { type: 'bar', data: { labels: edgesLabels(e.edges), datasets: [{ label: e.label, data: e.counts }] }, options: { plugins: { legend: { display: false } } } });
}
</script>
</body></html>
`;
}
