/**
 * The gate in front of the queue: proof-of-work, CAPTCHA where the sale asks for one, and the
 * bot signals that decide on a shadow place. A failed check is refused with its own code; a
 * suspicious but valid entrant is let in with a shadow place, so it learns nothing.
 */
import { StampedeError } from '../errors.js';
import type { Sale } from '../ledger/ledger.js';
import type { EntryAttempt, EntryGate, EntryVerdict } from '../queue/queue-service.js';
import type { BotSignals } from './bot-signals.js';
import type { CaptchaVerifier } from './captcha.js';
import type { ProofOfWork } from './proof-of-work.js';

const MAX_TRACKED_FAILURES = 100_000;

export class DefenceGate implements EntryGate {
  /** Failed checks per client address, remembered so a later success still counts against it. */
  private readonly failures = new Map<string, number>();

  constructor(
    private readonly pow: ProofOfWork,
    private readonly signals: BotSignals,
    /** The verifier for a provider, or null when none is configured. */
    private readonly captcha: (provider: Exclude<Sale['botProtection']['captcha'], 'none'>) => CaptchaVerifier | null,
  ) {}

  async check(sale: Sale, entry: EntryAttempt): Promise<EntryVerdict> {
    const allowlisted = sale.botProtection.allowlist.includes(entry.userId);
    let challengeIssuedAt: number | undefined;
    if (!allowlisted) {
      try {
        if (sale.botProtection.powDifficulty > 0) challengeIssuedAt = (await this.pow.verify(sale.id, entry.pow as string | object | undefined)).issuedAt;
        const provider = sale.botProtection.captcha;
        if (provider !== 'none') await this.verifyCaptcha(this.captcha(provider), entry);
      } catch (err) {
        if (err instanceof StampedeError && err.status < 500) this.failed(entry.ip);
        throw err;
      }
    }
    const flag = this.signals.assess({
      userId: entry.userId,
      ip: entry.ip,
      fingerprint: entry.fingerprint,
      challengeIssuedAt,
      failedChecks: this.failures.get(entry.ip) ?? 0,
      allowlisted,
    });
    return flag ? { shadowReason: flag.reason } : {};
  }

  private async verifyCaptcha(verifier: CaptchaVerifier | null, entry: EntryAttempt): Promise<void> {
    if (!entry.captchaToken) throw new StampedeError('CAPTCHA_REQUIRED');
    if (!verifier) throw new StampedeError('UNAVAILABLE', 'This sale asks for a CAPTCHA but none is configured (STAMPEDE_CAPTCHA_SECRET)');
    if (!(await verifier.verify(entry.captchaToken, entry.ip))) throw new StampedeError('CAPTCHA_INVALID');
  }

  private failed(ip: string): void {
    // Forget everything at once when full: deleting one oldest key per insert degrades
    // badly in a big Map (see BotSignals), and a flood of failures is a bot's anyway.
    if (this.failures.size >= MAX_TRACKED_FAILURES) this.failures.clear();
    this.failures.set(ip, (this.failures.get(ip) ?? 0) + 1);
  }
}
