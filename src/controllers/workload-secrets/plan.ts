// What to do about one ServiceAccount's workload Secret, decided purely from
// what the caches hold. The reconcile that carries the decision out is thin.

import type { SigningAuthority } from '../../ca/authority.js';
import type { CaConfig } from '../../config/ca-spec.js';
import { DATA_KEYS, spiffeIdFor, WORKLOAD_SECRET_TYPE, workloadSecretName } from '../../model/names.js';
import { isManagedNamespace, type NamespaceTargeting } from '../../model/targeting.js';
import {
  authoriseDnsNames,
  type DnsNameAuthorisation,
  type DnsNamePolicy,
  describeRefusedDnsNames,
} from '../../policy/dns-names.js';
import { type RenewalPolicy, renewalDueAt } from './renewal.js';

// Moved to src/model/names.ts; re-exported here for existing imports.
export {
  DATA_KEYS,
  serviceAccountOfSecret,
  spiffeIdFor,
  WORKLOAD_SECRET_PREFIX,
  WORKLOAD_SECRET_TYPE,
  workloadSecretName,
} from '../../model/names.js';

/** The longest object name Kubernetes takes (a DNS subdomain). */
export const MAX_NAME_LENGTH = 253;

export interface ServiceAccountView {
  uid: string;
  /** Extra DNS SANs requested by annotation, syntax already checked; not yet authorised. */
  dnsNames: string[];
  /** Set when the annotation could not be used; the Secret is still issued without extra names. */
  dnsNamesError?: string;
}

export interface NamespaceView {
  labels: Record<string, string>;
  terminating: boolean;
}

/** What the Secret's certificate says, extracted once when the Secret is observed. */
export interface CertificateView {
  notBefore: number;
  notAfter: number;
  serial: string;
  uris: string[];
  dnsNames: string[];
  keyAlgorithm: string;
  /** Fingerprint of the CA certificate that signed it, if one we know verified it. */
  signedBy?: string;
}

export interface SecretView {
  uid: string;
  resourceVersion: string;
  type: string;
  /** Carries alcazar's managed-by label. */
  owned: boolean;
  /** Data keys present (names only). */
  dataKeys: string[];
  /** sha256 of root-cert.pem and of the chain after the leaf. */
  rootBundleHash?: string;
  chainHash?: string;
  certificate?: CertificateView;
  /** Why the data cannot be used as it is (unparsable PEM, key does not match, …). */
  dataProblem?: string;
}

export interface CaView {
  ready: boolean;
  /** Why the CA cannot sign, when it is not ready. */
  notReadyReason?: string;
  signerFingerprint?: string;
  /** When the signer expires: no leaf outlives it. */
  signerNotAfter?: number;
  rootBundleHash?: string;
  chainHash?: string;
}

export interface WorkloadPolicy extends RenewalPolicy {
  trustDomain: string;
  keyAlgorithm: string;
  /** The configured lifetime: a certificate that would outlive a fresh one is reissued. */
  ttlMs: number;
  /** Which requested DNS SANs a ServiceAccount may have. */
  dnsNames: DnsNamePolicy;
}

/** Slack before a certificate counts as outliving the ttl, so clock noise never reissues. */
export const TTL_SLACK_MS = 60_000;

export interface PlanInput {
  namespace: string;
  serviceAccount: string;
  sa?: ServiceAccountView;
  ns?: NamespaceView;
  secret?: SecretView;
  ca: CaView;
  policy: WorkloadPolicy;
  targeting: NamespaceTargeting;
  caNamespace: string;
  /** The certificate's serial is listed by an applied CertificateRevocation. */
  revoked?: boolean;
  now: number;
}

export type Reason =
  | 'Missing'
  | 'WrongType'
  | 'InvalidData'
  | 'WrongIdentity'
  | 'DnsNameNotAllowed'
  | 'NotSignedByCurrentCA'
  | 'StaleRootBundle'
  | 'StaleChain'
  | 'KeyAlgorithmChanged'
  | 'DnsNamesChanged'
  | 'TTLShortened'
  | 'Expired'
  | 'RenewalDue'
  | 'ServiceAccountDeleted'
  | 'NamespaceNotManaged'
  | 'ForeignSecret'
  | 'CANotReady'
  | 'NameTooLong'
  | 'Revoked';

