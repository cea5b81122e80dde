// The informers the controllers share: one list+watch per kind, however many
// controllers subscribe to it, plus the state controllers derive from them
// (shared-state.ts). Controllers meet only here: each subscribes to what it
// watches and enqueues keys of its own.
import type {
  KubeConfig,
  KubernetesObject,
  V1ConfigMap,
  V1Namespace,
  V1Secret,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { certificateAuthorityResource } from '../config/ca-resource.js';
import { certificateRevocationResource as revocations } from '../config/revocation-spec.js';
import { isNotFound } from '../kube/client.js';
import type { Clock } from '../kube/clock.js';
import {
  Informer,
  kubeWatchSource,
  type ListOptions,
  type ListPage,
  type WatchEnd,
  type WatchSource,
} from '../kube/informer.js';
import {
  type ApiRequester,
  clusterCustomObjectPath,
  listPage,
  PARTIAL_METADATA,
  PARTIAL_METADATA_LIST,
  secretsPath,
} from '../kube/raw.js';
import {
  CERTIFICATE_AUTHORITY_NAME,
  MANAGED_BY_SELECTOR,
  PLUGGED_IN_SECRET,
  SELF_SIGNED_SECRET,
  TRUST_BUNDLE_NAME,
} from '../model/names.js';
import { type CaSecretView, caSecretView } from './authority/state.js';
import {
  type CaResourceView,
  type CertificateAuthorityObject,
  caResourceView,
} from './certificate-authority/view.js';
import { CRL_CONFIGMAP_NAME, type CrlConfigMapView, observeCrlConfigMap } from './crl/observe.js';
import {
  type CertificateRevocationObject,
  observeRevocation,
  type RevocationView,
} from './revocation/observe.js';
import { SharedState } from './shared-state.js';
import { observeTrustBundle, type TrustBundleView } from './trust-bundle/observe.js';
import {
  type ObservedSecret,
  observeNamespace,
  observeSecret,
  observeServiceAccount,
  WrittenContents,
} from './workload-secrets/observe.js';
import type { NamespaceView, ServiceAccountView } from './workload-secrets/plan.js';

export interface SharedCachesOptions {
  /** For the default watch source; not needed when `watch` is given. */
  kubeConfig?: KubeConfig;
  /** Lists go around client-node's model classes: plain JSON is all the summaries read. */
  raw: ApiRequester;
  log: Logger;
  resyncPeriodMs: number;
  /** How often a resync also lists everything again (default: at every resync). */
  relistPeriodMs?: number;
  stallTimeoutMs: number;
  onWatchRestart?: (informer: string, reason: WatchEnd) => void;
  clock?: Clock;
  /** Where the CA Secrets live and the CRL is signed; without it the CA-side informers watch nothing. */
  caNamespace?: string;
  watch?: WatchSource;
  /**
   * How workload Secrets are watched: 'metadata' (the default) watches PartialObjectMetadata and
   * reads a Secret only when it changed and not by this process's write; 'full' watches and
   * relists whole Secrets (the behaviour before issue #18).
   */
  secretWatch?: 'metadata' | 'full';
  /** Watches delivering PartialObjectMetadata; by default through `kubeConfig` with the Accept header. */
  metadataWatch?: WatchSource;
}

export class SharedCaches {
  readonly namespaces: Informer<V1Namespace, NamespaceView>;
  readonly serviceAccounts: Informer<V1ServiceAccount, ServiceAccountView>;
  /** Secrets carrying alcazar's managed-by label, in every namespace. */
  readonly workloadSecrets: Informer<V1Secret, ObservedSecret>;
  /** ConfigMaps named istio-ca-root-cert, in every namespace. */
  readonly trustBundles: Informer<V1ConfigMap, TrustBundleView>;
  /** The CertificateAuthority `default` (an empty cache when the CRD is not installed). */
  readonly certificateAuthorities: Informer<CertificateAuthorityObject, CaResourceView>;
  /** istio-ca-secret and cacerts in the CA namespace (hold key material: never log them). */
  readonly caSecrets: Record<
    typeof SELF_SIGNED_SECRET | typeof PLUGGED_IN_SECRET,
    Informer<V1Secret, CaSecretView>
  >;
  /** ConfigMaps named istio-ca-crl, in every namespace. */
  readonly crls: Informer<V1ConfigMap, CrlConfigMapView>;
  /** CertificateRevocations, in every namespace (none while the CRD is not installed). */
  readonly revocations: Informer<CertificateRevocationObject, RevocationView>;
  /** Workload Secret content this process wrote, so its watch event need not be parsed again. */
  readonly writtenSecrets = new WrittenContents();
  readonly state = new SharedState();
  private readonly caNamespace: string;

  constructor(opts: SharedCachesOptions) {
    const { raw, log } = opts;
    const watch = opts.watch ?? kubeWatchSource(opts.kubeConfig!);
    this.caNamespace = opts.caNamespace ?? '';
    const common = (name: string) => ({
      name,
      watch,
      log,
      clock: opts.clock,
      resyncPeriodMs: opts.resyncPeriodMs,
      relistPeriodMs: opts.relistPeriodMs,
      stallTimeoutMs: opts.stallTimeoutMs,
      onWatchRestart: (reason: WatchEnd) => opts.onWatchRestart?.(name, reason),
    });
    const lister =
      <R>(path: string) =>
      (o: ListOptions) =>
        listPage<R>(raw, path, o);
    this.namespaces = new Informer({
      ...common('namespaces'),
      source: { watchPath: '/api/v1/namespaces', list: lister('/api/v1/namespaces') },
      summarize: observeNamespace,
    });
    this.serviceAccounts = new Informer({
      ...common('serviceaccounts'),
      source: { watchPath: '/api/v1/serviceaccounts', list: lister('/api/v1/serviceaccounts') },
      summarize: observeServiceAccount,
    });
    const metadataWatch =
      opts.metadataWatch ??
      (opts.kubeConfig ? kubeWatchSource(opts.kubeConfig, PARTIAL_METADATA) : undefined);
    const secretsByMetadata = (opts.secretWatch ?? 'metadata') === 'metadata' && metadataWatch !== undefined;
    this.workloadSecrets = new Informer({
      ...common('workload secrets'),
      ...(secretsByMetadata ? { watch: metadataWatch } : {}),
      source: {
        watchPath: '/api/v1/secrets',
        labelSelector: MANAGED_BY_SELECTOR,
        list: lister('/api/v1/secrets'),
        metadata: secretsByMetadata
          ? {
              list: (o) => listPage<KubernetesObject>(raw, '/api/v1/secrets', o, PARTIAL_METADATA_LIST),
              get: async (key) => {
                const [namespace = '', name = ''] = key.split('/');
                try {
                  return await raw.request<V1Secret>('GET', secretsPath(namespace, name));
                } catch (err) {
                  if (isNotFound(err)) return undefined;
                  throw err;
                }
              },
            }
          : undefined,
      },
      summarize: (secret) => observeSecret(secret, this.writtenSecrets, () => this.signingAuthority()),
    });
    this.trustBundles = new Informer({
      ...common('trust bundles'),
      source: {
        watchPath: '/api/v1/configmaps',
        fieldSelector: `metadata.name=${TRUST_BUNDLE_NAME}`,
        list: lister('/api/v1/configmaps'),
      },
      summarize: observeTrustBundle,
    });
    this.crls = new Informer({
      ...common('crls'),
      source: {
        watchPath: '/api/v1/configmaps',
        fieldSelector: `metadata.name=${CRL_CONFIGMAP_NAME}`,
        list: lister('/api/v1/configmaps'),
      },
      summarize: (cm) => observeCrlConfigMap(cm, this.caNamespace),
    });
    const revocationsPath = `/apis/${revocations.group}/${revocations.version}/${revocations.plural}`;
    let revocationCrdMissingLogged = false;
    this.revocations = new Informer({
      ...common('certificaterevocations'),
      source: {
        watchPath: revocationsPath,
        list: async (o) => {
          try {
            const page = await listPage<CertificateRevocationObject>(raw, revocationsPath, o);
            revocationCrdMissingLogged = false;
            return page;
          } catch (err) {
            if (!isNotFound(err)) throw err;
            // No CRD: nothing is revoked; the watch fails and the informer retries with backoff.
            if (!revocationCrdMissingLogged) log.warn('the CertificateRevocation CRD is not installed');
            revocationCrdMissingLogged = true;
            return { items: [], metadata: { resourceVersion: '0' } } as ListPage<CertificateRevocationObject>;
          }
        },
      },
      summarize: observeRevocation,
    });

    const crPath = clusterCustomObjectPath(certificateAuthorityResource);
    let crdMissingLogged = false;
    this.certificateAuthorities = new Informer({
      ...common('certificateauthorities'),
      source: {
        watchPath: crPath,
        fieldSelector: `metadata.name=${CERTIFICATE_AUTHORITY_NAME}`,
        list: async (o) => {
          try {
            const page = await listPage<CertificateAuthorityObject>(raw, crPath, o);
            crdMissingLogged = false;
            return page;
          } catch (err) {
            if (!isNotFound(err)) throw err;
            // No CRD installed: run on defaults; the watch fails and the informer retries with backoff.
            if (!crdMissingLogged) {
              log.warn('the CertificateAuthority CRD is not installed; using built-in defaults');
              crdMissingLogged = true;
            }
            return { items: [], metadata: { resourceVersion: '0' } } as ListPage<CertificateAuthorityObject>;
          }
        },
      },
      summarize: caResourceView,
    });
    const caSecret = (name: string) =>
      new Informer<V1Secret, CaSecretView>({
        ...common(`secret ${this.caNamespace}/${name}`),
        source: {
          watchPath: `/api/v1/namespaces/${this.caNamespace}/secrets`,
          fieldSelector: `metadata.name=${name}`,
          list: lister(`/api/v1/namespaces/${this.caNamespace}/secrets`),
        },
        summarize: caSecretView,
      });
    this.caSecrets = {
      [SELF_SIGNED_SECRET]: caSecret(SELF_SIGNED_SECRET),
      [PLUGGED_IN_SECRET]: caSecret(PLUGGED_IN_SECRET),
    };
  }

  /** The workload-side caches (the CA-side ones start first, in startCa). */
  private get all(): Informer<KubernetesObject, unknown>[] {
    return [
      this.namespaces,
      this.serviceAccounts,
      this.workloadSecrets,
      this.trustBundles,
      this.crls,
      this.revocations,
    ] as Informer<KubernetesObject, unknown>[];
  }

  private get caSide(): Informer<KubernetesObject, unknown>[] {
    return [this.certificateAuthorities, ...Object.values(this.caSecrets)] as Informer<
      KubernetesObject,
      unknown
    >[];
  }

  get hasSynced(): boolean {
    return this.all.every((i) => i.hasSynced);
  }

  get caSideSynced(): boolean {
    return this.caSide.every((i) => i.hasSynced);
  }

  /** The CertificateAuthority and the CA Secrets: what decides the configuration and the CA. */
  async startCa(): Promise<void> {
    for (const informer of this.caSide) informer.start();
    await Promise.all(this.caSide.map((i) => i.waitForSync()));
  }

  /** For /readyz: which caches have not synced, and why, when a list or watch keeps failing. */
  syncCheck(): { name: 'caches-synced'; ok: boolean; message?: string } {
    const waiting = [...this.caSide, ...this.all].filter((i) => !i.hasSynced || i.lastFailure);
    if (waiting.length === 0) return { name: 'caches-synced', ok: true };
    const message = waiting.map((i) => `${i.name}: ${i.lastFailure ?? 'listing'}`).join('; ');
    return { name: 'caches-synced', ok: !waiting.some((i) => !i.hasSynced), message };
  }

  async start(): Promise<void> {
    for (const informer of this.all) informer.start();
    await Promise.all(this.all.map((i) => i.waitForSync()));
  }

  /** The CA Secret as cached (holds key material: never log it). */
  caSecret(name: typeof SELF_SIGNED_SECRET | typeof PLUGGED_IN_SECRET): CaSecretView | undefined {
    return this.caSecrets[name].get(`${this.caNamespace}/${name}`);
  }

  /** The authority signing now, if the CA is ready. */
  private signingAuthority() {
    const current = this.state.authority.current;
    return current.status === 'ready' ? current.authority : undefined;
  }

  /** The CertificateAuthority `default`, if it exists. */
  get certificateAuthority(): CaResourceView | undefined {
    return this.certificateAuthorities.get(CERTIFICATE_AUTHORITY_NAME);
  }

  /** Calls `fn` after every complete list of any cache (start, periodic resync, recovery). */
  onRelisted(fn: () => void): void {
    for (const informer of this.all) informer.subscribe({ relisted: fn });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.all, ...this.caSide].map((i) => i.stop()));
  }
}
