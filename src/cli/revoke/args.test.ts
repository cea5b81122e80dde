import { describe, expect, it } from 'vitest';
import { parseRevokeArgs, revocationObject } from './args.js';

describe('alcazar revoke arguments', () => {
  it('revokes a ServiceAccount with a reason', () => {
    const args = parseRevokeArgs(['shop/cart', '--reason', 'keyCompromise'])!;
    expect(revocationObject(args)).toEqual({
      apiVersion: 'alcazar.dev/v1alpha1',
      kind: 'CertificateRevocation',
      metadata: { namespace: 'shop', generateName: 'cart-' },
      spec: { serviceAccountName: 'cart', reason: 'keyCompromise' },
    });
  });

  it('revokes serials in a namespace, read as openssl prints them', () => {
    const args = parseRevokeArgs(['--serial', '04:FA', '--serial', '0x0b', '-n', 'shop', '--name', 'leak'])!;
    expect(revocationObject(args)).toMatchObject({
      metadata: { namespace: 'shop', name: 'leak' },
      spec: { serialNumbers: ['04fa', '0b'], reason: 'unspecified' },
    });
  });

  it.each([
    [[], /what to revoke/],
    [['--serial', '0a'], /needs -n/],
    [['--serial', 'zz', '-n', 'shop'], /not a hexadecimal serial/],
    [['shop/cart', '--reason', 'bored'], /--reason must be one of/],
    [['shop'], /expected <namespace>\/<serviceaccount>/],
    [['shop/cart', '-n', 'other'], /disagrees/],
    [['--bogus'], /Unknown option/],
  ])('refuses %j with a clear message', (argv, message) => {
    expect(() => parseRevokeArgs(argv)).toThrow(message);
  });

  it('answers --help with nothing to do', () => {
    expect(parseRevokeArgs(['--help'])).toBeUndefined();
  });
});
