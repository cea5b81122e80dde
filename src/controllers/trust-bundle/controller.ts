// ConfigMap istio-ca-root-cert in every managed namespace, holding the
// current root bundle. Edits and deletions of ours are reverted; a namespace
// that stops being managed loses ours; someone else's is never touched.
import { apiStatus, isNotFound } from '../../kube/client.js';
import { type ApiRequester, configMapsPath, MERGE_PATCH_CONTENT } from '../../kube/raw.js';
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
import { trustBundleProgress } from './queries.js';

export interface TrustBundleOptions extends ControllerContext {
  /** Writes go through this (the API server, or an in-memory one in tests). */
  raw: ApiRequester;
}

const labels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [CONFIG_LABEL]: 'true' };

export class TrustBundleController {
  /** Keyed by namespace name. */
  readonly queue: WorkQueue;
  private workers: Promise<void> | undefined;

  constructor(private readonly opts: TrustBundleOptions) {
    this.queue = new WorkQueue({ clock: opts.clock });
    const enqueue = (key: string) => this.queue.add(key.split('/')[0]!);
    opts.caches.namespaces.subscribe({ added: enqueue, updated: enqueue, deleted: enqueue });
    opts.caches.trustBundles.subscribe({ added: enqueue, updated: enqueue, deleted: enqueue });
    // A new bundle, a new configuration or a new leader: every namespace is looked at again.
    const { state } = opts.caches;
    state.config.subscribe(() => this.enqueueAll());
    state.authority.subscribe(() => this.enqueueAll());
    state.leading.subscribe((leading) => leading && this.enqueueAll());
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
    return trustBundleProgress(this.opts.caches, this.opts.caNamespace, bundleHash);
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
    const { raw } = this.opts;
    const path = configMapsPath(namespace, TRUST_BUNDLE_NAME);
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
          await raw.request('DELETE', path, {
            preconditions: { uid: configMap!.uid, resourceVersion: configMap!.resourceVersion },
          });
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        log.info('deleted trust bundle: namespace no longer managed');
        return;
      case 'create':
        try {
          await raw.request('POST', configMapsPath(namespace), {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name: TRUST_BUNDLE_NAME, namespace, labels },
            data: { [TRUST_BUNDLE_KEY]: bundle!.rootBundlePem },
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
        await raw.request(
          'PATCH',
          path,
          { metadata: { resourceVersion: configMap!.resourceVersion, labels }, data, binaryData: null },
          MERGE_PATCH_CONTENT,
        );
        log.info({ reason: decision.reason }, 'updated trust bundle');
        return;
      }
    }
  }
}
