/** User tokens: HS256 checked with node:crypto must refuse what jose would refuse. */
import { SignJWT } from 'jose';
import { expect, it } from 'vitest';
import { Auth } from '../../src/http/auth.js';

const secret = 'test-user-secret-0123456789abcdef0123';
const auth = new Auth({ adminToken: 'admin-token-0123456789', userJwtSecret: secret, userJwtPublicKey: null });
const sign = (claims: Record<string, unknown>, key = secret, alg = 'HS256') =>
  new SignJWT(claims).setProtectedHeader({ alg }).sign(new TextEncoder().encode(key));
const code = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (e) => e.code,
  );

it('accepts a valid token and refuses forged, expired, unsigned and other-algorithm ones', async () => {
  const now = Math.floor(Date.now() / 1000);
  expect(await auth.user(`Bearer ${await sign({ sub: 'alice', exp: now + 60 })}`)).toBe('alice');
  expect(await code(auth.user(`Bearer ${await sign({ sub: 'alice', exp: now + 60 }, 'another-secret-0123456789abcdef0123')}`))).toBe('UNAUTHENTICATED');
  expect(await code(auth.user(`Bearer ${await sign({ sub: 'alice', exp: now - 1 })}`))).toBe('UNAUTHENTICATED');
  expect(await code(auth.user(`Bearer ${await sign({ exp: now + 60 })}`))).toBe('UNAUTHENTICATED');
  expect(await code(auth.user(`Bearer ${await sign({ sub: 'alice' }, secret + secret, 'HS512')}`))).toBe('UNAUTHENTICATED');
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"alice"}').toString('base64url')}.`;
  expect(await code(auth.user(`Bearer ${none}`))).toBe('UNAUTHENTICATED');
  const valid = await sign({ sub: 'bob', exp: now + 60 });
  const [h, , sig] = valid.split('.');
  const swapped = `${h}.${Buffer.from(JSON.stringify({ sub: 'mallory', exp: now + 60 })).toString('base64url')}.${sig}`;
  expect(await code(auth.user(`Bearer ${swapped}`))).toBe('UNAUTHENTICATED');
  expect(await code(auth.user(undefined))).toBe('UNAUTHENTICATED');
});

it('refuses other spellings of a valid signature, so one token cannot fill the verified-token cache', async () => {
  const now = Math.floor(Date.now() / 1000);
  const valid = await sign({ sub: 'carol', exp: now + 60 });
  expect(await auth.user(`Bearer ${valid}`)).toBe('carol');
  // base64url decoding skips characters outside its alphabet: these decode to the same signature bytes.
  expect(await code(auth.user(`Bearer ${valid}😀`))).toBe('UNAUTHENTICATED');
  expect(await code(auth.user(`Bearer ${valid}=`))).toBe('UNAUTHENTICATED');
  expect(auth.knownUser(`Bearer ${valid}😀`)).toBeUndefined();
  expect(auth.knownUser(`Bearer ${valid}`)).toBe('carol');
});
