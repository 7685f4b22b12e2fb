/**
 * What a chaos run prints and writes: one table row of figures per scenario, then every broken
 * check with its evidence; as text for the terminal and as Markdown and JSON under the report
 * directory (where docs/operations.md takes its figures from).
 */
import type { ScenarioRun } from './run.js';

const num = (v: number) => (Number.isFinite(v) ? String(Math.round(v)) : '—');

const COLUMNS: Array<[string, (r: ScenarioRun) => string]> = [
  ['scenario', (r) => r.scenario],
  ['requests', (r) => num(r.figures.requests)],
  ['during fault', (r) => num(r.figures.faultRequests)],
  ['max ms', (r) => num(r.figures.faultMaxMs)],
  ['p99 ms', (r) => num(r.figures.faultP99Ms)],
  ['p99 before', (r) => num(r.figures.beforeP99Ms)],
  ['503+RA', (r) => num(r.figures.unavailableWithRetryAfter)],
  ['other 5xx', (r) => num(r.figures.unclean5xx)],
  ['no answer', (r) => num(r.figures.noAnswer)],
  ['confirmed', (r) => num(r.figures.confirmed)],
  ['oversell', (r) => num(r.figures.oversell)],
  ['drift', (r) => num(r.figures.drift)],
  ['in progress late', (r) => num(r.figures.inProgressAfterDeadline)],
  ['charged w/o order', (r) => num(r.figures.capturesWithoutOrder)],
  ['events missing', (r) => num(r.figures.eventsMissing)],
  ['sale 404', (r) => num(r.figures.saleNotFound)],
  ['sold out', (r) => (r.figures.soldOut ? 'yes' : 'no')],
  ['settled s', (r) => (r.settledMs === null ? 'never' : (r.settledMs / 1000).toFixed(1))],
  ['verdict', (r) => (r.ok ? 'ok' : `FAIL ${r.checks.filter((c) => !c.ok).length}`)],
];

/** The figures as an aligned text table. */
export function textTable(runs: ScenarioRun[]): string {
  const rows = [COLUMNS.map(([h]) => h), ...runs.map((r) => COLUMNS.map(([, f]) => f(r)))];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')).join('\n');
}

/** Every broken check of a run, with its evidence; the checks reported only, with their figure. */
export function textFindings(run: ScenarioRun): string {
  const lines = [`${run.scenario} — ${run.title}${run.ok ? ': every check held' : ''}`];
  for (const c of run.checks) {
    const mark = c.reportOnly ? 'info' : c.ok ? ' ok ' : 'FAIL';
    lines.push(`  [${mark}] ${c.name}: ${c.summary}`);
    if (!c.ok || c.reportOnly) for (const e of c.evidence) lines.push(`         ${e}`);
  }
  lines.push(
    `  buyers: ${Object.entries(run.figures.outcomes)
      .sort()
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
  );
  return lines.join('\n');
}

export function markdownReport(runs: ScenarioRun[], meta: { size: string; startedAt: string; durationMs: number }): string {
  const out = [
    `# Chaos run ${meta.startedAt}`,
    '',
    `${meta.size}; ${(meta.durationMs / 1000).toFixed(0)} s in all.`,
    '',
    `| ${COLUMNS.map(([h]) => h).join(' | ')} |`,
    `| ${COLUMNS.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...runs.map((r) => `| ${COLUMNS.map(([, f]) => f(r)).join(' | ')} |`),
    '',
  ];
  for (const r of runs) {
    out.push(`## ${r.scenario}: ${r.title}`, '');
    for (const f of r.faults) out.push(`- fault: ${f.what}, ${((f.to - f.from) / 1000).toFixed(1)} s`);
    out.push(
      `- sale ${r.saleId}; settled ${r.settledMs === null ? 'never (within the repair window)' : `${(r.settledMs / 1000).toFixed(1)} s after the buyers stopped`}`,
      '',
    );
    for (const c of r.checks) {
      out.push(`- ${c.reportOnly ? 'ℹ️' : c.ok ? '✅' : '❌'} **${c.name}**: ${c.summary}`);
      if (!c.ok || c.reportOnly) for (const e of c.evidence) out.push(`  - ${e}`);
    }
    out.push(
      '',
      `Buyers: ${Object.entries(r.figures.outcomes)
        .sort()
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}`,
      '',
    );
  }
  return out.join('\n');
}

/** The run without its raw answers and buyers (those go to a file of their own). */
export function summaryJson(runs: ScenarioRun[], meta: Record<string, unknown>): string {
  return JSON.stringify({ ...meta, scenarios: runs.map(({ answers: _a, buyers: _b, ...rest }) => rest) }, null, 2);
}