export type Decision =
  | { action: 'none'; recheckAt?: number }
  | { action: 'create'; reason: Reason }
  /** Mint a new key and certificate into the existing Secret; `message` says why, when a reason alone does not. */
  | { action: 'reissue'; reason: Reason; message?: string }
  /** Keep key and certificate; rewrite root-cert.pem (and the chain) only. */
  | { action: 'refreshBundle'; reason: Reason }
  /** Delete and create again: for what an update cannot fix (the type is immutable). */
  | { action: 'recreate'; reason: Reason }
  | { action: 'delete'; reason: Reason }
  /** Someone else's Secret stands at our name: touch nothing, report it. */
  | { action: 'report'; reason: Reason; message: string };

/**
 * The slice of the configuration that decides about workload certificates. `reservedDnsNames`:
 * the names alcazar serves itself (see defaultReservedDnsNames), which no workload may have.
 */
export function workloadPolicy(config: CaConfig, reservedDnsNames: readonly string[]): WorkloadPolicy {
  return {
    trustDomain: config.trustDomain,
    keyAlgorithm: config.workload.keyAlgorithm,
    gracePeriodRatio: config.workload.gracePeriodRatio,
    minGracePeriodMs: config.workload.minGracePeriodMs,
    ttlMs: config.workload.ttlMs,
    dnsNames: {
      clusterDomain: config.clusterDomain,
      allow: config.workload.dnsNames.allow,
      reservedDnsNames,
    },
  };
}

/** The ServiceAccount's requested DNS names, split into those its certificate gets and those refused. */
export function authorisedDnsNames(
  namespace: string,
  sa: ServiceAccountView,
  ns: NamespaceView,
  policy: WorkloadPolicy,
): DnsNameAuthorisation {
  return authoriseDnsNames(sa.dnsNames, { namespace, namespaceLabels: ns.labels }, policy.dnsNames);
}

