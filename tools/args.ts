/**
 * A small argument parser for the command-line tools: `--name value`, `--name=value` and bare
 * flags, with readers for counts (`100k`), shares (`0.6`, `60%`) and durations (`5s`, `500ms`).
 * A bad value throws `UsageError`, whose message the tool prints before exiting with code 64.
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export class Args {
  private readonly values = new Map<string, string>();
  private readonly used = new Set<string>();

  constructor(argv: string[]) {
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i];
      if (arg === '--') continue;
      if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
      const eq = arg.indexOf('=');
      if (eq > 0) {
        this.values.set(arg.slice(2, eq), arg.slice(eq + 1));
        continue;
      }
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        this.values.set(arg.slice(2), next);
        i++;
      } else this.values.set(arg.slice(2), 'true');
    }
  }

  has(name: string): boolean {
    this.used.add(name);
    return this.values.has(name);
  }

  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    this.used.add(name);
    return this.values.get(name) ?? fallback;
  }

  flag(name: string, fallback = false): boolean {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    if (['true', '1', 'yes'].includes(raw)) return true;
    if (['false', '0', 'no'].includes(raw)) return false;
    throw new UsageError(`--${name} must be true or false, got "${raw}"`);
  }

  /** A whole number; `k` and `m` suffixes multiply by a thousand and a million. */
  count(name: string, fallback: number, min = 0): number {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(raw.replace(/_/g, ''));
    const n = m ? Math.round(Number(m[1]) * (m[2].toLowerCase() === 'k' ? 1e3 : m[2].toLowerCase() === 'm' ? 1e6 : 1)) : NaN;
    if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a whole number ≥ ${min}, got "${raw}"`);
    return n;
  }

  /** A share from 0 to 1, written `0.6` or `60%`. */
  share(name: string, fallback: number): number {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const n = raw.endsWith('%') ? Number(raw.slice(0, -1)) / 100 : Number(raw);
    if (!Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`--${name} must be a share from 0 to 1 (or 0%–100%), got "${raw}"`);
    return n;
  }

  /** Milliseconds, from `250ms`, `5s`, `2m` or a bare number of seconds. */
  duration(name: string, fallbackMs: number): number {
    const raw = this.string(name);
    if (raw === undefined) return fallbackMs;
    const ms = parseDuration(raw);
    if (ms === null) throw new UsageError(`--${name} must be a duration like 500ms, 5s or 2m, got "${raw}"`);
    return ms;
  }

  /** Throws on any option the tool never asked about (a typo should not be silently ignored). */
  rejectUnknown(): void {
    for (const name of this.values.keys()) if (!this.used.has(name)) throw new UsageError(`unknown option --${name}`);
  }
}

export function parseDuration(raw: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) return null;
  const unit = m[2] ?? 's';
  return Math.round(Number(m[1]) * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000));
}
