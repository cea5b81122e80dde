// The content digest of a workload Secret: a MAC alcazar writes beside the data (annotation
// alcazar.dev/content-digest), keyed with a secret derived from the signing key. When it verifies
// under the authority signing now, the three data values are exactly what alcazar wrote with that
// authority: the leaf it issued and the key it generated for it. Checking the leaf's signature and
// the key pair again (most of a start-up's CPU at 100,000 Secrets, docs/BENCHMARKS.md) then proves
// nothing new. Any edit of a value or of the digest, or another signer, makes it fail, and the
// Secret is checked in full as before.
import {
  createHash,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  timingSafeEqual,
} from 'node:crypto';
import type { SigningAuthority } from './authority.js';

/** The three values in the order the digest covers them (src/model/names.ts DATA_KEYS). */
export interface DigestedValues {
  'cert-chain.pem': Uint8Array;
  'key.pem': Uint8Array;
  'root-cert.pem': Uint8Array;
}

const ORDER = ['cert-chain.pem', 'key.pem', 'root-cert.pem'] as const;
const VERSION = 'v1';
const LABEL = 'alcazar.dev/content-digest v1';

/**
 * One key per authority: HKDF over the signer's private key (PKCS#8 DER), salted with the signer
 * certificate's hash, so a new signer (root rotation, a new plugged-in intermediate) or a new
 * certificate for the same key invalidates every digest. Kept as a KeyObject: never logged.
 */
const keys = new WeakMap<SigningAuthority, KeyObject>();

function digestKey(authority: SigningAuthority): KeyObject {
  let key = keys.get(authority);
  if (!key) {
    const ikm = authority.signerKey.export({ format: 'der', type: 'pkcs8' });
    const salt = createHash('sha256').update(authority.signerCertificateDer).digest();
    key = createSecretKey(Buffer.from(hkdfSync('sha256', ikm, salt, LABEL, 32)));
    ikm.fill(0);
    keys.set(authority, key);
  }
  return key;
}

function mac(authority: SigningAuthority, values: DigestedValues): Buffer {
  const hmac = createHmac('sha256', digestKey(authority));
  const length = Buffer.alloc(4);
  for (const name of ORDER) {
    // Each value length-prefixed: no two different triples feed the MAC the same bytes.
    length.writeUInt32BE(values[name].length);
    hmac.update(length).update(values[name]);
  }
  return hmac.digest();
}

/** The annotation's value for these data values, written with a leaf `authority` issued. */
export function contentDigest(authority: SigningAuthority, values: DigestedValues): string {
  return `${VERSION}.${mac(authority, values).toString('base64url')}`;
}

/** Whether `annotation` is the digest `authority` would write for exactly these values. */
export function contentDigestMatches(
  authority: SigningAuthority,
  values: DigestedValues,
  annotation: string | undefined,
): boolean {
  if (annotation === undefined) return false;
  const given = Buffer.from(annotation);
  const expected = Buffer.from(contentDigest(authority, values));
  return given.length === expected.length && timingSafeEqual(given, expected);
}
