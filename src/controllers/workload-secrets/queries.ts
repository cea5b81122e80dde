// Read-only questions about the workload caches, for the status, the metrics
// and root rotation. They read the shared caches; they change nothing.
import type { SigningAuthority } from '../../ca/authority.js';
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

/** Per namespace: its ServiceAccounts, and how many of them have a Secret holding a certificate. */
interface NamespaceTally {
  serviceAccounts: number;
  issued: number;
}

export class WorkloadQueries {
  /**
   * Kept up to date by the cache events, so the counts cost one look per namespace. The status asks
   * every 5 s: a walk over every ServiceAccount each time a cache had changed made a cold start of N
   * cost O(N) per status write, O(N²) in all.
   */
  private readonly tallies = new Map<string, NamespaceTally>();
  /** While subscribing, the caches replay what they hold; the walk in the constructor counts that. */
  private replaying = true;

  constructor(
    private readonly caches: SharedCaches,
    private readonly caNamespace: string,
  ) {
    const hasCertificate = (secret: { certificate?: unknown } | undefined) =>
      secret?.certificate !== undefined;
    const secretOf = (namespace: string, serviceAccount: string) =>
      caches.workloadSecrets.get(`${namespace}/${workloadSecretName(serviceAccount)}`);
    caches.serviceAccounts.subscribe({
      added: (key) => {
        if (this.replaying) return;
        const [namespace, name] = splitKey(key);
        this.tally(namespace, 1, hasCertificate(secretOf(namespace, name)) ? 1 : 0);
      },
      deleted: (key) => {
        if (this.replaying) return;
        const [namespace, name] = splitKey(key);
        this.tally(namespace, -1, hasCertificate(secretOf(namespace, name)) ? -1 : 0);
      },
    });
    /** A Secret's certificate counts while its ServiceAccount exists. */
    const secretChanged = (key: string, before: boolean, after: boolean) => {
      if (this.replaying || before === after) return;
      const [namespace, name] = splitKey(key);
      const sa = serviceAccountOfSecret(name);
      if (!sa || !caches.serviceAccounts.get(`${namespace}/${sa}`)) return;
      this.tally(namespace, 0, after ? 1 : -1);
    };
    caches.workloadSecrets.subscribe({
      added: (key, secret) => secretChanged(key, false, hasCertificate(secret)),
      updated: (key, before, after) => secretChanged(key, hasCertificate(before), hasCertificate(after)),
      deleted: (key, before) => secretChanged(key, hasCertificate(before), false),
    });
    this.replaying = false;
    for (const [key] of caches.serviceAccounts.entries()) {
      const [namespace, name] = splitKey(key);
      this.tally(namespace, 1, hasCertificate(secretOf(namespace, name)) ? 1 : 0);
    }
  }

  private tally(namespace: string, serviceAccounts: number, issued: number): void {
    const t = this.tallies.get(namespace) ?? { serviceAccounts: 0, issued: 0 };
    t.serviceAccounts += serviceAccounts;
    t.issued += issued;
    if (t.serviceAccounts === 0) this.tallies.delete(namespace);
    else this.tallies.set(namespace, t);
  }

  /** Managed ServiceAccounts (in managed namespaces), how many hold a certificate, how many fail. */
  counts(): WorkloadCounts {
    const { caches } = this;
    const config = caches.state.config.current;
    let managed = 0;
    let issued = 0;
    for (const [namespace, t] of this.tallies) {
      const ns = caches.namespaces.get(namespace);
      if (!ns || !isManagedNamespace(namespace, ns.labels, config.namespaces, this.caNamespace)) continue;
      managed += t.serviceAccounts;
      issued += t.issued;
    }
    return {
      managedServiceAccounts: managed,
      issuedCertificates: issued,
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
