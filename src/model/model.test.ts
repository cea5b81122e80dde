import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isManagedNamespace, serviceAccountOfSecret, spiffeIdFor, workloadSecretName } from './index.js';

const here = dirname(fileURLToPath(import.meta.url));

describe('model', () => {
  it('imports nothing outside itself, so every layer can import it', () => {
    for (const file of readdirSync(here).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
      const imports = [...readFileSync(join(here, file), 'utf8').matchAll(/from '([^']+)'/g)].map(
        (m) => m[1],
      );
      expect(
        imports.filter((path) => !path!.startsWith('./')),
        file,
      ).toEqual([]);
    }
  });

  it('maps a ServiceAccount to its Secret name and back', () => {
    expect(workloadSecretName('cart')).toBe('istio.cart');
    expect(serviceAccountOfSecret('istio.cart')).toBe('cart');
    expect(serviceAccountOfSecret('istio.')).toBeUndefined();
    expect(serviceAccountOfSecret('cacerts')).toBeUndefined();
  });

  it('names a workload by its SPIFFE ID', () => {
    expect(spiffeIdFor('cluster.local', 'shop', 'cart')).toBe('spiffe://cluster.local/ns/shop/sa/cart');
  });

  it('lets the override label beat the env label, and the always-managed list beat both', () => {
    const targeting = { managedByDefault: true, alwaysManaged: ['kube-system'] };
    expect(isManagedNamespace('a', { 'ca.istio.io/override': 'false' }, targeting, 'istio-system')).toBe(
      false,
    );
    expect(
      isManagedNamespace(
        'a',
        { 'ca.istio.io/override': 'true', 'ca.istio.io/env': 'x' },
        targeting,
        'istio-system',
      ),
    ).toBe(true);
    expect(isManagedNamespace('a', { 'ca.istio.io/env': 'other' }, targeting, 'istio-system')).toBe(false);
    expect(
      isManagedNamespace('kube-system', { 'ca.istio.io/override': 'false' }, targeting, 'istio-system'),
    ).toBe(true);
  });
});
