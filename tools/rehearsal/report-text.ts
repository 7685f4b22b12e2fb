/** The rehearsal's verdict as plain text, for the terminal and CI logs. */
import type { DropData } from './drop.js';
import { Samples } from '../samples.js';
import { fmt, type Verdict } from './verdict.js';

const mark = (held: boolean | null) => (held === null ? ' n/a ' : held ? ' ok  ' : 'BROKEN');
const goal = (met: boolean | null) => (met === null ? ' n/a ' : met ? ' met ' : 'MISSED');

export function textReport(d: DropData, v: Verdict): string {
  const o = d.opts;
  const lines: string[] = [];
  const p = v.figures.people;
  const b = v.figures.bots;
  lines.push(`Stampede rehearsal — ${d.sale.name}`);
  lines.push(
    `server ${o.url} · sale ${d.sale.id} · ${o.users.toLocaleString('en-US')} users (${Math.round(o.bots * 100)} % bots) · ${o.units} units in ${o.skus} SKU(s) · limit ${o.perUserLimit}/user`,
  );
  lines.push(
    `arrival over ${o.arrivalMs / 1000} s, opening ${o.startInMs / 1000} s in · ${o.mode} · admission ${o.admissionRate}/s · proof-of-work ${o.powDifficulty} · identities: ${d.identityMode} · run ${((d.endedAt - d.startedAt) / 1000).toFixed(1)} s${d.timedOut ? ' (TIMED OUT)' : ''}`,
  );
  lines.push('');
  lines.push('Invariants (SPEC §3)');
  for (const c of v.checks) lines.push(`  [${mark(c.held)}] ${c.spec} ${c.name} (${c.source}): ${c.detail}`);
  lines.push('');
  lines.push('Targets');
  for (const t of v.targets) lines.push(`  [${goal(t.met)}] ${t.name} — goal ${t.goal}: ${t.value}`);
  lines.push('');
  lines.push(
    `People  ${p.total} · entered ${p.entered} (${p.streams} streaming, ${p.pollers} polling) · admitted ${p.admitted} · bought ${p.bought} · told sold out ${p.sold_out} · held back as bots ${p.held_back_as_bots} · admission expired ${p.expired} · errors ${p.errors} · unfinished ${p.unfinished}`,
  );
  lines.push(
    `Bots    ${b.total} · entered ${b.entered} · bought ${b.bought} · purchase requests ${b.purchase_requests.toLocaleString('en-US')} · errors ${b.errors}`,
  );
  if (v.figures.errors.length) lines.push(`Errors  ${v.figures.errors.map(([e, n]) => `${n}× ${e}`).join(' · ')}`);
  lines.push(
    `Sold    ${v.figures.soldUnits} units confirmed (${v.figures.botUnits} to bots) · server bot flags ${JSON.stringify(d.ledger.stats?.bot_flags ?? {})}`,
  );
  lines.push('');
  lines.push('Latency by endpoint (ms, as the shoppers saw it)');
  lines.push(`  ${'endpoint'.padEnd(18)}${'count'.padStart(9)}${'p50'.padStart(9)}${'p90'.padStart(9)}${'p99'.padStart(9)}${'max'.padStart(9)}`);
  for (const [label, s] of [...d.client.latency].sort()) {
    const x = s.summary();
    lines.push(
      `  ${label.padEnd(18)}${String(x.count).padStart(9)}${fmt(x.p50).padStart(9)}${fmt(x.p90).padStart(9)}${fmt(x.p99).padStart(9)}${fmt(x.max).padStart(9)}`,
    );
  }
  lines.push('');
  lines.push('Answers');
  const answers = [...d.client.answers].sort((a, c) => a[0].localeCompare(c[0]));
  for (let i = 0; i < answers.length; i += 3)
    lines.push(
      `  ${answers
        .slice(i, i + 3)
        .map(([k, n]) => `${k}: ${n}`.padEnd(40))
        .join('')}`,
    );
  lines.push('');
  const solve = d.solver.solveMs;
  const late = (kind: string) => {
    const x = new Samples();
    for (const s of d.shoppers) if (s.kind === kind && s.enterSentAt !== undefined) x.add(s.enterSentAt - s.arriveAt);
    return x.count ? `${kind === 'human' ? 'people' : 'bots'} p50 ${fmt(x.quantile(0.5))} ms, p99 ${fmt(x.quantile(0.99))} ms` : '';
  };
  lines.push(`Arrival to enter-queue sent (identity, challenge, solving, think time): ${[late('human'), late('bot')].filter(Boolean).join(' · ')}`);
  lines.push(
    `This process: event-loop delay p50 ${fmt(d.loopDelay.p50)} ms, p99 ${fmt(d.loopDelay.p99)} ms, max ${fmt(d.loopDelay.max)} ms (timings include it)${solve.count ? ` · proof-of-work solved ${solve.count}×, p50 ${fmt(solve.quantile(0.5))} ms, p99 ${fmt(solve.quantile(0.99))} ms` : ''}`,
  );
  lines.push('');
  lines.push(v.ok ? 'VERDICT: every invariant held.' : `VERDICT: ${v.checks.filter((c) => c.held === false).length} invariant check(s) BROKEN.`);
  const missed = v.targets.filter((t) => t.met === false);
  if (missed.length) lines.push(`Targets missed: ${missed.map((t) => t.name).join('; ')}.`);
  return lines.join('\n');
}
