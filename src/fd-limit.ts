/**
 * How many files (sockets) this process may open. `ulimit -n` is a shell built-in, so a tool
 * can only read the limit it was given (Linux: /proc/self/limits) and say what to do.
 */
import { readFileSync } from 'node:fs';

export interface FileLimit {
  soft: number;
  hard: number;
}

/** The RLIMIT_NOFILE of this process, or null where /proc is not there (macOS, Windows). */
export function fileLimit(): FileLimit | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const m = line && /Max open files\s+(\S+)\s+(\S+)/.exec(line);
    if (!m) return null;
    const n = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
    return { soft: n(m[1]), hard: n(m[2]) };
  } catch {
    return null;
  }
}

/** A hint to print when `needed` sockets will not fit, or null when they do (or we cannot tell). */
export function fileLimitHint(needed: number, command: string): string | null {
  const limit = fileLimit();
  if (!limit || limit.soft >= needed) return null;
  const raise =
    limit.hard >= needed
      ? `raise it first: ulimit -n ${Math.min(limit.hard, Math.max(needed, 200_000))} && ${command}`
      : `the hard limit is ${limit.hard}, so raising it needs root (or CAP_SYS_RESOURCE), e.g. in /etc/security/limits.conf or the container's --ulimit nofile=200000`;
  return `this process may open ${limit.soft} files but wants about ${needed}; ${raise}`;
}

/** Files a node keeps for itself beyond client sockets: PGlite's files, pools, logs. */
const RESERVED_FILES = 1024;

/**
 * How many client connections a node accepts at once: `configured`, or else what the file
 * limit leaves after a reserve. Past it, a new connection is closed at once (the client
 * retries) instead of taking the last file the ledger needs: out of files, PGlite fails for
 * good. Null: no limit known (no /proc) and none configured.
 */
export function connectionCap(configured: number | null, limit: FileLimit | null = fileLimit()): number | null {
  if (configured !== null) return configured;
  if (!limit || !Number.isFinite(limit.soft)) return null;
  return Math.max(64, limit.soft - RESERVED_FILES);
}
