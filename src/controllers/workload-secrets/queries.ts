// Read-only questions about the workload caches, for the status, the metrics
// and root rotation. They read the shared caches; they change nothing.
import type { SigningAuthority } from '../../ca/authority.js';
import type { CaConfig } from '../../config/ca-spec.js';
import { serviceAccountOfSecret, workloadSecretName } from '../../model/names.js';
import { isManagedNamespace } from '../../model/targeting.js';
import type { SharedCaches } from '../caches.js';
import { signedByAuthority } from './observe.js';

export interface WorkloadCounts {
  managedServiceAccounts: number;
  issuedCertificates: number;
  failingCertificates: number;
}

export const splitKey = (key: string) => {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)] as const;
};

export class WorkloadQueries {
  /** Bumped by every event of the three caches; invalidates the counts memo. */
  private cacheVersion = 0;
  private countsMemo: { version: number; config: CaConfig; managed: number; issued: number } | undefined;

  constructor(
    private readonly caches: SharedCaches,
    private readonly caNamespace: string,
  ) {
    const bump = () => {
      this.cacheVersion++;
    };
    for (const informer of [caches.serviceAccounts, caches.namespaces, caches.workloadSecrets])
      informer.subscribe({ added: bump, updated: bump, deleted: bump });
  }

  /**
   * The status asks every few seconds. Walking 10,000 ServiceAccounts each time was most of what
   * an idle controller allocated (and so most of its GC and RSS swing): the walk is redone only
   * after a cache event or a configuration change.
   */
  counts(): WorkloadCounts {
    const { caches } = this;
    const config = caches.state.config.current;
    let memo = this.countsMemo;
    if (!memo || memo.version !== this.cacheVersion || memo.config !== config) {
      let managed = 0;
      let issued = 0;
      for (const [key] of caches.serviceAccounts.entries()) {
        const [namespace, name] = splitKey(key);
        const ns = caches.namespaces.get(namespace);
        if (!ns || !isManagedNamespace(namespace, ns.labels, config.namespaces, this.caNamespace)) continue;
        managed++;
        if (caches.workloadSecrets.get(`${namespace}/${workloadSecretName(name)}`)?.certificate) issued++;
      }
      memo = { version: this.cacheVersion, config, managed, issued };
      this.countsMemo = memo;
    }
    return {
      managedServiceAccounts: memo.managed,
      issuedCertificates: memo.issued,
      failingCertificates: caches.state.failingWorkloads.size,
    };
  }

  /** Of the managed workload Secrets, how many carry the authority's bundle and come from its signer. */
  rotationProgress(authority: SigningAuthority): {
    total: number;
    bundleCurrent: number;
    signedByActive: number;
  } {
    const { caches } = this;
    const config = caches.state.config.current;
    let total = 0;
    let bundleCurrent = 0;
    let signedByActive = 0;
    for (const [key, secret] of caches.workloadSecrets.entries()) {
      const [namespace, name] = splitKey(key);
      const sa = serviceAccountOfSecret(name);
      const ns = caches.namespaces.get(namespace);
      if (!sa || !ns || ns.terminating || !caches.serviceAccounts.get(`${namespace}/${sa}`)) continue;
      if (!isManagedNamespace(namespace, ns.labels, config.namespaces, this.caNamespace)) continue;
      total++;
      if (secret.rootBundleHash === authority.rootBundleHash) bundleCurrent++;
      if (signedByAuthority(secret, authority)) signedByActive++;
    }
    return { total, bundleCurrent, signedByActive };
  }

  /** notAfter (ms) of every certificate in the cache, for the expiry metric. */
  *certificateExpiries(): Iterable<number> {
    for (const [, secret] of this.caches.workloadSecrets.entries())
      if (secret.certificate) yield secret.certificate.notAfter;
  }
}
