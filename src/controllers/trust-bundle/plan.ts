// What to do about one namespace's trust bundle ConfigMap. Pure; the shared publisher's plan.
import { type PublishedConfigMapDecision, planPublishedConfigMap } from '../published-configmap/plan.js';
import { TRUST_BUNDLE_KEY, TRUST_BUNDLE_NAME, type TrustBundleView } from './observe.js';

export interface TrustBundleInput {
  managed: boolean;
  terminating: boolean;
  configMap?: TrustBundleView;
  /** Hash of the bundle to publish; undefined while the CA is not ready. */
  bundleHash?: string;
}

export type TrustBundleDecision = PublishedConfigMapDecision;

export function planTrustBundle({
  managed,
  terminating,
  configMap,
  bundleHash,
}: TrustBundleInput): TrustBundleDecision {
  return planPublishedConfigMap({
    name: TRUST_BUNDLE_NAME,
    key: TRUST_BUNDLE_KEY,
    managed,
    terminating,
    configMap,
    contentHash: bundleHash,
  });
}
