/**
 * The verdict on one chaos scenario: each invariant of the fault contract, judged from outside
 * (every answer the buyers got) and from inside (the ledger, the engine's keys, the stream). A
 * check that fails says which orders, keys or requests broke it, with the evidence, so whoever
 * reads the report can go straight to the ledger row or the log line.
 */
import { cleanRefusals, faultLatency, keyDeadlines, saleNeverVanishes } from './answer-checks.js';
import { sum, type CheckInput, type CheckResult } from './check-kit.js';
import { captures, confirmedInLedger, engineBalance, eventsReachStream, noOversell, oversellUnits, soldOut } from './ledger-checks.js';

export type { CheckInput, CheckOptions, CheckResult, FaultWindow } from './check-kit.js';

export interface Figures {
  requests: number;
  faultRequests: number;
  faultMaxMs: number;
  faultP99Ms: number;
  /** p99 of the answers before the fault: the load's own figure, to compare with. */
  beforeP99Ms: number;
  unavailableWithRetryAfter: number;
  /** 5xx answers that were not a 503 with Retry-After (500s, bare 503s). */
  unclean5xx: number;
  noAnswer: number;
  confirmed: number;
  oversell: number;
  drift: number;
  inProgressAfterDeadline: number;
  capturesWithoutOrder: number;
  eventsMissing: number;
  /** Answers that said the live sale does not exist. */
  saleNotFound: number;
  soldOut: boolean;
  outcomes: Record<string, number>;
}

export function judge(input: CheckInput): { checks: CheckResult[]; figures: Figures } {
  const { ledger } = input;
  const confirmedUnits = ledger ? sum(ledger.orders.filter((o) => o.status === 'confirmed').map((o) => o.quantity)) : NaN;
  const latency = faultLatency(input);
  const keys = keyDeadlines(input);
  const balance = engineBalance(input);
  const money = captures(input);
  const events = eventsReachStream(input);
  const checks = [
    noOversell(input),
    balance.check,
    soldOut(input),
    confirmedInLedger(input),
    money.check,
    keys.check,
    latency.check,
    cleanRefusals(input),
    saleNeverVanishes(input),
    events.check,
  ];
  const outcomes: Record<string, number> = {};
  for (const b of input.buyers) outcomes[`${b.kind}:${b.outcome}`] = (outcomes[`${b.kind}:${b.outcome}`] ?? 0) + 1;
  const figures: Figures = {
    requests: input.answers.length,
    faultRequests: latency.count,
    faultMaxMs: latency.max,
    faultP99Ms: latency.p99,
    beforeP99Ms: latency.baselineP99,
    unavailableWithRetryAfter: input.answers.filter((a) => a.status === 503 && a.retryAfter).length,
    unclean5xx: input.answers.filter((a) => a.status >= 500 && !(a.status === 503 && a.retryAfter)).length,
    noAnswer: input.answers.filter((a) => a.status === 0).length,
    confirmed: confirmedUnits,
    oversell: oversellUnits(input),
    drift: balance.drift,
    inProgressAfterDeadline: keys.late,
    capturesWithoutOrder: money.orphans,
    eventsMissing: events.missing,
    saleNotFound: input.answers.filter((a) => a.code === 'SALE_NOT_FOUND').length,
    soldOut: checks[2].ok && input.finalStatus === 'sold_out',
    outcomes,
  };
  return { checks, figures };
}
