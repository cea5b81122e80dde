import { describe, expect, it } from 'vitest';
import {
  callerOf,
  jwtExpiry,
  Semaphore,
  TokenAuthenticator,
  type TokenReviewResult,
} from './authenticate.js';
import { Refusal } from './policy.js';

const T0 = Date.UTC(2030, 0, 1);
const MINUTE = 60_000;

/** An unsigned JWT with the given exp (seconds): the authenticator never checks signatures itself. */
const jwt = (exp: number | undefined, subject = 'x') =>
  [
    Buffer.from('{"alg":"RS256"}').toString('base64url'),
    Buffer.from(JSON.stringify({ sub: subject, ...(exp === undefined ? {} : { exp }) })).toString(
      'base64url',
    ),
    'sig',
  ].join('.');

const serviceAccount = (ns: string, sa: string): TokenReviewResult => ({
  authenticated: true,
  username: `system:serviceaccount:${ns}:${sa}`,
  groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
  audiences: ['istio-ca'],
});

function harness(opts: { maxEntries?: number; result?: TokenReviewResult } = {}) {
  let now = T0;
  const reviewed: string[] = [];
  const auth = new TokenAuthenticator({
    review: async (token, audiences) => {
      reviewed.push(token);
      expect(audiences).toEqual(['istio-ca']);
      return opts.result ?? serviceAccount('shop', 'cart');
    },
    audiences: ['istio-ca'],
    now: () => now,
    maxCacheAgeMs: 5 * MINUTE,
    maxEntries: opts.maxEntries,
  });
  return { auth, reviewed, advance: (ms: number) => (now += ms) };
}

describe('TokenAuthenticator', () => {
  it('reviews a token once and reuses the answer while the token is valid and the entry young', async () => {
    const { auth, reviewed, advance } = harness();
    const token = jwt(T0 / 1000 + 3600);
    expect(await auth.authenticate(token)).toEqual({
      namespace: 'shop',
      serviceAccount: 'cart',
      via: 'token',
    });
    advance(4 * MINUTE);
    await auth.authenticate(token);
    expect(reviewed).toHaveLength(1);
    advance(2 * MINUTE); // past the 5-minute maximum age
    await auth.authenticate(token);
    expect(reviewed).toHaveLength(2);
  });

  it("never keeps an answer past the token's own expiry", async () => {
    const { auth, reviewed, advance } = harness();
    const token = jwt(T0 / 1000 + 60);
    await auth.authenticate(token);
    advance(61_000);
    await expect(auth.authenticate(token)).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
      reason: 'TokenExpired',
    });
    expect(reviewed).toHaveLength(1);
  });

  it('shares one review between identical tokens arriving together, and caps the cache size', async () => {
    const { auth, reviewed } = harness({ maxEntries: 2 });
    const token = jwt(T0 / 1000 + 3600);
    await Promise.all([auth.authenticate(token), auth.authenticate(token), auth.authenticate(token)]);
    expect(reviewed).toHaveLength(1);
    for (const subject of ['a', 'b', 'c']) await auth.authenticate(jwt(T0 / 1000 + 3600, subject));
    expect(auth.size).toBe(2);
  });

  it('does not cache refusals', async () => {
    const { auth, reviewed } = harness({ result: { authenticated: false, error: 'invalid bearer token' } });
    const token = jwt(T0 / 1000 + 3600);
    for (let i = 0; i < 2; i++) {
      await expect(auth.authenticate(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    }
    expect(reviewed).toHaveLength(2);
    expect(auth.size).toBe(0);
  });

  it('refuses an empty or huge token without a review', async () => {
    const { auth, reviewed } = harness();
    await expect(auth.authenticate('')).rejects.toBeInstanceOf(Refusal);
    await expect(auth.authenticate('x'.repeat(20_000))).rejects.toBeInstanceOf(Refusal);
    expect(reviewed).toHaveLength(0);
  });
});

describe('callerOf (a TokenReview result)', () => {
  it.each([
    ['not authenticated', { authenticated: false }, 'TokenRejected'],
    ['another audience', { ...serviceAccount('a', 'b'), audiences: ['kube-apiserver'] }, 'WrongAudience'],
    [
      'not in system:serviceaccounts',
      { ...serviceAccount('a', 'b'), groups: ['system:authenticated'] },
      'NotAServiceAccount',
    ],
    [
      'a user',
      { authenticated: true, username: 'alice', groups: ['system:serviceaccounts'] },
      'NotAServiceAccount',
    ],
  ])('refuses %s', (_, result, reason) => {
    expect(() => callerOf(result as TokenReviewResult, ['istio-ca'])).toThrow(
      expect.objectContaining({ code: 'UNAUTHENTICATED', reason }),
    );
  });
});

describe('jwtExpiry', () => {
  it('reads exp in ms, and nothing from what is not a JWT', () => {
    expect(jwtExpiry(jwt(1000))).toBe(1_000_000);
    expect(jwtExpiry(jwt(undefined))).toBeUndefined();
    expect(jwtExpiry('a.b')).toBeUndefined();
    expect(jwtExpiry('a.!!!.c')).toBeUndefined();
  });
});

describe('Semaphore', () => {
  it('runs at most N jobs at once', async () => {
    const semaphore = new Semaphore(2);
    let active = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 10 }, () =>
        semaphore.run(async () => {
          peak = Math.max(peak, ++active);
          await new Promise((r) => setImmediate(r));
          active--;
        }),
      ),
    );
    expect(peak).toBe(2);
  });
});
