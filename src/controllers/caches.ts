// The informers the controllers share: one list+watch per kind, however many
// controllers subscribe to it.
import type {
  KubeConfig,
  V1ConfigMap,
  V1Namespace,
  V1Secret,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { certificateRevocationResource as revocations } from '../config/revocation-spec.js';
import { isNotFound } from '../kube/client.js';
import { Informer, type WatchEnd } from '../kube/informer.js';
import { listPage, type RawApi } from '../kube/raw.js';
import { CRL_CONFIGMAP_NAME, type CrlConfigMapView, observeCrlConfigMap } from './crl/observe.js';
import {
  type CertificateRevocationObject,
  observeRevocation,
  type RevocationView,
} from './revocation/observe.js';
import { observeTrustBundle, TRUST_BUNDLE_NAME, type TrustBundleView } from './trust-bundle/observe.js';
import {
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type ObservedSecret,
  observeNamespace,
  observeSecret,
  observeServiceAccount,
  WrittenContents,
} from './workload-secrets/observe.js';
import type { NamespaceView, ServiceAccountView } from './workload-secrets/plan.js';

export interface SharedCachesOptions {
  kubeConfig: KubeConfig;
  /** Lists go around client-node's model classes: plain JSON is all the summaries read. */
  raw: RawApi;
  log: Logger;
  resyncPeriodMs: number;
  stallTimeoutMs: number;
  onWatchRestart?: (informer: string, reason: WatchEnd) => void;
  /** Where the CRL is signed: its istio-ca-crl is kept with its text. */
  caNamespace?: string;
}

export class SharedCaches {
  readonly namespaces: Informer<V1Namespace, NamespaceView>;
  readonly serviceAccounts: Informer<V1ServiceAccount, ServiceAccountView>;
  /** Secrets carrying alcazar's managed-by label, in every namespace. */
  readonly workloadSecrets: Informer<V1Secret, ObservedSecret>;
  /** ConfigMaps named istio-ca-root-cert, in every namespace. */
  readonly trustBundles: Informer<V1ConfigMap, TrustBundleView>;
  /** ConfigMaps named istio-ca-crl, in every namespace. */
  readonly crls: Informer<V1ConfigMap, CrlConfigMapView>;
  /** CertificateRevocations, in every namespace (none while the CRD is not installed). */
  readonly revocations: Informer<CertificateRevocationObject, RevocationView>;
  /** Workload Secret content this process wrote, so its watch event need not be parsed again. */
  readonly writtenSecrets = new WrittenContents();

  constructor(opts: SharedCachesOptions) {
    const { raw } = opts;
    const common = (name: string) => ({
      name,
      kubeConfig: opts.kubeConfig,
      log: opts.log,
      resyncPeriodMs: opts.resyncPeriodMs,
      stallTimeoutMs: opts.stallTimeoutMs,
      onWatchRestart: (reason: WatchEnd) => opts.onWatchRestart?.(name, reason),
    });
    this.namespaces = new Informer({
      ...common('namespaces'),
      source: { watchPath: '/api/v1/namespaces', list: (o) => listPage(raw, '/api/v1/namespaces', o) },
      summarize: observeNamespace,
    });
    this.serviceAccounts = new Informer({
      ...common('serviceaccounts'),
      source: {
        watchPath: '/api/v1/serviceaccounts',
        list: (o) => listPage(raw, '/api/v1/serviceaccounts', o),
      },
      summarize: observeServiceAccount,
    });
    this.workloadSecrets = new Informer({
      ...common('workload secrets'),
      source: {
        watchPath: '/api/v1/secrets',
        labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
        list: (o) => listPage(raw, '/api/v1/secrets', o),
      },
      summarize: (secret) => observeSecret(secret, this.writtenSecrets),
    });
    this.trustBundles = new Informer({
      ...common('trust bundles'),
      source: {
        watchPath: '/api/v1/configmaps',
        fieldSelector: `metadata.name=${TRUST_BUNDLE_NAME}`,
        list: (o) => listPage(raw, '/api/v1/configmaps', o),
      },
      summarize: observeTrustBundle,
    });
    this.crls = new Informer({
      ...common('crls'),
      source: {
        watchPath: '/api/v1/configmaps',
        fieldSelector: `metadata.name=${CRL_CONFIGMAP_NAME}`,
        list: (o) => listPage(raw, '/api/v1/configmaps', o),
      },
      summarize: (cm) => observeCrlConfigMap(cm, opts.caNamespace ?? ''),
    });
    const revocationsPath = `/apis/${revocations.group}/${revocations.version}/${revocations.plural}`;
    let crdMissingLogged = false;
    this.revocations = new Informer({
      ...common('certificaterevocations'),
      source: {
        watchPath: revocationsPath,
        list: async (o) => {
          try {
            const page = await listPage<CertificateRevocationObject>(raw, revocationsPath, o);
            crdMissingLogged = false;
            return page;
          } catch (err) {
            if (!isNotFound(err)) throw err;
            // No CRD: nothing is revoked; the watch fails and the informer retries with backoff.
            if (!crdMissingLogged) opts.log.warn('the CertificateRevocation CRD is not installed');
            crdMissingLogged = true;
            return { items: [], metadata: { resourceVersion: '0' } };
          }
        },
      },
      summarize: observeRevocation,
    });
  }

  private get all() {
    return [
      this.namespaces,
      this.serviceAccounts,
      this.workloadSecrets,
      this.trustBundles,
      this.crls,
      this.revocations,
    ];
  }

  get hasSynced(): boolean {
    return this.all.every((i) => i.hasSynced);
  }

  /** For /readyz: which caches have not synced, and why, when a list or watch keeps failing. */
  syncCheck(): { name: 'caches-synced'; ok: boolean; message?: string } {
    const waiting = this.all.filter((i) => !i.hasSynced || i.lastFailure);
    if (waiting.length === 0) return { name: 'caches-synced', ok: true };
    const message = waiting.map((i) => `${i.name}: ${i.lastFailure ?? 'listing'}`).join('; ');
    return { name: 'caches-synced', ok: !waiting.some((i) => !i.hasSynced), message };
  }

  async start(): Promise<void> {
    for (const informer of this.all) informer.start();
    await Promise.all(this.all.map((i) => i.waitForSync()));
  }

  /** Calls `fn` after every complete list of any cache (start, periodic resync, recovery). */
  onRelisted(fn: () => void): void {
    for (const informer of this.all) informer.subscribe({ relisted: fn });
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.map((i) => i.stop()));
  }
}
