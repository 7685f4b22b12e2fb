/**
 * CAPTCHA checks for sales that ask for one (`bot_protection.captcha`). The browser gets a token
 * from the provider's widget; we ask the provider's siteverify endpoint whether it is good.
 * Turnstile, hCaptcha and reCAPTCHA share that protocol (form-encoded `secret`, `response`,
 * `remoteip`; a JSON answer with `success`), so one implementation serves all three.
 */
import { StampedeError } from '../errors.js';

/** The port the enter-queue route depends on; tests substitute their own. */
export interface CaptchaVerifier {
  /**
   * True when the provider accepts `token`. Throws `StampedeError('UNAVAILABLE')` when the
   * provider cannot be asked: a user must not be told their CAPTCHA was wrong because a
   * network link failed.
   */
  verify(token: string, remoteIp?: string): Promise<boolean>;
}

export type CaptchaProvider = 'turnstile' | 'hcaptcha' | 'recaptcha';

/** The providers' documented siteverify endpoints. */
export const SITEVERIFY_URLS: Readonly<Record<CaptchaProvider, string>> = {
  turnstile: 'https://challenges.cloudflare.com/turnstile/v0/siteverify',
  hcaptcha: 'https://api.hcaptcha.com/siteverify',
  recaptcha: 'https://www.google.com/recaptcha/api/siteverify',
};

/** Options of {@link SiteverifyCaptcha}. */
export interface SiteverifyCaptchaOptions {
  provider: CaptchaProvider;
  /** The site's secret key from the provider's dashboard. */
  secret: string;
  /** Another endpoint (a stand-in in tests, or a regional one). */
  verifyUrl?: string;
  /** Give up on the provider after this long; the user may retry. */
  timeoutMs?: number;
  /**
   * reCAPTCHA v3 answers `success: true` for every well-formed token and leaves the judgement
   * to a `score` (0 bot … 1 human); set this to refuse low scores. Ignored when no score comes.
   */
  minScore?: number;
}

// Provider tokens are about 2 KB; anything far larger is not one and need not travel.
const MAX_TOKEN_LENGTH = 10_000;

/** A {@link CaptchaVerifier} that asks a siteverify endpoint over HTTPS. */
export class SiteverifyCaptcha implements CaptchaVerifier {
  readonly provider: CaptchaProvider;
  private readonly secret: string;
  private readonly url: string;
  private readonly timeoutMs: number;
  private readonly minScore?: number;

  constructor(opts: SiteverifyCaptchaOptions) {
    if (!opts.secret) throw new Error('SiteverifyCaptcha needs the provider secret');
    this.provider = opts.provider;
    this.secret = opts.secret;
    this.url = opts.verifyUrl ?? SITEVERIFY_URLS[opts.provider];
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.minScore = opts.minScore;
  }

  async verify(token: string, remoteIp?: string): Promise<boolean> {
    // An empty or absurd token is refused here: no point spending a round trip on it.
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return false;
    const form = new URLSearchParams({ secret: this.secret, response: token });
    if (remoteIp) form.set('remoteip', remoteIp);

    let body: unknown;
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      // The providers answer 200 for a refused token too, so a non-2xx is their trouble, not
      // the user's (a 4xx here usually means our secret or URL is misconfigured).
      if (!res.ok) throw new Error(`siteverify answered ${res.status}`);
      body = await res.json();
    } catch (err) {
      throw new StampedeError('UNAVAILABLE', `The ${this.provider} CAPTCHA service could not be reached: ${(err as Error).message}`, {
        retryAfter: 1,
      });
    }
    if (typeof body !== 'object' || body === null) return false;
    const answer = body as { success?: unknown; score?: unknown };
    if (answer.success !== true) return false;
    if (this.minScore !== undefined && typeof answer.score === 'number' && answer.score < this.minScore) return false;
    return true;
  }
}
