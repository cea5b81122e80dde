// ConfigMap istio-ca-root-cert in every managed namespace, holding the
// current root bundle. Edits and deletions of ours are reverted; a namespace
// that stops being managed loses ours; someone else's is never touched.
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { apiStatus, isNotFound } from '../../kube/client.js';
import { WorkQueue } from '../../kube/workqueue.js';
import {
  CONFIG_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  TRUST_BUNDLE_KEY,
  TRUST_BUNDLE_NAME,
} from '../../model/names.js';
import { isManagedNamespace } from '../../model/targeting.js';
import type { ControllerContext } from '../context.js';
import { startReconcileLoop } from '../reconcile-loop.js';
import { planTrustBundle } from './plan.js';

export type TrustBundleOptions = ControllerContext;

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const labels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [CONFIG_LABEL]: 'true' };

export class TrustBundleController {
  /** Keyed by namespace name. */
  readonly queue = new WorkQueue();
  private workers: Promise<void> | undefined;

  constructor(private readonly opts: TrustBundleOptions) {
    const enqueue = (key: string) => this.queue.add(key.split('/')[0]!);
    opts.caches.namespaces.subscribe({ added: enqueue, updated: enqueue, deleted: enqueue });
    opts.caches.trustBundles.subscribe({ added: enqueue, updated: enqueue, deleted: enqueue });
  }

  start(): void {
    this.workers = startReconcileLoop({
      queue: this.queue,
      workers: this.opts.workers,
      reconcile: (ns) => this.reconcile(ns),
      log: this.opts.log,
      describeKey: (namespace) => ({ namespace }),
    });
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await this.workers;
  }

  /** After the bundle changes: every namespace is looked at again. */
  enqueueAll(): void {
    for (const [ns] of this.opts.caches.namespaces.entries()) this.queue.add(ns);
  }

  /** How many managed namespaces publish the bundle with this hash, out of how many. */
  progress(bundleHash: string): { current: number; total: number } {
    let current = 0;
    let total = 0;
    for (const [namespace, ns] of this.opts.caches.namespaces.entries()) {
      if (ns.terminating || !this.isManaged(namespace, ns.labels)) continue;
      total++;
      if (this.opts.caches.trustBundles.get(`${namespace}/${TRUST_BUNDLE_NAME}`)?.bundleHash === bundleHash)
        current++;
    }
    return { current, total };
  }

  private isManaged(namespace: string, nsLabels: Record<string, string>): boolean {
    return isManagedNamespace(namespace, nsLabels, this.opts.config().namespaces, this.opts.caNamespace);
  }

  private async reconcile(namespace: string): Promise<void> {
    if (!this.opts.canWrite()) return;
    const ns = this.opts.caches.namespaces.get(namespace);
    const configMap = this.opts.caches.trustBundles.get(`${namespace}/${TRUST_BUNDLE_NAME}`);
    const authority = this.opts.authority();
    const bundle = authority.status === 'ready' ? authority.authority : undefined;
    const decision = planTrustBundle({
      managed: ns !== undefined && this.isManaged(namespace, ns.labels),
      terminating: ns?.terminating ?? true,
      configMap,
      bundleHash: bundle?.rootBundleHash,
    });
    const log = this.opts.log.child({ namespace, configMap: TRUST_BUNDLE_NAME });
    const { core } = this.opts;
    switch (decision.action) {
      case 'none':
        return;
      case 'report':
        log.warn({ reason: decision.reason }, decision.message);
        this.opts.events.record(
          { apiVersion: 'v1', kind: 'ConfigMap', namespace, name: TRUST_BUNDLE_NAME, uid: configMap?.uid },
          'Warning',
          decision.reason,
          decision.message,
        );
        return;
      case 'delete':
        try {
          await core.deleteNamespacedConfigMap({
            namespace,
            name: TRUST_BUNDLE_NAME,
            body: { preconditions: { uid: configMap!.uid, resourceVersion: configMap!.resourceVersion } },
          });
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        log.info('deleted trust bundle: namespace no longer managed');
        return;
      case 'create':
        try {
          await core.createNamespacedConfigMap({
            namespace,
            body: {
              metadata: { name: TRUST_BUNDLE_NAME, namespace, labels },
              data: { [TRUST_BUNDLE_KEY]: bundle!.rootBundlePem },
            },
          });
        } catch (err) {
          // 409: the cache is behind (the watch brings it); 403: the namespace is terminating.
          if (apiStatus(err) === 409 || apiStatus(err) === 403) return;
          throw err;
        }
        log.info('published trust bundle');
        return;
      case 'update': {
        const data: Record<string, string | null> = { [TRUST_BUNDLE_KEY]: bundle!.rootBundlePem };
        for (const key of configMap!.dataKeys) if (key !== TRUST_BUNDLE_KEY) data[key] = null;
        await core.patchNamespacedConfigMap(
          {
            namespace,
            name: TRUST_BUNDLE_NAME,
            body: {
              metadata: { resourceVersion: configMap!.resourceVersion, labels },
              data,
              binaryData: null,
            },
          },
          mergePatch,
        );
        log.info({ reason: decision.reason }, 'updated trust bundle');
        return;
      }
    }
  }
}
