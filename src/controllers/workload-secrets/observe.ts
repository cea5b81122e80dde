// Reduces observed objects to the views `plan` decides on. A workload
// Secret is parsed once per resourceVersion; the cache keeps the leaf
// certificate and hashes, never the private key.
import { X509Certificate } from 'node:crypto';
import type { V1Namespace, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { type SigningAuthority, sha256Hex } from '../../ca/authority.js';
import {
  decodeCertificatesPem,
  inspectCertificate,
  keyMatchesCertificate,
  parsePrivateKeyPem,
} from '../../pki/index.js';
import { encodeCertificatesPem } from '../../pki/pem.js';
import type { NamespaceView, SecretView, ServiceAccountView } from './plan.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'alcazar';
export const SERVICE_ACCOUNT_ANNOTATION = 'istio.io/service-account.name';
export const DNS_NAMES_ANNOTATION = 'alcazar.dev/dns-names';

const DNS_NAME =
  /^(?=.{1,253}$)(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

export interface ObservedSecret extends SecretView {
  /** The leaf, for checking which CA signed it. */
  leafDer?: Buffer;
  /** Memo: the signer fingerprint last checked, and whether it verified. */
  verified?: { signer: string; ok: boolean };
}

export function isOwnedSecret(secret: V1Secret): boolean {
  return secret.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
}

export function observeServiceAccount(sa: V1ServiceAccount): ServiceAccountView {
  const raw = sa.metadata?.annotations?.[DNS_NAMES_ANNOTATION];
  const view: ServiceAccountView = { uid: sa.metadata?.uid ?? '', dnsNames: [] };
  if (raw === undefined) return view;
  const names = [
    ...new Set(
      raw
        .split(',')
        .map((n) => n.trim().toLowerCase())
        .filter(Boolean),
    ),
  ];
  const invalid = names.filter((n) => !DNS_NAME.test(n));
  if (invalid.length > 0) {
    view.dnsNamesError = `annotation ${DNS_NAMES_ANNOTATION} has invalid DNS names: ${invalid.join(', ')}`;
  }
  view.dnsNames = names.filter((n) => DNS_NAME.test(n)).sort();
  return view;
}

export function observeNamespace(ns: V1Namespace): NamespaceView {
  return {
    labels: ns.metadata?.labels ?? {},
    terminating: ns.status?.phase === 'Terminating' || ns.metadata?.deletionTimestamp !== undefined,
  };
}

function decode(data: Record<string, string> | undefined, key: string): Buffer | undefined {
  const value = data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64');
}

export function observeSecret(secret: V1Secret): ObservedSecret {
  const data = secret.data ?? {};
  const view: ObservedSecret = {
    uid: secret.metadata?.uid ?? '',
    resourceVersion: secret.metadata?.resourceVersion ?? '',
    type: secret.type ?? '',
    owned: isOwnedSecret(secret),
    dataKeys: Object.keys(data).sort(),
  };
  const root = decode(data, 'root-cert.pem');
  if (root) view.rootBundleHash = sha256Hex(canonicalPem(root) ?? root);
  const chainPem = decode(data, 'cert-chain.pem');
  const keyPem = decode(data, 'key.pem');
  if (!chainPem || !keyPem) {
    view.dataProblem = 'cert-chain.pem or key.pem is missing';
    return view;
  }
  try {
    const [leaf, ...rest] = decodeCertificatesPem(chainPem);
    if (!leaf) throw new Error('cert-chain.pem holds no certificate');
    const info = inspectCertificate(leaf);
    view.leafDer = leaf;
    view.chainHash = sha256Hex(rest.length > 0 ? encodeCertificatesPem(rest) : '');
    view.certificate = {
      notBefore: info.notBefore.getTime(),
      notAfter: info.notAfter.getTime(),
      serial: info.serialNumberHex,
      uris: info.uris,
      dnsNames: [...info.dnsNames].sort(),
      keyAlgorithm: info.publicKeyAlgorithm,
    };
    if (!keyMatchesCertificate(parsePrivateKeyPem(keyPem), leaf)) {
      view.dataProblem = 'key.pem does not match the certificate in cert-chain.pem';
    }
  } catch (err) {
    view.dataProblem = `cannot parse the key or certificate: ${(err as Error).message}`;
  }
  return view;
}

/** The bundle re-encoded canonically, so formatting differences do not count as a different bundle. */
function canonicalPem(pem: Buffer): string | undefined {
  try {
    return encodeCertificatesPem(decodeCertificatesPem(pem));
  } catch {
    return undefined;
  }
}

/** Whether the Secret's leaf was signed by the authority's signer; memoised per signer. */
export function signedByAuthority(view: ObservedSecret, authority: SigningAuthority): boolean {
  if (!view.leafDer) return false;
  const signer = authority.signer.fingerprintSha256;
  if (view.verified?.signer === signer) return view.verified.ok;
  let ok = false;
  try {
    const leaf = new X509Certificate(view.leafDer);
    const issuer = new X509Certificate(authority.signerCertificateDer);
    ok = leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey);
  } catch {
    ok = false;
  }
  view.verified = { signer, ok };
  return ok;
}
