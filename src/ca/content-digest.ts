// The content digest of a workload Secret: a MAC alcazar writes beside the data (annotation
// alcazar.dev/content-digest), keyed with a secret derived from the signing key. When it verifies
// under the authority signing now, the leaf and key.pem are exactly what alcazar wrote with that
// authority: the leaf it issued and the key it generated for it. Checking the leaf's signature and
// the key pair again (most of a start-up's CPU at 100,000 Secrets, docs/BENCHMARKS.md) then proves
// nothing new. Any edit of the leaf, of key.pem or of the digest, or another signer, makes it fail,
// and the Secret is checked in full as before.
//
// v2 (written since session 11) covers the leaf's DER and key.pem: what a bundle refresh leaves
// alone, so the digest survives a root rotation's bundle updates. The rest of cert-chain.pem and
// root-cert.pem are compared with the authority's own by hash on every observation anyway. v1
// (still verified, no longer written) covered the three data values as stored.
import {
  createHash,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  timingSafeEqual,
} from 'node:crypto';
import { decodeCertificatesPem } from '../pki/pem.js';
import type { SigningAuthority } from './authority.js';

/**
 * The three values as stored. `leafDer`, the first certificate of cert-chain.pem, when the caller
 * has already decoded it (it is read from cert-chain.pem otherwise).
 */
export interface DigestedValues {
  'cert-chain.pem': Uint8Array;
  'key.pem': Uint8Array;
  'root-cert.pem': Uint8Array;
  leafDer?: Uint8Array;
}

/** What a v2 digest covers. */
export interface LeafAndKey {
  leafDer: Uint8Array;
  'key.pem': Uint8Array;
}

type Version = 'v1' | 'v2';
const LABELS: Record<Version, string> = {
  v1: 'alcazar.dev/content-digest v1',
  v2: 'alcazar.dev/content-digest v2',
};

/**
 * One key per authority and version: HKDF over the signer's private key (PKCS#8 DER), salted with
 * the signer certificate's hash, so a new signer (root rotation, a new plugged-in intermediate) or a
 * new certificate for the same key invalidates every digest. Kept as KeyObjects: never logged.
 */
const keys = new WeakMap<SigningAuthority, Partial<Record<Version, KeyObject>>>();

function digestKey(authority: SigningAuthority, version: Version): KeyObject {
  let byVersion = keys.get(authority);
  if (!byVersion) {
    byVersion = {};
    keys.set(authority, byVersion);
  }
  let key = byVersion[version];
  if (!key) {
    const ikm = authority.signerKey.export({ format: 'der', type: 'pkcs8' });
    const salt = createHash('sha256').update(authority.signerCertificateDer).digest();
    key = createSecretKey(Buffer.from(hkdfSync('sha256', ikm, salt, LABELS[version], 32)));
    ikm.fill(0);
    byVersion[version] = key;
  }
  return key;
}

function mac(authority: SigningAuthority, version: Version, parts: readonly Uint8Array[]): string {
  const hmac = createHmac('sha256', digestKey(authority, version));
  const length = Buffer.alloc(4);
  for (const part of parts) {
    // Each value length-prefixed: no two different tuples feed the MAC the same bytes.
    length.writeUInt32BE(part.length);
    hmac.update(length).update(part);
  }
  return `${version}.${hmac.digest('base64url')}`;
}

/**
 * The annotation's value for a leaf `authority` issued and its key.pem (the leaf given as DER, or
 * read from the values as stored).
 */
export function contentDigest(authority: SigningAuthority, values: LeafAndKey | DigestedValues): string {
  const digest = v2Digest(authority, values);
  if (digest === undefined) throw new Error('cert-chain.pem holds no certificate');
  return digest;
}

/** A v1 digest, as alcazar wrote before v2: for the tests that pin that such Secrets still verify. */
export function contentDigestV1(authority: SigningAuthority, values: DigestedValues): string {
  return mac(authority, 'v1', [values['cert-chain.pem'], values['key.pem'], values['root-cert.pem']]);
}

/**
 * Whether `annotation` is a digest (either version) `authority` would write for exactly these values.
 * A `leafDer` given is trusted to be the first certificate of the cert-chain.pem given: the caller
 * decoded it from there.
 */
export function contentDigestMatches(
  authority: SigningAuthority,
  values: DigestedValues,
  annotation: string | undefined,
): boolean {
  let expected: string | undefined;
  if (annotation?.startsWith('v1.')) expected = contentDigestV1(authority, values);
  else if (annotation?.startsWith('v2.')) expected = v2Digest(authority, values);
  if (annotation === undefined || expected === undefined) return false;
  const given = Buffer.from(annotation);
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** The v2 digest; undefined when no leaf is given and cert-chain.pem is not a list of certificates. */
function v2Digest(authority: SigningAuthority, values: LeafAndKey | DigestedValues): string | undefined {
  const leafDer = values.leafDer ?? firstCertificate((values as DigestedValues)['cert-chain.pem']);
  return leafDer === undefined ? undefined : mac(authority, 'v2', [leafDer, values['key.pem']]);
}

/** The leaf as the controller reads cert-chain.pem: every block a certificate, the first the leaf. */
function firstCertificate(chainPem: Uint8Array | undefined): Buffer | undefined {
  if (chainPem === undefined) return undefined;
  try {
    return decodeCertificatesPem(chainPem)[0];
  } catch {
    return undefined;
  }
}
