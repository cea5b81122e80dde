// ConfigMap istio-ca-root-cert in every managed namespace, holding the
// current root bundle (the shared publisher in ../published-configmap/).
import type { ControllerContext } from '../context.js';
import { PublishedConfigMapController } from '../published-configmap/controller.js';
import { CONFIG_LABEL, TRUST_BUNDLE_KEY, TRUST_BUNDLE_NAME, type TrustBundleView } from './observe.js';

export type TrustBundleOptions = ControllerContext;

export class TrustBundleController extends PublishedConfigMapController<TrustBundleView> {
  constructor(opts: TrustBundleOptions) {
    super(opts, {
      name: TRUST_BUNDLE_NAME,
      key: TRUST_BUNDLE_KEY,
      labels: { [CONFIG_LABEL]: 'true' },
      informer: opts.caches.trustBundles,
      content: () => {
        const authority = opts.authority();
        return authority.status === 'ready'
          ? { text: authority.authority.rootBundlePem, hash: authority.authority.rootBundleHash }
          : undefined;
      },
    });
  }

  /** How many managed namespaces publish the bundle with this hash, out of how many. */
  progress(bundleHash: string): { current: number; total: number } {
    let current = 0;
    let total = 0;
    for (const [namespace, ns] of this.opts.caches.namespaces.entries()) {
      if (ns.terminating || !this.isManaged(namespace, ns.labels)) continue;
      total++;
      if (this.opts.caches.trustBundles.get(`${namespace}/${TRUST_BUNDLE_NAME}`)?.bundleHash === bundleHash)
        current++;
    }
    return { current, total };
  }
}
