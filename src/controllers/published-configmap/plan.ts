// What to do about one namespace's copy of a ConfigMap alcazar publishes everywhere (the trust
// bundle istio-ca-root-cert, the CRL istio-ca-crl). Pure.

export interface PublishedConfigMapView {
  uid: string;
  resourceVersion: string;
  owned: boolean;
  /** Carries the labels the publisher adds beyond managed-by (e.g. istio.io/config=true). */
  labelled: boolean;
  dataKeys: string[];
  /** Hash of the published key's content; undefined when absent or unreadable. */
  contentHash?: string;
}

export interface PublishedConfigMapInput {
  name: string;
  key: string;
  managed: boolean;
  terminating: boolean;
  configMap?: PublishedConfigMapView;
  /** Hash of what to publish; undefined while there is nothing to publish yet. */
  contentHash?: string;
}

export type PublishedConfigMapDecision =
  | { action: 'none' }
  | { action: 'create' }
  | { action: 'update'; reason: 'StaleContent' | 'Edited' }
  | { action: 'delete' }
  | { action: 'report'; reason: 'ForeignConfigMap'; message: string };

export function planPublishedConfigMap(input: PublishedConfigMapInput): PublishedConfigMapDecision {
  const { managed, terminating, configMap, contentHash } = input;
  if (!managed) return configMap?.owned ? { action: 'delete' } : { action: 'none' };
  if (terminating || contentHash === undefined) return { action: 'none' };
  if (!configMap) return { action: 'create' };
  if (!configMap.owned) {
    return {
      action: 'report',
      reason: 'ForeignConfigMap',
      message: `ConfigMap ${input.name} exists but is not managed by alcazar (istiod may own it); it is left untouched`,
    };
  }
  if (configMap.contentHash !== contentHash) return { action: 'update', reason: 'StaleContent' };
  const onlyOurKey = configMap.dataKeys.length === 1 && configMap.dataKeys[0] === input.key;
  if (!configMap.labelled || !onlyOurKey) return { action: 'update', reason: 'Edited' };
  return { action: 'none' };
}
