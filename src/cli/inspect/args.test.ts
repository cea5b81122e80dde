import { describe, expect, it } from 'vitest';
import { parseInspectArgs } from './args.js';

describe('parseInspectArgs', () => {
  it('<namespace>/<serviceaccount> inspects istio.<serviceaccount>, text, istio-system by default', () => {
    expect(parseInspectArgs(['shop/cart'])).toEqual({
      target: { namespace: 'shop', serviceAccount: 'cart', secretName: 'istio.cart' },
      output: 'text',
      caNamespace: 'istio-system',
      leaseName: 'alcazar-leader',
      csrDnsNames: ['alcazar.istio-system.svc', 'istiod.istio-system.svc'],
    });
  });

  it('--lease-name and --csr-dns-names say how the controller was started', () => {
    expect(
      parseInspectArgs([
        'shop/cart',
        '--lease-name',
        'mesh-ca-leader',
        '--csr-dns-names',
        'ca.mesh.svc, ca.example',
      ]),
    ).toMatchObject({ leaseName: 'mesh-ca-leader', csrDnsNames: ['ca.mesh.svc', 'ca.example'] });
    expect(parseInspectArgs(['shop/cart', '--ca-namespace', 'mesh'])?.csrDnsNames).toEqual([
      'alcazar.mesh.svc',
      'istiod.mesh.svc',
    ]);
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
      leaseName: 'alcazar-leader',
      csrDnsNames: ['alcazar.ca.svc', 'istiod.ca.svc'],
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
    [['shop/cart', '--lease-name', 'Leader!'], /--lease-name must be an object name/],
    [['shop/cart', '--csr-dns-names', 'ca.mesh.svc,,x'], /--csr-dns-names must be DNS names/],
  ])('%j is a usage error', (argv, message) => {
    expect(() => parseInspectArgs(argv)).toThrow(message);
  });
});
