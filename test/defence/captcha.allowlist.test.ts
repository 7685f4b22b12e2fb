/** A sale that asks for a CAPTCHA checks the token with the provider; allowlisted staff skip the checks. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCaptchaStandIn, type CaptchaStandIn } from '../support/captcha-stand-in.js';
import { createSale, describeStacks, openStack, userToken, type Stack } from '../support/stack.js';

describeStacks('captcha and allowlist', (kind) => {
  let captcha: CaptchaStandIn;
  let stack: Stack | null;
  beforeAll(async () => {
    captcha = await startCaptchaStandIn({ secret: 'site-secret' });
    stack = await openStack(kind, { env: { STAMPEDE_CAPTCHA_SECRET: 'site-secret', STAMPEDE_CAPTCHA_VERIFY_URL: captcha.url } });
  });
  afterAll(async () => {
    await stack?.close();
    await captcha.close();
  });

  const enter = (s: Stack, saleId: string, headers: Record<string, string>, body: object) =>
    s.app.inject({ method: 'POST', url: `/api/flash-sales/${saleId}/enter-queue`, headers, payload: body });

  it('refuses a missing or failed CAPTCHA and lets a passed one in', async (ctx) => {
    if (!stack) return ctx.skip();
    const sale = await createSale(stack, { bot_protection: { pow_difficulty: 0, captcha: 'turnstile' } });
    const u = await userToken(stack);
    expect((await enter(stack, sale.id, u.headers, {})).json().error.code).toBe('CAPTCHA_REQUIRED');
    expect((await enter(stack, sale.id, u.headers, { captcha_token: 'robot' })).json().error.code).toBe('CAPTCHA_INVALID');
    const ok = await enter(stack, sale.id, u.headers, { captcha_token: 'pass' });
    expect(ok.statusCode).toBe(200);
    expect(captcha.requests.at(-1)).toMatchObject({ secret: 'site-secret', response: 'pass' });
  });

  it('an allowlisted user enters without proof-of-work or CAPTCHA, and is never shadowed', async (ctx) => {
    if (!stack) return ctx.skip();
    const staff = await userToken(stack);
    const sale = await createSale(stack, { bot_protection: { pow_difficulty: 6, captcha: 'turnstile', allowlist: [staff.sub] } });
    const res = await enter(stack, sale.id, staff.headers, {});
    expect(res.statusCode).toBe(200);
    expect(res.json().place).toBe(1);
    const outsider = await userToken(stack);
    expect((await enter(stack, sale.id, outsider.headers, {})).json().error.code).toBe('POW_REQUIRED');
  });
});
