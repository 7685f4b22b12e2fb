/** What a test asks of a rehearsal's verdict: nothing broken, and every SPEC §3 check (and the view check) run. */
import { expect } from 'vitest';
import type { RehearsalRun } from '../../tools/rehearse.js';

/** Each invariant, by where it is checked from: the shoppers' answers (outside) or the ledger. */
const EVERY_CHECK = [
  '§3.1 outside',
  '§3.1 ledger',
  '§3.2 outside',
  '§3.2 ledger',
  '§3.3 outside',
  '§3.4 outside',
  '§3.5 ledger',
  '§3.6 ledger',
  '§3.7 outside',
  'view outside',
];

export function expectEveryInvariantHeld(run: RehearsalRun): void {
  const broken = run.verdict.checks.filter((c) => c.held === false);
  expect(broken, run.text).toEqual([]);
  expect(run.verdict.ok).toBe(true);
  expect(run.exitCode).toBe(0);
  const names = run.verdict.checks.map((c) => `${c.spec} ${c.source}`);
  for (const check of EVERY_CHECK) expect(names).toContain(check);
}
