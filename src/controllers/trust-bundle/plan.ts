// What to do about one namespace's trust bundle ConfigMap. Pure.
import { TRUST_BUNDLE_KEY, TRUST_BUNDLE_NAME, type TrustBundleView } from './observe.js';

export interface TrustBundleInput {
  managed: boolean;
  terminating: boolean;
  configMap?: TrustBundleView;
  /** Hash of the bundle to publish; undefined while the CA is not ready. */
  bundleHash?: string;
}

export type TrustBundleDecision =
  | { action: 'none' }
  | { action: 'create' }
  | { action: 'update'; reason: 'StaleBundle' | 'Edited' }
  | { action: 'delete' }
  | { action: 'report'; reason: 'ForeignConfigMap'; message: string };

export function planTrustBundle({
  managed,
  terminating,
  configMap,
  bundleHash,
}: TrustBundleInput): TrustBundleDecision {
  if (!managed) return configMap?.owned ? { action: 'delete' } : { action: 'none' };
  if (terminating || bundleHash === undefined) return { action: 'none' };
  if (!configMap) return { action: 'create' };
  if (!configMap.owned) {
    return {
      action: 'report',
      reason: 'ForeignConfigMap',
      message: `ConfigMap ${TRUST_BUNDLE_NAME} exists but is not managed by alcazar (istiod may own it); it is left untouched`,
    };
  }
  if (configMap.bundleHash !== bundleHash) return { action: 'update', reason: 'StaleBundle' };
  const onlyOurKey = configMap.dataKeys.length === 1 && configMap.dataKeys[0] === TRUST_BUNDLE_KEY;
  if (!configMap.labelled || !onlyOurKey) return { action: 'update', reason: 'Edited' };
  return { action: 'none' };
}
