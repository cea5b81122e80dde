// From cache events to keys (namespace/serviceaccount) on the work queue:
// which keys a namespace holds, which Secrets were seen deleted, and which
// keys are due (expired or renewal time passed) and so go first.
import type { WorkQueue } from '../../kube/workqueue.js';
import { serviceAccountOfSecret, workloadSecretName } from '../../model/names.js';
import type { SharedCaches } from '../caches.js';
import { splitKey } from './queries.js';
import { renewalDueAt } from './renewal.js';

export class WorkloadKeyIndex {
  /** Keys known per namespace, from ServiceAccounts and our Secrets. */
  private readonly keysByNamespace = new Map<string, Set<string>>();
  /** Keys whose Secret was seen deleted: a create for them heals, rather than serves a new ServiceAccount. */
  private readonly secretDeleted = new Set<string>();
  /** Keys whose Secret we are deleting ourselves: that deletion is no one else's to count. */
  private readonly deletingOurselves = new Set<string>();

  constructor(
    private readonly caches: SharedCaches,
    private readonly queue: WorkQueue,
    private readonly now: () => number,
  ) {
    caches.serviceAccounts.subscribe({
      added: (key) => this.track(key),
      updated: (key) => queue.add(key),
      deleted: (key) => this.untrack(key),
      // The periodic resync: every key is reconciled again, changed or not (from the cache: no API call).
      resync: (key) => this.enqueue(key),
    });
    caches.namespaces.subscribe({
      added: (ns) => this.enqueueNamespace(ns),
      updated: (ns, before, after) => {
        if (before.terminating !== after.terminating || !sameLabels(before.labels, after.labels)) {
          this.enqueueNamespace(ns);
        }
      },
      deleted: (ns) => this.enqueueNamespace(ns),
    });
    caches.workloadSecrets.subscribe({
      added: (key) => this.enqueueSecret(key, true),
      updated: (key) => this.enqueueSecret(key, false),
      deleted: (key) => {
        const [namespace, name] = splitKey(key);
        const sa = serviceAccountOfSecret(name);
        const saKey = sa && `${namespace}/${sa}`;
        if (saKey) {
          const ours = this.deletingOurselves.delete(saKey);
          // Healing counts only for a ServiceAccount that is still there.
          if (!ours && caches.serviceAccounts.get(saKey)) this.secretDeleted.add(saKey);
          this.forgetIfGone(saKey);
        }
        this.enqueueSecret(key, false);
      },
      // The ServiceAccounts' resync looks at every key that has one; this one only at Secrets left
      // without (so each key is reconciled once a period, not twice: at 100,000 that pass was most
      // of an idle controller's CPU).
      resync: (key) => {
        const saKey = serviceAccountKeyOf(key);
        if (saKey && !caches.serviceAccounts.get(saKey)) this.enqueue(saKey);
      },
    });
  }

  /** Every key known (after a CA or config change). */
  enqueueAll(): void {
    for (const keys of this.keysByNamespace.values()) for (const key of keys) this.enqueue(key);
  }

  /** Whether the key's Secret was seen deleted; forgets it. */
  takeSecretDeleted(key: string): boolean {
    return this.secretDeleted.delete(key);
  }

  /** Around our own delete of the key's Secret: its deletion event is then not counted as someone else's. */
  deleting(key: string, ours: boolean): void {
    if (ours) this.deletingOurselves.add(key);
    else this.deletingOurselves.delete(key);
  }

  private track(key: string): void {
    const [namespace] = splitKey(key);
    const keys = this.keysByNamespace.get(namespace) ?? new Set<string>();
    this.keysByNamespace.set(namespace, keys);
    keys.add(key);
    this.enqueue(key);
  }

  private untrack(key: string): void {
    this.secretDeleted.delete(key);
    this.forgetIfGone(key);
    this.queue.add(key);
  }

  /**
   * Forgets a key once neither its ServiceAccount nor its Secret is cached (whichever goes last):
   * ServiceAccount and namespace churn must not grow the index, nor what enqueueAll walks.
   */
  private forgetIfGone(key: string): void {
    const [namespace, name] = splitKey(key);
    if (this.caches.serviceAccounts.get(key)) return;
    if (this.caches.workloadSecrets.get(`${namespace}/${workloadSecretName(name)}`)) return;
    this.secretDeleted.delete(key);
    const keys = this.keysByNamespace.get(namespace);
    keys?.delete(key);
    if (keys?.size === 0) this.keysByNamespace.delete(namespace);
  }

  private enqueueNamespace(namespace: string): void {
    for (const key of this.keysByNamespace.get(namespace) ?? []) this.enqueue(key);
  }

  private enqueueSecret(secretKey: string, added: boolean): void {
    const key = serviceAccountKeyOf(secretKey);
    if (!key) return;
    if (added) this.track(key);
    else this.enqueue(key);
  }

  /** Expired or due certificates (e.g. found at start-up after downtime) go before everything else. */
  enqueue(key: string): void {
    const [namespace, sa] = splitKey(key);
    const certificate = this.caches.workloadSecrets.get(
      `${namespace}/${workloadSecretName(sa)}`,
    )?.certificate;
    const { workload } = this.caches.state.config.current;
    const authority = this.caches.state.authority.current;
    const signerNotAfter =
      authority.status === 'ready' ? authority.authority.signer.notAfter.getTime() : undefined;
    if (certificate && renewalDueAt(certificate, workload, signerNotAfter) <= this.now())
      this.queue.addUrgent(key);
    else this.queue.add(key);
  }
}

/** The workload key (namespace/serviceaccount) a workload Secret's key belongs to, if its name is istio.<sa>. */
function serviceAccountKeyOf(secretKey: string): string | undefined {
  const [namespace, name] = splitKey(secretKey);
  const sa = serviceAccountOfSecret(name);
  return sa ? `${namespace}/${sa}` : undefined;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
