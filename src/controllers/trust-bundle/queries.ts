// Read-only questions about the trust bundles in the shared caches.
import { TRUST_BUNDLE_NAME } from '../../model/names.js';
import { isManagedNamespace } from '../../model/targeting.js';
import type { SharedCaches } from '../caches.js';

/**
 * How many managed namespaces publish the bundle with this hash, out of how many. A namespace whose
 * istio-ca-root-cert is someone else's (istiod's) is left out: alcazar never updates it (it is
 * reported as ForeignConfigMap instead), so counting it held a root rotation in Publishing for ever.
 */
export function trustBundleProgress(
  caches: SharedCaches,
  caNamespace: string,
  bundleHash: string,
): { current: number; total: number } {
  const targeting = caches.state.config.current.namespaces;
  let current = 0;
  let total = 0;
  for (const [namespace, ns] of caches.namespaces.entries()) {
    if (ns.terminating || !isManagedNamespace(namespace, ns.labels, targeting, caNamespace)) continue;
    const bundle = caches.trustBundles.get(`${namespace}/${TRUST_BUNDLE_NAME}`);
    if (bundle && !bundle.owned) continue;
    total++;
    if (bundle?.bundleHash === bundleHash) current++;
  }
  return { current, total };
}
