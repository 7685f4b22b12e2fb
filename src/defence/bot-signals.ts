/**
 * Decides whether a client entering a queue looks like a bot. A flagged client is not refused:
 * it gets a shadow place (SPEC: it looks normal and is never admitted), so a bot operator learns
 * nothing from the answer and keeps spending effort on a place that goes nowhere.
 *
 * Pure logic over in-process memory, so it costs no round trip on the entry path. Each API node
 * keeps its own view: behind a load balancer that spreads one address over N nodes, an address
 * needs about N times the limit in accounts before a node notices. Sticky balancing (by client
 * address) restores the exact figures; a shared store would too, at a round trip per entry.
 *
 * Many real shoppers can share one address (mobile carriers' NAT, offices), so an address
 * signal alone should stay generous; the fingerprint signal is the sharper one.
 */

/** Why a client was flagged. Stable strings: they are counted in the stats and the metrics. */
export type BotReason = 'accounts_per_ip' | 'accounts_per_fingerprint' | 'fast_entry' | 'failed_checks';

/** Options of {@link BotSignals}. */
export interface BotSignalsOptions {
  /** Entering this soon (ms) after the challenge was issued is faster than a human can. */
  fastEntryMs?: number;
  /** Distinct accounts one address may enter with inside `windowMs`; more are flagged. */
  maxAccountsPerIp?: number;
  /** Distinct accounts one browser fingerprint may enter with inside `windowMs`. */
  maxAccountsPerFingerprint?: number;
  /** How long an account counts against an address or fingerprint after it was last seen. */
  windowMs?: number;
  /** Failed proof-of-work / CAPTCHA attempts before a success that mark a client. */
  maxFailedChecks?: number;
  /** Most addresses (and, separately, fingerprints) remembered; the stalest go first. */
  maxTracked?: number;
  /** The clock, for tests. */
  now?: () => number;
}

/** What is known about an entering client. */
export interface EntrySignals {
  userId: string;
  ip: string;
  /** A browser fingerprint from the page, when it sent one. */
  fingerprint?: string;
  /** When the solved proof-of-work challenge was issued (epoch ms), when there was one. */
  challengeIssuedAt?: number;
  /** Failed proof-of-work / CAPTCHA attempts before this one. */
  failedChecks?: number;
  /** Staff, testers, partners: never flagged, and not counted against their address. */
  allowlisted?: boolean;
}

interface Seen {
  lastSeen: number;
  /** The verdict at first sight, kept so that entering again gives the same answer. */
  over: boolean;
}

/**
 * Distinct accounts per key (an address or a fingerprint) in a sliding window, in bounded
 * memory: at most `maxKeys` keys, each with at most a few dozen accounts.
 */
class AccountsPerKey {
  // Two generations instead of a strict LRU: keys live in `young`; when it fills up to half the
  // budget it becomes `old` and the previous `old` is dropped whole. A key used again moves back
  // to `young`, so active keys survive and stale ones go. Every step is O(1); evicting one key at
  // a time from the front of a big Map is not in V8 (deleted slots are skipped on every scan).
  private young = new Map<string, Map<string, Seen>>();
  private old = new Map<string, Map<string, Seen>>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly maxKeys: number,
  ) {}

  get size() {
    return this.young.size + this.old.size;
  }

  private accountsOf(key: string): Map<string, Seen> {
    let accounts = this.young.get(key);
    if (accounts) return accounts;
    accounts = this.old.get(key);
    if (accounts) this.old.delete(key);
    else accounts = new Map();
    if (this.young.size >= Math.max(1, this.maxKeys >> 1)) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, accounts);
    return accounts;
  }

  /** Records `account` under `key`; true when it is beyond the first `max` accounts. */
  note(key: string, account: string, now: number): boolean {
    const accounts = this.accountsOf(key);
    for (const [id, seen] of accounts) if (now - seen.lastSeen > this.windowMs) accounts.delete(id);
    const known = accounts.get(account);
    if (known) {
      known.lastSeen = now;
      return known.over;
    }
    const over = accounts.size >= this.max;
    accounts.set(account, { lastSeen: now, over });
    // Past a few times the limit every newcomer is flagged anyway; forgetting the oldest keeps
    // a farm of thousands of accounts behind one address from growing this map.
    if (accounts.size > Math.max(4 * this.max, 32)) accounts.delete(accounts.keys().next().value!);
    return over;
  }
}

/** The shadow-queue decision for entering clients. */
export class BotSignals {
  private readonly fastEntryMs: number;
  private readonly maxFailedChecks: number;
  private readonly perIp: AccountsPerKey;
  private readonly ipSignal: boolean;
  private readonly perFingerprint: AccountsPerKey;
  private readonly now: () => number;

  constructor(opts: BotSignalsOptions = {}) {
    const windowMs = opts.windowMs ?? 10 * 60_000;
    const maxTracked = opts.maxTracked ?? 100_000;
    this.fastEntryMs = opts.fastEntryMs ?? 300;
    this.maxFailedChecks = opts.maxFailedChecks ?? 3;
    this.perIp = new AccountsPerKey(opts.maxAccountsPerIp ?? 5, windowMs, maxTracked);
    // An unbounded per-address budget turns the signal off: nothing is recorded per address.
    this.ipSignal = (opts.maxAccountsPerIp ?? 5) < Number.MAX_SAFE_INTEGER;
    this.perFingerprint = new AccountsPerKey(opts.maxAccountsPerFingerprint ?? 3, windowMs, maxTracked);
    this.now = opts.now ?? Date.now;
  }

  /** Addresses and fingerprints currently remembered (bounded by `maxTracked` each). */
  get tracked(): { ips: number; fingerprints: number } {
    return { ips: this.perIp.size, fingerprints: this.perFingerprint.size };
  }

  /**
   * Records the entry and returns why it should get a shadow place, or null for a normal one.
   * When several signals fire, the reason reported is the first of: `failed_checks`,
   * `fast_entry`, `accounts_per_fingerprint`, `accounts_per_ip` (strongest evidence first).
   */
  assess(entry: EntrySignals): { reason: BotReason } | null {
    if (entry.allowlisted) return null;
    const now = this.now();
    // Record first, whatever else fires, so a farm's accounts count against its address even
    // while each of them is also flagged for speed.
    const ipOver = this.ipSignal && this.perIp.note(entry.ip, entry.userId, now);
    const fpOver = entry.fingerprint ? this.perFingerprint.note(entry.fingerprint, entry.userId, now) : false;

    if ((entry.failedChecks ?? 0) >= this.maxFailedChecks) return { reason: 'failed_checks' };
    if (entry.challengeIssuedAt !== undefined && now - entry.challengeIssuedAt < this.fastEntryMs) {
      return { reason: 'fast_entry' };
    }
    if (fpOver) return { reason: 'accounts_per_fingerprint' };
    if (ipOver) return { reason: 'accounts_per_ip' };
    return null;
  }
}
