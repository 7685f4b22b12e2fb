/**
 * What every chaos check shares: its input (the answers, the inside pictures, the fault windows),
 * its result (a verdict with the evidence that broke it), and the helpers that shape both.
 */
import type { Answer } from './answers.js';
import type { Buyer } from './buyers.js';
import type { EnginePicture, LedgerPicture, StreamPicture } from './inside.js';

export interface FaultWindow {
  /** What was done (`kill -9 node-1`, `PostgreSQL SIGSTOP`), from when to when (epoch ms). */
  what: string;
  from: number;
  to: number;
}

export interface CheckInput {
  sale: { id: string; sku: string; quantity: number };
  answers: Answer[];
  buyers: Buyer[];
  faults: FaultWindow[];
  ledger: LedgerPicture | null;
  engine: EnginePicture | null;
  stream: StreamPicture | null;
  /** Why an inside read failed, when it did. */
  readErrors: string[];
  /** The sale's public status at the end, and when (epoch ms) a reader first saw it sold out. */
  finalStatus: string | null;
  soldOutSeenAt: number | null;
  /** When the run's buyers stopped (epoch ms): holds reserved before it must have ended by the checks. */
  stoppedAt: number;
  /**
   * Event-loop stalls seen meanwhile: the driver's own ([time, ms]; when it stalls, its timings
   * include its own lag) and each node's ([time, node, ms], the worst per metrics scrape).
   */
  stalls: { driver: Array<[number, number]>; nodes: Array<[number, number, number]> };
  opts: CheckOptions;
}

export interface CheckOptions {
  /** A key may answer "in progress" only this long after its first try (ms). */
  keyDeadlineMs: number;
  /** Every request during a fault must be answered within this long (ms). */
  latencyLimitMs: number;
  /** Requests sent this long after a fault ended still count as during it (ms). */
  faultGraceMs: number;
  /** False: the latency figure is reported, not judged (the short run on a busy machine). */
  judgeLatency: boolean;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  /** True when the check was reported only, not judged. */
  reportOnly?: boolean;
  summary: string;
  /** What broke it: one line per order, key or request (the first few). */
  evidence: string[];
}

const EVIDENCE_LINES = 12;
export const fmtMs = (ms: number) => (Number.isFinite(ms) ? `${Math.round(ms)} ms` : '—');

export function result(name: string, lines: string[], summary: string, reportOnly = false): CheckResult {
  return {
    name,
    ok: reportOnly || lines.length === 0,
    reportOnly: reportOnly || undefined,
    summary,
    evidence: lines.slice(0, EVIDENCE_LINES).concat(more(lines)),
  };
}
const more = (lines: string[]) => (lines.length > EVIDENCE_LINES ? [`… and ${lines.length - EVIDENCE_LINES} more`] : []);

export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
