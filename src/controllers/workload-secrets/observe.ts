// Reduces observed objects to the views `plan` decides on. A workload
// Secret is parsed once per resourceVersion; the cache keeps the leaf
// certificate and hashes, never the private key.
import { createHash, X509Certificate } from 'node:crypto';
import type { V1Namespace, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { type SigningAuthority, sha256Hex } from '../../ca/authority.js';
import { contentDigestMatches } from '../../ca/content-digest.js';
import {
  CONTENT_DIGEST_ANNOTATION,
  DNS_NAMES_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
} from '../../model/names.js';
import { type ParsedCertificate, parseCertificate } from '../../pki/certificate-parser.js';
import { decodeSubjectAltName } from '../../pki/extensions.js';
import {
  decodeCertificatesPem,
  inspectCertificate,
  type KeyAlgorithm,
  keyMatchesCertificate,
  parsePrivateKeyPem,
} from '../../pki/index.js';
import { openWithNode } from '../../pki/inspect.js';
import {
  type QuickSigner,
  quickIssuedBy,
  quickKeyAlgorithm,
  quickKeyMatches,
  quickSigner,
} from '../../pki/leaf-check.js';
import { Oid } from '../../pki/oids.js';
import { encodeCertificatesPem } from '../../pki/pem.js';
import { isDnsName } from '../../policy/dns-names.js';
import type { NamespaceView, SecretView, ServiceAccountView } from './plan.js';

// Moved to src/model/names.ts; re-exported here for existing imports.
export {
  DNS_NAMES_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  SERVICE_ACCOUNT_ANNOTATION,
} from '../../model/names.js';

export interface ObservedSecret extends SecretView {
  /**
   * The leaf's DER as a latin1 string (one byte per character), for checking which CA signed it and
   * for refreshing the bundle around it: a string costs its bytes, a Buffer ~300 bytes more
   * (the Buffer, its ArrayBuffer and a native backing store). Read it with leafDerOf.
   */
  leaf?: string;
  /** Known when the view was made (alcazar wrote the leaf): the signer that issued it. */
  readonly verified?: { signer: string; ok: boolean };
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
  const invalid = names.filter((n) => !isDnsName(n));
  if (invalid.length > 0) {
    view.dnsNamesError = `annotation ${DNS_NAMES_ANNOTATION} has invalid DNS names: ${invalid.join(', ')}`;
  }
  view.dnsNames = names.filter((n) => isDnsName(n)).sort();
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

/** The DER bytes as the string the cache keeps (a string of its own: never a slice of a larger one). */
function leafString(der: Buffer): string {
  return der.toString('latin1');
}

/** The cached leaf as DER bytes, if the view has one. */
export function leafDerOf(view: Pick<ObservedSecret, 'leaf'>): Buffer | undefined {
  return view.leaf === undefined ? undefined : Buffer.from(view.leaf, 'latin1');
}

/** What observeSecret finds in the data of a Secret alcazar wrote, known without parsing it back. */
export type WrittenContent = Pick<
  ObservedSecret,
  'rootBundleHash' | 'chainHash' | 'certificate' | 'leaf' | 'verified'
>;

const WORKLOAD_DATA_KEYS = ['cert-chain.pem', 'key.pem', 'root-cert.pem'] as const;

/** The memo's key: one hash over the three data values (base64, as stored); no key material is kept. */
function memoKey(data: Record<string, string>): string {
  const hash = createHash('sha256');
  for (const key of WORKLOAD_DATA_KEYS) hash.update(data[key] ?? '').update('\0');
  return hash.digest('base64');
}

/**
 * The content of Secrets this process just wrote, until its informer sees them. Every write comes
 * back through the watch; parsing it back (two X.509 parses, a key parse, a signature check) cost
 * about 1 ms of CPU per Secret, the largest share of a cold start after the API calls themselves.
 * Only exact data matches are recognised: anything else is parsed as usual.
 */
export class WrittenContents {
  private readonly byDigest = new Map<string, WrittenContent>();

  constructor(private readonly capacity = 20_000) {}

  remember(data: Record<string, string>, content: WrittenContent): void {
    if (this.byDigest.size >= this.capacity) {
      const oldest = this.byDigest.keys().next().value;
      if (oldest !== undefined) this.byDigest.delete(oldest);
    }
    this.byDigest.set(memoKey(data), content);
  }

  /** The remembered content of exactly this data, once. */
  take(data: Record<string, string>): WrittenContent | undefined {
    if (this.byDigest.size === 0) return undefined;
    const digest = memoKey(data);
    const content = this.byDigest.get(digest);
    if (content) this.byDigest.delete(digest);
    return content;
  }

  get size(): number {
    return this.byDigest.size;
  }
}

/**
 * What observeSecret would find in a workload Secret holding this freshly issued leaf, the
 * authority's chain and bundle, and the leaf's own key. Uses only alcazar's DER parser: the leaf
 * was built here a moment ago and signed by `authority`.
 */
export function writtenContent(
  leafDer: Buffer,
  keyAlgorithm: KeyAlgorithm,
  authority: SigningAuthority,
): WrittenContent {
  return {
    rootBundleHash: authority.rootBundleHash,
    chainHash: authority.chainHash,
    leaf: leafString(leafDer),
    certificate: certificateView(parseCertificate(leafDer), keyAlgorithm),
    verified: { signer: authority.signer.fingerprintSha256, ok: true },
  };
}

/** The certificate part of a view, from alcazar's own parse of the leaf. */
function certificateView(
  parsed: ParsedCertificate,
  keyAlgorithm: KeyAlgorithm,
): NonNullable<ObservedSecret['certificate']> {
  const san = parsed.extensions.find((e) => e.oid === Oid.subjectAltName);
  const names = san ? decodeSubjectAltName(san.value) : { uris: [], dnsNames: [] };
  return {
    notBefore: parsed.notBefore.getTime(),
    notAfter: parsed.notAfter.getTime(),
    serial: parsed.serialNumber.toString('hex'),
    uris: names.uris,
    dnsNames: names.dnsNames.length === 0 ? shared([]) : [...names.dnsNames].sort(),
    keyAlgorithm,
  };
}

const quickSigners = new WeakMap<SigningAuthority, QuickSigner | null>();

/**
 * The view of a leaf that the authority signing now issued, with its own key, found without
 * OpenSSL parsing the certificate or the key (src/pki/leaf-check.ts); undefined whenever that
 * cannot be proven, and then the full parse decides. `digested`: the Secret's content digest
 * verified under that authority (src/ca/content-digest.ts), which already proves both the
 * signature and the key pair: only the leaf's fields are read.
 */
function quickCertificateView(
  leafDer: Buffer,
  keyPem: Buffer,
  authority: SigningAuthority,
  digested: boolean,
): NonNullable<ObservedSecret['certificate']> | undefined {
  let signer = quickSigners.get(authority);
  if (signer === undefined) {
    signer = quickSigner(authority.signerCertificateDer) ?? null;
    quickSigners.set(authority, signer);
  }
  if (signer === null) return undefined;
  try {
    const parsed = parseCertificate(leafDer);
    const keyAlgorithm = quickKeyAlgorithm(parsed.subjectPublicKeyInfoDer);
    if (!keyAlgorithm) return undefined;
    if (!digested) {
      leafChecks.signatureAndKey++;
      if (!quickIssuedBy(parsed, signer)) return undefined;
      if (!quickKeyMatches(keyPem, parsed.subjectPublicKeyInfoDer)) return undefined;
    }
    return certificateView(parsed, keyAlgorithm);
  } catch {
    return undefined;
  }
}

/** How often the quick check verified a signature and a key pair (tests and the bench read it). */
export const leafChecks = { signatureAndKey: 0 };

/** Whether the Secret carries the digest `authority` writes for exactly its leaf and key.pem. */
function digestMatches(
  secret: V1Secret,
  authority: SigningAuthority,
  chainPem: Buffer,
  keyPem: Buffer,
  leafDer: Buffer,
): boolean {
  const annotation = secret.metadata?.annotations?.[CONTENT_DIGEST_ANNOTATION];
  const root = secret.data?.['root-cert.pem'];
  if (annotation === undefined || root === undefined) return false;
  try {
    return contentDigestMatches(
      authority,
      {
        'cert-chain.pem': chainPem,
        'key.pem': keyPem,
        'root-cert.pem': Buffer.from(root, 'base64'),
        leafDer,
      },
      annotation,
    );
  } catch {
    // The digest cannot be checked: the full check decides, never a data problem of the Secret.
    return false;
  }
}

/**
 * Parses a workload Secret into the view `plan` decides on. `signer` (the authority signing now,
 * when there is one) has the leaf's signature checked here, on the certificate already parsed,
 * rather than by a second parse at the first reconcile (signedByAuthority).
 */
export function observeSecret(
  secret: V1Secret,
  written?: WrittenContents,
  signer?: () => SigningAuthority | undefined,
): ObservedSecret {
  const data = secret.data ?? {};
  const view: ObservedSecret = {
    uid: secret.metadata?.uid ?? '',
    resourceVersion: secret.metadata?.resourceVersion ?? '',
    type: secret.type ?? '',
    owned: isOwnedSecret(secret),
    dataKeys: shared(Object.keys(data).sort()),
  };
  const known = written?.take(data);
  if (known) return Object.assign(view, known);
  const rootHash = rootBundleHashOf(data['root-cert.pem']);
  if (rootHash) view.rootBundleHash = rootHash;
  const chainPem = decode(data, 'cert-chain.pem');
  const keyPem = decode(data, 'key.pem');
  if (!chainPem || !keyPem) {
    view.dataProblem = 'cert-chain.pem or key.pem is missing';
    return view;
  }
  try {
    const [leaf, ...rest] = decodeCertificatesPem(chainPem);
    if (!leaf) throw new Error('cert-chain.pem holds no certificate');
    const authority = signer?.();
    const quick =
      authority &&
      quickCertificateView(leaf, keyPem, authority, digestMatches(secret, authority, chainPem, keyPem, leaf));
    if (quick) {
      view.leaf = leafString(leaf);
      view.chainHash = shared(sha256Hex(rest.length > 0 ? encodeCertificatesPem(rest) : ''));
      view.certificate = quick;
      return Object.assign(view, { verified: { signer: authority.signer.fingerprintSha256, ok: true } });
    }
    // One OpenSSL parse serves the inspection, the key check and the signature check (each costs
    // ~0.2 ms: at start-up they were most of the CPU per Secret).
    const x509 = openWithNode(leaf);
    const info = inspectCertificate(x509);
    view.leaf = leafString(leaf);
    view.chainHash = shared(sha256Hex(rest.length > 0 ? encodeCertificatesPem(rest) : ''));
    view.certificate = {
      notBefore: info.notBefore.getTime(),
      notAfter: info.notAfter.getTime(),
      serial: info.serialNumberHex,
      uris: info.uris,
      dnsNames: info.dnsNames.length === 0 ? shared([]) : [...info.dnsNames].sort(),
      keyAlgorithm: info.publicKeyAlgorithm,
    };
    if (!keyMatchesCertificate(parsePrivateKeyPem(keyPem), x509)) {
      view.dataProblem = 'key.pem does not match the certificate in cert-chain.pem';
    }
    if (authority)
      Object.assign(view, {
        verified: { signer: authority.signer.fingerprintSha256, ok: issuedBy(x509, authority) },
      });
  } catch (err) {
    view.dataProblem = `cannot parse the key or certificate: ${(err as Error).message}`;
  }
  return view;
}

/**
 * One instance of each value that most cached Secrets repeat (the bundle and chain hashes, the data
 * key names, no DNS names), instead of a copy per Secret: ~250 bytes per ServiceAccount. Arrays
 * handed out are frozen: the views are read, never changed.
 */
const sharedValues = new Map<string, string | readonly string[]>();
const SHARED_LIMIT = 1_024;

function shared<T extends string | string[]>(value: T): T {
  const key = typeof value === 'string' ? `s${value}` : `a${value.join('\0')}`;
  const known = sharedValues.get(key);
  if (known !== undefined) return known as T;
  if (sharedValues.size >= SHARED_LIMIT) sharedValues.clear(); // many distinct values: nothing to share
  const kept = typeof value === 'string' ? value : (Object.freeze(value) as T);
  sharedValues.set(key, kept);
  return kept;
}

/** The hashes of the last few root-cert.pem values seen (nearly every Secret holds the same one). */
const rootHashes = new Map<string, string>();

function rootBundleHashOf(base64: string | undefined): string | undefined {
  if (base64 === undefined) return undefined;
  const known = rootHashes.get(base64);
  if (known !== undefined) return known;
  const root = Buffer.from(base64, 'base64');
  const hash = shared(sha256Hex(canonicalPem(root) ?? root));
  if (rootHashes.size >= 8) rootHashes.delete(rootHashes.keys().next().value!);
  rootHashes.set(base64, hash);
  return hash;
}

/** The bundle re-encoded canonically, so formatting differences do not count as a different bundle. */
function canonicalPem(pem: Buffer): string | undefined {
  try {
    return encodeCertificatesPem(decodeCertificatesPem(pem));
  } catch {
    return undefined;
  }
}

const signers = new WeakMap<SigningAuthority, X509Certificate>();

/** The authority's signing certificate, parsed once (a relist checks every Secret against it). */
function parsedSigner(authority: SigningAuthority): X509Certificate {
  let signer = signers.get(authority);
  if (!signer) {
    signer = new X509Certificate(authority.signerCertificateDer);
    signers.set(authority, signer);
  }
  return signer;
}

/** Signature checks done after a view was made, kept beside the cache rather than written into it. */
const verifications = new WeakMap<ObservedSecret, { signer: string; ok: boolean }>();

/** Whether the Secret's leaf was signed by the authority's signer; memoised per signer. */
export function signedByAuthority(view: ObservedSecret, authority: SigningAuthority): boolean {
  if (view.leaf === undefined) return false;
  // Every reconcile asks; the answers known already come first (no copy of the leaf's bytes).
  const signer = authority.signer.fingerprintSha256;
  if (view.verified?.signer === signer) return view.verified.ok;
  const memo = verifications.get(view);
  if (memo?.signer === signer) return memo.ok;
  const leafDer = leafDerOf(view)!;
  let ok = false;
  try {
    ok = issuedBy(new X509Certificate(leafDer), authority);
  } catch {
    ok = false;
  }
  verifications.set(view, { signer, ok });
  return ok;
}

/** Whether `leaf` names the authority's signer as its issuer and carries its signature. */
function issuedBy(leaf: X509Certificate, authority: SigningAuthority): boolean {
  try {
    const issuer = parsedSigner(authority);
    return leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey);
  } catch {
    return false;
  }
}
