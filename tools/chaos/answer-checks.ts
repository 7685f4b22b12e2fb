/**
 * The checks read from the answers alone: idempotency keys that stayed "in progress", how long
 * the answers took while the fault lasted, 5xx that were not a clean 503, a sale "not found".
 */
import { Samples } from '../samples.js';
import type { Answer } from './answers.js';
import { fmtMs, result, sum, type CheckInput, type CheckResult } from './check-kit.js';

/** No idempotency key answers "in progress" once its deadline (counted from its first try) has passed. */
export function keyDeadlines(input: CheckInput): { check: CheckResult; late: number } {
  const first = new Map<string, number>();
  const lateByKey = new Map<string, Answer[]>();
  for (const a of [...input.answers].sort((x, y) => x.at - y.at)) {
    if (!a.key) continue;
    if (!first.has(a.key)) first.set(a.key, a.at);
    if (a.status === 409 && a.code === 'REQUEST_IN_PROGRESS' && a.at - first.get(a.key)! > input.opts.keyDeadlineMs) {
      (lateByKey.get(a.key) ?? lateByKey.set(a.key, []).get(a.key)!).push(a);
    }
  }
  const lines = [...lateByKey].map(([key, late]) => {
    const last = late[late.length - 1];
    const final = input.answers.filter((a) => a.key === key).sort((x, y) => y.at - x.at)[0];
    return `key ${key}: ${late.length} 'in progress' answers after the deadline, the last ${((last.at - first.get(key)!) / 1000).toFixed(1)} s after its first try; final answer ${final.status} ${final.code ?? final.orderStatus ?? ''}`;
  });
  const inProgress = input.answers.filter((a) => a.status === 409 && a.code === 'REQUEST_IN_PROGRESS').length;
  return {
    check: result(
      'no key in progress past its deadline',
      lines,
      `${inProgress} 'in progress' answers over ${first.size} keys; ${lateByKey.size} past ${input.opts.keyDeadlineMs / 1000} s`,
    ),
    late: lateByKey.size,
  };
}

/**
 * Requests the fault reached: sent during it (or within the grace after it), or in flight when
 * it began. The time that counts is from when the fault reached the request: its send, or the
 * fault's start for one already in flight (a request slow before the fault is the load's doing).
 */
export function faultLatency(input: CheckInput): { check: CheckResult; count: number; max: number; p99: number; baselineP99: number } {
  const reached = (a: Answer): number | null => {
    for (const f of input.faults) {
      if (a.at >= f.from && a.at <= f.to + input.opts.faultGraceMs) return a.ms;
      if (a.at < f.from && a.at + a.ms > f.from) return a.at + a.ms - f.from;
    }
    return null;
  };
  const during: Array<{ a: Answer; ms: number }> = [];
  const before = new Samples();
  const firstFault = Math.min(...input.faults.map((f) => f.from));
  for (const a of input.answers) {
    const ms = reached(a);
    if (ms !== null) during.push({ a, ms });
    else if (a.at + a.ms <= firstFault) before.add(a.ms);
  }
  const samples = new Samples();
  for (const d of during) samples.add(d.ms);
  const slow = during.filter((d) => d.ms > input.opts.latencyLimitMs).sort((x, y) => y.ms - x.ms);
  const lines = slow.map(({ a, ms }) => {
    const into = ((a.at - firstFault) / 1000).toFixed(1);
    const when = a.at >= firstFault ? `sent ${into} s into the fault` : `in flight for ${((firstFault - a.at) / 1000).toFixed(1)} s when it began`;
    return `${a.label} to node ${a.node} ${when}: ${a.status || 'no answer'} ${a.code ?? a.error ?? ''} after ${fmtMs(ms)}${a.key ? ` (key ${a.key})` : ''}`;
  });
  const inFault = (at: number) => input.faults.some((f) => at >= f.from && at <= f.to + input.opts.faultGraceMs);
  const driverStall = Math.max(0, ...input.stalls.driver.filter(([at]) => inFault(at)).map(([, ms]) => ms));
  const nodeStall = Math.max(0, ...input.stalls.nodes.filter(([at]) => inFault(at)).map(([, , ms]) => ms));
  const stalls = `event loop stalls during the fault: nodes up to ${fmtMs(nodeStall)}, this driver up to ${fmtMs(driverStall)}`;
  if (slow.length) lines.unshift(stalls);
  const summary = `${during.length} requests during the fault; max ${fmtMs(samples.max)}, p99 ${fmtMs(samples.quantile(0.99))} (before it: p99 ${fmtMs(before.quantile(0.99))}); ${slow.length} over ${input.opts.latencyLimitMs} ms`;
  return {
    check: result(`answered within ${input.opts.latencyLimitMs / 1000} s during the fault`, lines, summary, !input.opts.judgeLatency),
    count: during.length,
    max: samples.max,
    p99: samples.quantile(0.99),
    baselineP99: before.quantile(0.99),
  };
}

/** A dependency that is down is a 503 with Retry-After, never a 500 or a bare 503. */
export function cleanRefusals(input: CheckInput): CheckResult {
  const counts = new Map<string, number>();
  for (const a of input.answers) {
    if (a.status < 500 || (a.status === 503 && a.retryAfter)) continue;
    const k = `${a.label} ${a.status} ${a.code ?? ''}${a.status === 503 ? ' without Retry-After' : ''}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const lines = [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} × ${k}`);
  const ok = input.answers.filter((a) => a.status === 503 && a.retryAfter).length;
  return result('5xx answers are 503 with Retry-After', lines, `${ok} × 503 with Retry-After, ${sum([...counts.values()])} other 5xx`);
}

/** The sale exists the whole time: no answer says it does not (an engine that lost it and has not rebuilt it yet). */
export function saleNeverVanishes(input: CheckInput): CheckResult {
  const lost = input.answers.filter((a) => a.code === 'SALE_NOT_FOUND').sort((x, y) => x.at - y.at);
  const lines: string[] = [];
  if (lost.length) {
    const f0 = Math.min(...input.faults.map((f) => f.from));
    const rel = (t: number) => `${((t - f0) / 1000).toFixed(1)} s`;
    const perLabel = new Map<string, number>();
    for (const a of lost) perLabel.set(a.label, (perLabel.get(a.label) ?? 0) + 1);
    lines.push(
      `${lost.length} answers said 404 SALE_NOT_FOUND from ${rel(lost[0].at)} to ${rel(lost[lost.length - 1].at)} after the fault began: ${[...perLabel].map(([l, n]) => `${n} ${l}`).join(', ')}`,
    );
  }
  return result('the sale is never "not found"', lines, `${lost.length} × 404 SALE_NOT_FOUND`);
}
