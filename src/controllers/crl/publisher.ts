// ConfigMap istio-ca-crl in every managed namespace: a copy of the CA namespace's, once the CRL
// controller has verified or written it (the shared publisher in ../published-configmap/).
import {
  PublishedConfigMapController,
  type PublishedConfigMapOptions,
} from '../published-configmap/controller.js';
import type { CrlController } from './controller.js';
import { CRL_CONFIGMAP_NAME, CRL_KEY, type CrlConfigMapView } from './observe.js';

export class CrlPublisher extends PublishedConfigMapController<CrlConfigMapView> {
  constructor(opts: PublishedConfigMapOptions, source: Pick<CrlController, 'publishable'>) {
    super(opts, {
      name: CRL_CONFIGMAP_NAME,
      key: CRL_KEY,
      labels: {},
      informer: opts.caches.crls,
      content: () => source.publishable(),
      // The CA namespace's copy is the one the CRL controller signs into.
      skip: (namespace) => namespace === opts.caNamespace,
    });
    // A new CRL in the CA namespace is news for every namespace.
    const caKey = `${opts.caNamespace}/${CRL_CONFIGMAP_NAME}`;
    const onSource = (key: string) => {
      if (key === caKey) this.enqueueAll();
    };
    opts.caches.crls.subscribe({ added: onSource, updated: onSource });
    // A new CA: what may be published changes with its signers.
    opts.caches.state.authority.subscribe(() => this.enqueueAll());
  }
}
