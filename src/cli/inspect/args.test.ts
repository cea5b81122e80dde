import { describe, expect, it } from 'vitest';
import { parseInspectArgs } from './args.js';

describe('parseInspectArgs', () => {
  it('<namespace>/<serviceaccount> inspects istio.<serviceaccount>, text, istio-system by default', () => {
    expect(parseInspectArgs(['shop/cart'])).toEqual({
      target: { namespace: 'shop', serviceAccount: 'cart', secretName: 'istio.cart' },
      output: 'text',
      caNamespace: 'istio-system',
    });
  });

  it('--secret names the Secret; its ServiceAccount comes from an istio.<sa> name', () => {
    expect(
      parseInspectArgs([
        '--secret',
        'shop/istio.cart',
        '-o',
        'json',
        '--kubeconfig',
        '/k',
        '--ca-namespace=ca',
      ]),
    ).toEqual({
      target: { namespace: 'shop', serviceAccount: 'cart', secretName: 'istio.cart' },
      output: 'json',
      kubeconfig: '/k',
      caNamespace: 'ca',
    });
    expect(parseInspectArgs(['--secret', 'shop/my-tls'])?.target).toEqual({
      namespace: 'shop',
      secretName: 'my-tls',
    });
  });

  it('--help asks for the usage', () => {
    expect(parseInspectArgs(['--help'])).toBeUndefined();
    expect(parseInspectArgs(['shop/cart', '-h'])).toBeUndefined();
  });

  it.each([
    [[], /which workload/],
    [['cart'], /<namespace>\/<serviceaccount>/],
    [['shop/cart/x'], /<namespace>\/<serviceaccount>/],
    [['shop/cart', 'shop/web'], /one <namespace>\/<serviceaccount>/],
    [['shop/cart', '--secret', 'shop/istio.cart'], /not both/],
    [['shop/cart', '-o', 'yaml'], /-o must be text or json/],
    [['shop/cart', '--bogus'], /--bogus/],
    [['shop/cart', '--ca-namespace', 'Bad_NS'], /--ca-namespace/],
  ])('%j is a usage error', (argv, message) => {
    expect(() => parseInspectArgs(argv)).toThrow(message);
  });
});
