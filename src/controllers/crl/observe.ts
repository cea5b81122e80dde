// What the caches keep of an istio-ca-crl ConfigMap: enough to publish and heal it, the highest
// CRL number it carries (so numbers keep growing across restarts and leaders), and in the CA
// namespace, where the CRL is signed, its text.
import type { V1ConfigMap } from '@kubernetes/client-node';
import { sha256Hex } from '../../ca/authority.js';
import { CrlError, decodeCrlsPem, parseCrl } from '../../pki/crl.js';
import type { PublishedConfigMapView } from '../published-configmap/plan.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../workload-secrets/observe.js';

/** The ConfigMap Istio ≥ 1.27 distributes and mounts at /var/run/secrets/istio/crl. */
export const CRL_CONFIGMAP_NAME = 'istio-ca-crl';
export const CRL_KEY = 'ca-crl.pem';
export const CRL_NUMBER_ANNOTATION = 'alcazar.dev/crl-number';
export const CRL_NEXT_UPDATE_ANNOTATION = 'alcazar.dev/crl-next-update';

export interface CrlConfigMapView extends PublishedConfigMapView {
  /** The highest CRL number in it (or its annotation), 0 when none can be read. */
  highestCrlNumber: bigint;
  /** ca-crl.pem as written; kept only for the CA namespace's copy. */
  text?: string;
}

export function highestCrlNumberOf(text: string | undefined, annotation: string | undefined): bigint {
  let highest = /^[0-9]{1,48}$/.test(annotation ?? '') ? BigInt(annotation!) : 0n;
  if (text === undefined) return highest;
  try {
    for (const der of decodeCrlsPem(text)) {
      const number = parseCrl(der).crlNumber ?? 0n;
      if (number > highest) highest = number;
    }
  } catch (err) {
    if (!(err instanceof CrlError) && !(err instanceof Error)) throw err;
  }
  return highest;
}

export function observeCrlConfigMap(cm: V1ConfigMap, caNamespace: string): CrlConfigMapView {
  const labels = cm.metadata?.labels ?? {};
  const text = cm.data?.[CRL_KEY];
  return {
    uid: cm.metadata?.uid ?? '',
    resourceVersion: cm.metadata?.resourceVersion ?? '',
    owned: labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE,
    labelled: true,
    dataKeys: [...Object.keys(cm.data ?? {}), ...Object.keys(cm.binaryData ?? {})].sort(),
    ...(text !== undefined && { contentHash: sha256Hex(text) }),
    highestCrlNumber: highestCrlNumberOf(text, cm.metadata?.annotations?.[CRL_NUMBER_ANNOTATION]),
    ...(cm.metadata?.namespace === caNamespace && text !== undefined && { text }),
  };
}