/** What plan needs to know of a loaded CA. */
export function caViewOf(authority: SigningAuthority): CaView {
  return {
    ready: true,
    signerFingerprint: authority.signer.fingerprintSha256,
    signerNotAfter: authority.signer.notAfter.getTime(),
    rootBundleHash: authority.rootBundleHash,
    chainHash: authority.chainHash,
  };
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().every((v, i) => v === [...b].sort()[i]);

export function plan(input: PlanInput): Decision {
  const { sa, ns, secret, ca, policy, now } = input;
  const secretName = workloadSecretName(input.serviceAccount);
  const wanted =
    sa !== undefined &&
    ns !== undefined &&
    isManagedNamespace(input.namespace, ns.labels, input.targeting, input.caNamespace);

  // A namespace being deleted takes everything in it along: nothing to decide or report there.
  if (ns?.terminating) return { action: 'none' };
  if (secret && !secret.owned) {
    if (!wanted) return { action: 'none' };
    return foreignSecretReport(secretName);
  }
  if (!wanted) {
    if (!secret) return { action: 'none' };
    return { action: 'delete', reason: sa === undefined ? 'ServiceAccountDeleted' : 'NamespaceNotManaged' };
  }
  if (secretName.length > MAX_NAME_LENGTH) {
    return {
      action: 'report',
      reason: 'NameTooLong',
      message: `Secret name ${secretName.slice(0, 40)}… would be ${secretName.length} characters; Kubernetes allows ${MAX_NAME_LENGTH}`,
    };
  }
  if (!ca.ready) {
    return { action: 'report', reason: 'CANotReady', message: ca.notReadyReason ?? 'the CA is not ready' };
  }
  if (!secret) return { action: 'create', reason: 'Missing' };
  if (secret.type !== WORKLOAD_SECRET_TYPE) return { action: 'recreate', reason: 'WrongType' };

  const cert = secret.certificate;
  if (secret.dataProblem || !cert || !DATA_KEYS.every((k) => secret.dataKeys.includes(k))) {
    return { action: 'reissue', reason: 'InvalidData' };
  }
  const spiffeId = spiffeIdFor(policy.trustDomain, input.namespace, input.serviceAccount);
  if (cert.uris.length !== 1 || cert.uris[0] !== spiffeId)
    return { action: 'reissue', reason: 'WrongIdentity' };
  const subject = { namespace: input.namespace, namespaceLabels: ns.labels };
  const carried = authoriseDnsNames(cert.dnsNames, subject, policy.dnsNames).refused;
  if (carried.length > 0) {
    return {
      action: 'reissue',
      reason: 'DnsNameNotAllowed',
      message: `the certificate carries DNS names it may not have: ${describeRefusedDnsNames(carried)}`,
    };
  }
  // A revoked certificate is replaced with a new key at once, whatever else is true of it.
  if (input.revoked) return { action: 'reissue', reason: 'Revoked' };
  if (cert.signedBy === undefined || cert.signedBy !== ca.signerFingerprint) {
    return { action: 'reissue', reason: 'NotSignedByCurrentCA' };
  }
  if (cert.notAfter <= now) {
    // An ended signer issues only certificates already expired: none until a new one. The bundle
    // needs no signature, and a root rotation waits for every Secret to carry the new one.
    if (ca.signerNotAfter !== undefined && ca.signerNotAfter <= now)
      return bundleRefresh(secret, ca) ?? { action: 'none' };
    return { action: 'reissue', reason: 'Expired' };
  }
  if (cert.keyAlgorithm !== policy.keyAlgorithm) return { action: 'reissue', reason: 'KeyAlgorithmChanged' };
  if (!sameSet(cert.dnsNames, authorisedDnsNames(input.namespace, sa, ns, policy).allowed))
    return { action: 'reissue', reason: 'DnsNamesChanged' };
  // The ttl was shortened since: the certificate outlives one issued now under today's policy.
  if (cert.notAfter > now + policy.ttlMs + TTL_SLACK_MS) return { action: 'reissue', reason: 'TTLShortened' };
  const due = renewalDueAt(cert, policy, ca.signerNotAfter);
  if (due <= now) return { action: 'reissue', reason: 'RenewalDue' };
  return bundleRefresh(secret, ca) ?? { action: 'none', recheckAt: due };
}

/** The trust bundle or chain is stale, or a foreign key sits beside ours: rewritten without a new certificate. */
function bundleRefresh(
  secret: { rootBundleHash?: string; chainHash?: string; dataKeys: readonly string[] },
  ca: { rootBundleHash?: string; chainHash?: string },
): Decision | undefined {
  if (secret.rootBundleHash !== ca.rootBundleHash)
    return { action: 'refreshBundle', reason: 'StaleRootBundle' };
  if (secret.chainHash !== ca.chainHash) return { action: 'refreshBundle', reason: 'StaleChain' };
  if (secret.dataKeys.length !== DATA_KEYS.length) return { action: 'refreshBundle', reason: 'InvalidData' };
  return undefined;
}

function foreignSecretReport(secretName: string): Decision {
  return {
    action: 'report',
    reason: 'ForeignSecret',
    message: `Secret ${secretName} exists but is not managed by alcazar; it is left untouched and no certificate is issued`,
  };
}

/**
 * A create answered 409: either our own Secret the cache has not shown yet (nothing to do: its
 * watch event brings the next look), or someone else's standing at our name.
 */
export function planCreateConflict(serviceAccount: string, existing: { owned: boolean }): Decision {
  return existing.owned ? { action: 'none' } : foreignSecretReport(workloadSecretName(serviceAccount));
}

/** A create answered 403: expected while the namespace is going away (or already gone from the cache). */
export function createForbiddenIsExpected(ns: NamespaceView | undefined): boolean {
  return ns?.terminating !== false;
}
