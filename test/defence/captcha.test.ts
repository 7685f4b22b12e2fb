import { afterEach, describe, expect, it } from 'vitest';
import { SiteverifyCaptcha, SITEVERIFY_URLS } from '../../src/defence/captcha.js';
import { startCaptchaStandIn, type CaptchaStandIn } from '../support/captcha-stand-in.js';

// Runs against a stand-in siteverify server (test/support/captcha-stand-in.ts), not the real
// providers: it proves we speak the documented protocol, not that a provider accepts us.
const stands: CaptchaStandIn[] = [];
async function standIn(opts?: Parameters<typeof startCaptchaStandIn>[0]) {
  const s = await startCaptchaStandIn(opts);
  stands.push(s);
  return s;
}

afterEach(async () => {
  await Promise.all(stands.splice(0).map((s) => s.close()));
});

describe('SiteverifyCaptcha against a stand-in siteverify server', () => {
  it('accepts a good token, sending secret, response and remote address form-encoded', async () => {
    const stand = await standIn({ secret: 's3cret' });
    const captcha = new SiteverifyCaptcha({ provider: 'turnstile', secret: 's3cret', verifyUrl: stand.url });
    expect(await captcha.verify('pass', '203.0.113.7')).toBe(true);
    expect(stand.requests).toEqual([{ secret: 's3cret', response: 'pass', remoteip: '203.0.113.7', contentType: 'application/x-www-form-urlencoded' }]);
  });

  it('refuses a bad token', async () => {
    const stand = await standIn();
    const captcha = new SiteverifyCaptcha({ provider: 'hcaptcha', secret: 'x', verifyUrl: stand.url });
    expect(await captcha.verify('fail')).toBe(false);
    expect(stand.requests[0]?.remoteip).toBeNull();
  });

  it('refuses an empty token without asking the provider', async () => {
    const stand = await standIn();
    const captcha = new SiteverifyCaptcha({ provider: 'recaptcha', secret: 'x', verifyUrl: stand.url });
    expect(await captcha.verify('')).toBe(false);
    expect(stand.requests).toHaveLength(0);
  });

  it('refuses when the provider rejects our secret', async () => {
    const stand = await standIn({ secret: 'right' });
    const captcha = new SiteverifyCaptcha({ provider: 'turnstile', secret: 'wrong', verifyUrl: stand.url });
    expect(await captcha.verify('pass')).toBe(false);
  });

  it('is UNAVAILABLE when the provider is down', async () => {
    const stand = await standIn();
    const url = stand.url;
    await stand.close();
    stands.length = 0;
    const captcha = new SiteverifyCaptcha({ provider: 'turnstile', secret: 'x', verifyUrl: url });
    await expect(captcha.verify('pass')).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503 });
  });

  it('is UNAVAILABLE when the provider answers 5xx', async () => {
    const stand = await standIn({ failWithStatus: 502 });
    const captcha = new SiteverifyCaptcha({ provider: 'hcaptcha', secret: 'x', verifyUrl: stand.url });
    await expect(captcha.verify('pass')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('is UNAVAILABLE when the provider is too slow', async () => {
    // The stand-in would say "pass" after 5 s: only the 200 ms deadline can make this UNAVAILABLE.
    const stand = await standIn({ delayMs: 5_000 });
    const captcha = new SiteverifyCaptcha({ provider: 'turnstile', secret: 'x', verifyUrl: stand.url, timeoutMs: 200 });
    await expect(captcha.verify('pass')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it("knows each provider's documented siteverify URL", () => {
    expect(SITEVERIFY_URLS).toEqual({
      turnstile: 'https://challenges.cloudflare.com/turnstile/v0/siteverify',
      hcaptcha: 'https://api.hcaptcha.com/siteverify',
      recaptcha: 'https://www.google.com/recaptcha/api/siteverify',
    });
  });
});
