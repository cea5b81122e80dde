import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RequestedNames } from '../pki/csr.js';
import { authorizeNames, decideValidityMs, Refusal, serviceAccountOfUser } from './policy.js';

const ID = 'spiffe://cluster.local/ns/shop/sa/cart';
const names = (overrides: Partial<RequestedNames> = {}): RequestedNames => ({
  uris: [ID],
  dnsNames: [],
  ipAddresses: [],
  emails: [],
  others: [],
  commonNames: [],
  ...overrides,
});

function refusalOf(run: () => unknown): Refusal | undefined {
  try {
    run();
  } catch (err) {
    if (err instanceof Refusal) return err;
    throw err;
  }
  return undefined;
}

describe('authorizeNames', () => {
  it("accepts exactly the caller's SPIFFE ID, with or without the same ID as CN", () => {
    expect(refusalOf(() => authorizeNames(names(), ID))).toBeUndefined();
    expect(refusalOf(() => authorizeNames(names({ commonNames: [ID] }), ID))).toBeUndefined();
  });

  it.each([
    ['another identity', names({ uris: ['spiffe://cluster.local/ns/shop/sa/admin'] }), /may only have/],
    ['a second URI', names({ uris: [ID, ID] }), /may only have/],
    ['no URI (CN only)', names({ uris: [], commonNames: [ID] }), /no URI SAN/],
    ['a DNS name', names({ dnsNames: ['cart.shop.svc'] }), /DNS:cart.shop.svc/],
    ['an IP address', names({ ipAddresses: ['10.0.0.1'] }), /IP:10.0.0.1/],
    ['an email', names({ emails: ['a@b.c'] }), /email:a@b.c/],
    ['another kind of name', names({ others: ['directoryName'] }), /directoryName/],
    ['a different CN', names({ commonNames: ['cart'] }), /CN "cart"/],
  ])('refuses %s with PERMISSION_DENIED', (_, requested, message) => {
    const refusal = refusalOf(() => authorizeNames(requested, ID));
    expect(refusal?.code).toBe('PERMISSION_DENIED');
    expect(refusal?.message).toMatch(message);
  });

  it('accepts nothing but the one ID, whatever else is asked for (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(ID, 'spiffe://cluster.local/ns/x/sa/y', 'https://evil'), { maxLength: 3 }),
        fc.array(fc.domain(), { maxLength: 2 }),
        (uris, dnsNames) => {
          const accepted = refusalOf(() => authorizeNames(names({ uris, dnsNames }), ID)) === undefined;
          expect(accepted).toBe(uris.length === 1 && uris[0] === ID && dnsNames.length === 0);
        },
      ),
    );
  });
});

describe('decideValidityMs', () => {
  const policy = { defaultMs: 24 * 3600_000, maxMs: 90 * 24 * 3600_000 };

  it('uses the default for 0 or less, the request otherwise, and refuses above the maximum', () => {
    expect(decideValidityMs(0, policy)).toBe(policy.defaultMs);
    expect(decideValidityMs(-5, policy)).toBe(policy.defaultMs);
    expect(decideValidityMs(3600, policy)).toBe(3600_000);
    expect(decideValidityMs(90 * 24 * 3600, policy)).toBe(policy.maxMs);
    expect(refusalOf(() => decideValidityMs(90 * 24 * 3600 + 1, policy))?.code).toBe('INVALID_ARGUMENT');
    expect(refusalOf(() => decideValidityMs(Number.POSITIVE_INFINITY, policy))?.code).toBe(
      'INVALID_ARGUMENT',
    );
    expect(decideValidityMs(Number.NEGATIVE_INFINITY, policy)).toBe(policy.defaultMs);
  });
});

describe('serviceAccountOfUser', () => {
  it('reads a ServiceAccount user name and nothing else', () => {
    expect(serviceAccountOfUser('system:serviceaccount:shop:cart')).toEqual({
      namespace: 'shop',
      serviceAccount: 'cart',
    });
    expect(serviceAccountOfUser('system:serviceaccount:shop:cart.v2')).toEqual({
      namespace: 'shop',
      serviceAccount: 'cart.v2',
    });
    expect(serviceAccountOfUser('system:admin')).toBeUndefined();
    expect(serviceAccountOfUser('system:serviceaccount:shop')).toBeUndefined();
    expect(serviceAccountOfUser('system:serviceaccount:shop:cart:extra')).toBeUndefined();
    expect(serviceAccountOfUser('system:serviceaccount:Shop:cart')).toBeUndefined();
  });
});
