import type { V1ConfigMap } from '@kubernetes/client-node';
import { sha256Hex } from '../../ca/authority.js';
import { decodeCertificatesPem, encodeCertificatesPem } from '../../pki/pem.js';
import type { PublishedConfigMapView } from '../published-configmap/plan.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../workload-secrets/observe.js';

/** The ConfigMap istiod wrote and sidecars read the mesh's roots from. */
export const TRUST_BUNDLE_NAME = 'istio-ca-root-cert';
export const TRUST_BUNDLE_KEY = 'root-cert.pem';
export const CONFIG_LABEL = 'istio.io/config';

export interface TrustBundleView extends PublishedConfigMapView {
  /** sha256 of root-cert.pem, canonically re-encoded; undefined when absent or unparsable. */
  bundleHash?: string;
}

export function observeTrustBundle(cm: V1ConfigMap): TrustBundleView {
  const labels = cm.metadata?.labels ?? {};
  const pem = cm.data?.[TRUST_BUNDLE_KEY];
  let bundleHash: string | undefined;
  if (pem !== undefined) {
    try {
      bundleHash = sha256Hex(encodeCertificatesPem(decodeCertificatesPem(pem)));
    } catch {
      bundleHash = undefined;
    }
  }
  return {
    uid: cm.metadata?.uid ?? '',
    resourceVersion: cm.metadata?.resourceVersion ?? '',
    owned: labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE,
    labelled: labels[CONFIG_LABEL] === 'true',
    dataKeys: [...Object.keys(cm.data ?? {}), ...Object.keys(cm.binaryData ?? {})].sort(),
    bundleHash,
    contentHash: bundleHash,
  };
}
