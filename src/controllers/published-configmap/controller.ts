// One ConfigMap in every managed namespace, holding what alcazar publishes (the trust bundle, the
// CRL). A keyed reconciler (key: namespace name) on the work queue. Edits and deletions of ours
// are reverted; a namespace that stops being managed loses ours; someone else's is never touched,
// only reported. A new configuration or a new leader re-examines every namespace.
import type { V1ConfigMap } from '@kubernetes/client-node';
import { apiStatus, isNotFound } from '../../kube/client.js';
import type { Informer } from '../../kube/informer.js';
import { type ApiRequester, configMapsPath, MERGE_PATCH_CONTENT } from '../../kube/raw.js';
import { WorkQueue } from '../../kube/workqueue.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../model/names.js';
import { isManagedNamespace } from '../../model/targeting.js';
import type { ControllerContext } from '../context.js';
import { startReconcileLoop } from '../reconcile-loop.js';
import { type PublishedConfigMapView, planPublishedConfigMap } from './plan.js';

export interface PublishedConfigMapOptions extends ControllerContext {
  /** Writes go through this (the API server, or an in-memory one in tests). */
  raw: ApiRequester;
}

export interface PublishedContent {
  text: string;
  hash: string;
}

export interface PublishedConfigMapSpec<V extends PublishedConfigMapView> {
  name: string;
  key: string;
  /** Labels besides managed-by. */
  labels: Record<string, string>;
  informer: Informer<V1ConfigMap, V>;
  /** What to publish now; undefined while there is nothing yet. */
  content: () => PublishedContent | undefined;
  /** Namespaces another controller writes (the CRL's source in the CA namespace). */
  skip?: (namespace: string) => boolean;
}

export class PublishedConfigMapController<V extends PublishedConfigMapView> {
  /** Keyed by namespace name. */
  readonly queue: WorkQueue;
  private workers: Promise<void> | undefined;
  private readonly labels: Record<string, string>;

  constructor(
    protected readonly opts: PublishedConfigMapOptions,
    protected readonly spec: PublishedConfigMapSpec<V>,
  ) {
    this.queue = new WorkQueue({ clock: opts.clock });
    this.labels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, ...spec.labels };
    const enqueue = (key: string) => this.queue.add(key.split('/')[0]!);
    opts.caches.namespaces.subscribe({ added: enqueue, updated: enqueue, deleted: enqueue });
    spec.informer.subscribe({ added: enqueue, updated: enqueue, deleted: enqueue });
    // A new configuration or a new leader: every namespace is looked at again.
    const { state } = opts.caches;
    state.config.subscribe(() => this.enqueueAll());
    state.leading.subscribe((leading) => leading && this.enqueueAll());
    state.configHeld.subscribe((held) => !held && this.enqueueAll());
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

  /** After the content changes: every namespace is looked at again. */
  enqueueAll(): void {
    for (const [ns] of this.opts.caches.namespaces.entries()) this.queue.add(ns);
  }

  protected isManaged(namespace: string, nsLabels: Record<string, string>): boolean {
    return isManagedNamespace(namespace, nsLabels, this.opts.config().namespaces, this.opts.caNamespace);
  }

  private async reconcile(namespace: string): Promise<void> {
    if (!this.opts.canWrite() || this.spec.skip?.(namespace)) return;
    const { name, key } = this.spec;
    const ns = this.opts.caches.namespaces.get(namespace);
    const configMap = this.spec.informer.get(`${namespace}/${name}`);
    const content = this.spec.content();
    const decision = planPublishedConfigMap({
      name,
      key,
      managed: ns !== undefined && this.isManaged(namespace, ns.labels),
      terminating: ns?.terminating ?? true,
      configMap,
      contentHash: content?.hash,
    });
    const log = this.opts.log.child({ namespace, configMap: name });
    const { raw } = this.opts;
    const path = configMapsPath(namespace, name);
    switch (decision.action) {
      case 'none':
        return;
      case 'report':
        log.warn({ reason: decision.reason }, decision.message);
        this.opts.events.record(
          { apiVersion: 'v1', kind: 'ConfigMap', namespace, name, uid: configMap?.uid },
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
        log.info(`deleted ${name}: namespace no longer managed`);
        return;
      case 'create':
        try {
          await raw.request('POST', configMapsPath(namespace), {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name, namespace, labels: this.labels },
            data: { [key]: content!.text },
          });
        } catch (err) {
          // 409: the cache is behind (the watch brings it). 403: the namespace is terminating, if
          // the cache does not show it active; otherwise a quota, RBAC or an admission policy
          // refused it, and the backoff retries (nothing else would look at this namespace again).
          if (apiStatus(err) === 409) return;
          if (apiStatus(err) === 403 && this.opts.caches.namespaces.get(namespace)?.terminating !== false)
            return;
          throw err;
        }
        log.info(`published ${name}`);
        return;
      case 'update': {
        const data: Record<string, string | null> = { [key]: content!.text };
        for (const dataKey of configMap!.dataKeys) if (dataKey !== key) data[dataKey] = null;
        await raw.request(
          'PATCH',
          path,
          {
            metadata: { resourceVersion: configMap!.resourceVersion, labels: this.labels },
            data,
            binaryData: null,
          },
          MERGE_PATCH_CONTENT,
        );
        log.info({ reason: decision.reason }, `updated ${name}`);
        return;
      }
    }
  }
}
