// The inspect report's checks on one workload Secret: shape, identity, validity, chains, revocation,
// key and DNS names. Each adds what it finds to the report's problems; none reads the cluster.
import type { V1Secret } from '@kubernetes/client-node';
import type { CaConfig } from '../../config/ca-spec.js';
import { CRL_CONFIGMAP_NAME, CRL_KEY } from '../../controllers/crl/observe.js';
import { isOwnedSecret, observeServiceAccount } from '../../controllers/workload-secrets/observe.js';
import {
  authorisedDnsNames,
  WORKLOAD_SECRET_TYPE,
  workloadPolicy,
} from '../../controllers/workload-secrets/plan.js';
import { decodeCrlsPem, normalizeSerialHex, parseCrl } from '../../pki/crl.js';
import {
  type CertificateInfo,
  type ChainVerification,
  decodeCertificatesPem,
  inspectCertificate,
  keyMatchesCertificate,
  type Problem,
  parsePrivateKeyPem,
  validateWorkloadLeaf,
  verifyChain,
} from '../../pki/index.js';
import { authoriseDnsNames, defaultReservedDnsNames, type RefusedDnsName } from '../../policy/dns-names.js';
import type { InspectTarget } from './args.js';
import { describeTimeLeft, formatDurationShort } from './format.js';
import type { InspectObservation } from './gather.js';
import type { AuthorityLoad, ChainCheck } from './report.js';

export interface LeafData {
  leaf: Buffer;
  intermediates: Buffer[];
  info: CertificateInfo;
}

export function dataOf(secret: V1Secret, key: string): Buffer | undefined {
  const value = secret.data?.[key];
  return value ? Buffer.from(value, 'base64') : undefined;
}

export function checkSecretShape(secret: V1Secret, problems: Problem[], warnings: Problem[]): void {
  if (secret.type !== WORKLOAD_SECRET_TYPE) {
    problems.push({
      reason: 'WrongType',
      message: `the Secret has type "${secret.type ?? ''}", expected "${WORKLOAD_SECRET_TYPE}"`,
    });
  }
  for (const key of ['cert-chain.pem', 'key.pem', 'root-cert.pem']) {
    if (!secret.data?.[key]) problems.push({ reason: 'InvalidData', message: `the Secret has no ${key}` });
  }
  if (!isOwnedSecret(secret)) {
    warnings.push({
      reason: 'NotManagedByAlcazar',
      message: 'the Secret lacks the label app.kubernetes.io/managed-by=alcazar: alcazar leaves it alone',
    });
  }
}

export function readLeaf(secret: V1Secret, problems: Problem[]): LeafData | undefined {
  const pem = dataOf(secret, 'cert-chain.pem');
  if (!pem) return undefined;
  try {
    const [leaf, ...intermediates] = decodeCertificatesPem(pem);
    if (!leaf) throw new Error('it holds no certificate');
    return { leaf, intermediates, info: inspectCertificate(leaf) };
  } catch (err) {
    problems.push({
      reason: 'InvalidData',
      message: `cert-chain.pem cannot be read: ${(err as Error).message}`,
    });
    return undefined;
  }
}

export function checkIdentity(leafData: LeafData, expected: string | null, problems: Problem[]): void {
  // With no expected identity (a Secret whose name names no ServiceAccount) only the profile is checked.
  const found = validateWorkloadLeaf(leafData.leaf, expected ?? '');
  problems.push(...found.filter((p) => expected !== null || p.reason !== 'SpiffeIdMismatch'));
}

export function checkValidity(info: CertificateInfo, now: Date, problems: Problem[]) {
  const leftMs = info.notAfter.getTime() - now.getTime();
  // As the controller's plan has it: a certificate is expired from its notAfter on.
  const expired = leftMs <= 0;
  const notYetValid = info.notBefore.getTime() > now.getTime();
  if (expired) {
    problems.push({
      reason: 'Expired',
      message: `the certificate expired at ${info.notAfter.toISOString()} (${describeTimeLeft(leftMs)})`,
    });
  }
  if (notYetValid) {
    problems.push({
      reason: 'NotYetValid',
      message: `the certificate is not valid before ${info.notBefore.toISOString()} (in ${formatDurationShort(info.notBefore.getTime() - now.getTime())})`,
    });
  }
  return { leftMs, expired, notYetValid };
}

export function chainCheck(verification: ChainVerification, source: string): ChainCheck {
  return verification.ok
    ? { verified: true, source }
    : { verified: false, source, message: `${verification.reason}: ${verification.message}` };
}

