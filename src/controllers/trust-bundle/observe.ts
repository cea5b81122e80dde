import type { V1ConfigMap } from '@kubernetes/client-node';
import { sha256Hex } from '../../ca/authority.js';
import { CONFIG_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, TRUST_BUNDLE_KEY } from '../../model/names.js';
import { decodeCertificatesPem, encodeCertificatesPem } from '../../pki/pem.js';
import type { PublishedConfigMapView } from '../published-configmap/plan.js';

// Moved to src/model/names.ts; re-exported here for existing imports.
export { CONFIG_LABEL, TRUST_BUNDLE_KEY, TRUST_BUNDLE_NAME } from '../../model/names.js';

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
