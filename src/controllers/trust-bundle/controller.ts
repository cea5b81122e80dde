// ConfigMap istio-ca-root-cert in every managed namespace, holding the
// current root bundle (the shared publisher in ../published-configmap/): a
// keyed reconciler per namespace, re-run for every namespace when the
// authority publishes a new bundle.
import { CONFIG_LABEL, TRUST_BUNDLE_KEY, TRUST_BUNDLE_NAME } from '../../model/names.js';
import {
  PublishedConfigMapController,
  type PublishedConfigMapOptions,
} from '../published-configmap/controller.js';
import type { TrustBundleView } from './observe.js';
import { trustBundleProgress } from './queries.js';

export type TrustBundleOptions = PublishedConfigMapOptions;

export class TrustBundleController extends PublishedConfigMapController<TrustBundleView> {
  constructor(opts: TrustBundleOptions) {
    super(opts, {
      name: TRUST_BUNDLE_NAME,
      key: TRUST_BUNDLE_KEY,
      labels: { [CONFIG_LABEL]: 'true' },
      informer: opts.caches.trustBundles,
      content: () => {
        const authority = opts.caches.state.authority.current;
        return authority.status === 'ready'
          ? { text: authority.authority.rootBundlePem, hash: authority.authority.rootBundleHash }
          : undefined;
      },
    });
    // A new bundle: every namespace is looked at again.
    opts.caches.state.authority.subscribe(() => this.enqueueAll());
  }

  /** How many managed namespaces publish the bundle with this hash, out of how many. */
  progress(bundleHash: string): { current: number; total: number } {
    return trustBundleProgress(this.opts.caches, this.opts.caNamespace, bundleHash);
  }
}