export function checkChainAgainstSecretRoot(
  secret: V1Secret,
  leafData: LeafData | undefined,
  now: Date,
  problems: Problem[],
): ChainCheck {
  const source = 'root-cert.pem';
  const roots = dataOf(secret, 'root-cert.pem');
  if (!leafData || !roots) {
    return {
      verified: null,
      source,
      message: `no ${leafData ? 'root-cert.pem' : 'readable cert-chain.pem'}`,
    };
  }
  const check = chainCheck(
    verifyChain({
      leaf: leafData.leaf,
      intermediates: leafData.intermediates,
      roots: roots.toString('utf8'),
      at: now,
    }),
    source,
  );
  if (!check.verified) {
    problems.push({
      reason: 'ChainUntrustedBySecretRoot',
      message: `cert-chain.pem does not verify against the Secret's root-cert.pem: ${check.message}`,
    });
  }
  return check;
}

export function checkChainAgainstCa(
  ca: AuthorityLoad,
  leafData: LeafData | undefined,
  now: Date,
  problems: Problem[],
): ChainCheck {
  if (!ca.ok) return { verified: null, source: ca.source, message: ca.message };
  const source = ca.authority.source;
  if (!leafData) return { verified: null, source, message: 'no readable cert-chain.pem' };
  const check = chainCheck(
    verifyChain({
      leaf: leafData.leaf,
      intermediates: leafData.intermediates,
      roots: ca.authority.rootBundlePem,
      at: now,
    }),
    source,
  );
  if (!check.verified) {
    problems.push({
      reason: 'ChainUntrustedByCa',
      message: `cert-chain.pem does not verify against the current CA bundle (${source}): ${check.message}`,
    });
  }
  return check;
}

/** A certificate listed in the published CRL is a problem: verifiers that honour the CRL refuse it. */
export function checkRevocation(
  observation: InspectObservation,
  info: CertificateInfo,
  problems: Problem[],
  warnings: Problem[],
): void {
  const read = observation.crl;
  const source = `${observation.caNamespace}/${CRL_CONFIGMAP_NAME}`;
  if (!read) return;
  if (!read.ok) {
    warnings.push({
      reason: 'CrlUnavailable',
      message: `cannot read ConfigMap ${source}: ${read.error}; revocation was not checked`,
    });
    return;
  }
  const text = read.value?.data?.[CRL_KEY];
  if (!text) return;
  const serial = normalizeSerialHex(info.serialNumberHex);
  try {
    for (const der of decodeCrlsPem(text)) {
      const entry = parseCrl(der).entries.find((e) => e.serial === serial);
      if (entry) {
        problems.push({
          reason: 'Revoked',
          message: `serial ${info.serialNumberHex} is revoked (${entry.reason}, since ${entry.revokedAt.toISOString()}) in ConfigMap ${source}; alcazar reissues the Secret`,
        });
        return;
      }
    }
  } catch (err) {
    warnings.push({
      reason: 'CrlUnreadable',
      message: `ConfigMap ${source} holds no readable CRL: ${(err as Error).message}`,
    });
  }
}

export function checkKey(
  secret: V1Secret,
  leafData: LeafData | undefined,
  problems: Problem[],
): boolean | null {
  const pem = dataOf(secret, 'key.pem');
  if (!pem || !leafData) return null;
  let matches: boolean;
  try {
    matches = keyMatchesCertificate(parsePrivateKeyPem(pem), leafData.leaf);
  } catch (err) {
    // parsePrivateKeyPem's messages never quote key material.
    problems.push({ reason: 'InvalidData', message: `key.pem cannot be read: ${(err as Error).message}` });
    return null;
  }
  if (!matches) {
    problems.push({
      reason: 'KeyMismatch',
      message: 'key.pem does not match the certificate in cert-chain.pem',
    });
  }
  return matches;
}

/**
 * The DNS name policy applied as the controller applies it: names the certificate carries but may
 * not have are a problem; names the ServiceAccount asks for and is refused are a warning.
 */
export function checkDnsNames(
  target: InspectTarget,
  observation: InspectObservation,
  config: CaConfig,
  info: CertificateInfo | undefined,
  problems: Problem[],
  warnings: Problem[],
): RefusedDnsName[] {
  const labels = observation.namespace.ok ? (observation.namespace.value?.metadata?.labels ?? {}) : undefined;
  if (labels === undefined) return [];
  const policy = workloadPolicy(
    config,
    observation.reservedDnsNames ?? defaultReservedDnsNames(observation.caNamespace),
  );
  const ns = { labels, terminating: false };
  for (const refused of info
    ? authoriseDnsNames(
        info.dnsNames,
        { namespace: target.namespace, namespaceLabels: labels },
        policy.dnsNames,
      ).refused
    : []) {
    problems.push({
      reason: 'DnsNameNotAllowed',
      message: `the certificate carries ${refused.name}, which ${refused.why}`,
    });
  }
  const saRead = observation.serviceAccount;
  if (!saRead?.ok || !saRead.value) return [];
  const { refused } = authorisedDnsNames(target.namespace, observeServiceAccount(saRead.value), ns, policy);
  for (const r of refused) {
    warnings.push({
      reason: 'DNSNameRefused',
      message: `alcazar.dev/dns-names asks for ${r.name}, which ${r.why}: left out`,
    });
  }
  return refused;
}
