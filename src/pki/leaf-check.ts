/**
 * A quick "this leaf is good" for the common case at start-up: a workload Secret alcazar wrote,
 * signed by the authority signing now, holding the leaf's own key. It answers only "yes, provably"
 * or "cannot tell" (undefined): every other case (a foreign signer, a bad key, an algorithm or an
 * encoding it does not know) goes through OpenSSL as before, so no verdict other than "valid" ever
 * comes from here.
 *
 * Why: at 100,000 ServiceAccounts, opening each leaf with OpenSSL (`new X509Certificate`, ~0.2–0.4
 * ms with OpenSSL 3), parsing its key (`createPrivateKey`, ~0.25 ms: the decoder lookup) and
 * checking the pair was most of the start-up (docs/BENCHMARKS.md). Here the certificate is read by
 * alcazar's DER parser, the signature checked with the signer's key parsed once, and the key
 * matched by deriving its public point from the private scalar (EC) or by comparing the modulus and
 * exponent and checking p·q = n (RSA) — stronger than OpenSSL's X509_check_private_key, which
 * compares the public key the private key file claims to have.
 */
import { createECDH, createPublicKey, type ECDH, type KeyObject, verify } from 'node:crypto';
import { findExtension, type ParsedCertificate, parseCertificate } from './certificate-parser.js';
import { type DerElement, decodeObjectIdentifier, readChildren, readElement, Tag } from './der.js';
import { decodeAuthorityKeyIdentifier, decodeSubjectKeyIdentifier } from './extensions.js';
import type { KeyAlgorithm } from './key-algorithms.js';
import { Oid } from './oids.js';
import { decodePem } from './pem.js';
import { readSpki, type SpkiView } from './spki.js';

/** The signer as the quick check needs it: parsed once per authority. */
export interface QuickSigner {
  subjectDer: Buffer;
  subjectKeyId?: Buffer;
  publicKey: KeyObject;
}

export function quickSigner(signerCertificateDer: Buffer): QuickSigner | undefined {
  try {
    const parsed = parseCertificate(signerCertificateDer);
    const ski = findExtension(parsed, Oid.subjectKeyIdentifier);
    return {
      subjectDer: parsed.subjectDer,
      ...(ski && { subjectKeyId: decodeSubjectKeyIdentifier(ski.value) }),
      publicKey: createPublicKey({ key: parsed.subjectPublicKeyInfoDer, format: 'der', type: 'spki' }),
    };
  } catch {
    return undefined;
  }
}

const HASHES: Record<string, string> = {
  [Oid.ecdsaWithSHA256]: 'sha256',
  [Oid.ecdsaWithSHA384]: 'sha384',
  [Oid.sha256WithRSAEncryption]: 'sha256',
};

/** True when `signer` provably issued `leaf` (names, key identifiers, signature); undefined otherwise. */
export function quickIssuedBy(leaf: ParsedCertificate, signer: QuickSigner): true | undefined {
  try {
    const hash = HASHES[leaf.signatureAlgorithmOid];
    if (!hash || !leaf.signatureAlgorithmDer.equals(leaf.innerSignatureAlgorithmDer)) return undefined;
    if (!leaf.issuerDer.equals(signer.subjectDer)) return undefined;
    const aki = findExtension(leaf, Oid.authorityKeyIdentifier);
    const keyId = aki && decodeAuthorityKeyIdentifier(aki.value);
    if (keyId && signer.subjectKeyId && !keyId.equals(signer.subjectKeyId)) return undefined;
    if (leaf.signatureBits[0] !== 0) return undefined;
    const ok = verify(hash, leaf.tbsDer, signer.publicKey, leaf.signatureBits.subarray(1));
    return ok ? true : undefined;
  } catch {
    return undefined;
  }
}

const CURVE_NAMES: Record<string, { node: string; algorithm?: KeyAlgorithm }> = {
  [Oid.prime256v1]: { node: 'prime256v1', algorithm: 'ECDSA_P256' },
  [Oid.secp384r1]: { node: 'secp384r1' },
};

/** Which of alcazar's key algorithms the certificate's key is; undefined for any other. */
export function quickKeyAlgorithm(spkiDer: Buffer): KeyAlgorithm | undefined {
  try {
    const spki = readSpki(spkiDer);
    if (spki.algorithmOid === Oid.ecPublicKey) return CURVE_NAMES[spki.curveOid ?? '']?.algorithm;
    if (spki.algorithmOid === Oid.rsaEncryption) {
      const [n] = readChildren(readElement(spki.keyBits.subarray(1), Tag.SEQUENCE));
      const modulus = unsigned(n!);
      return modulus.length === 256 && modulus[0]! >= 0x80 ? 'RSA_2048' : undefined;
    }
  } catch {
    // not an SPKI this knows
  }
  return undefined;
}

const unsigned = (integer: DerElement) =>
  integer.value.length > 1 && integer.value[0] === 0 ? integer.value.subarray(1) : integer.value;

const bigint = (integer: DerElement) => BigInt(`0x${integer.value.toString('hex') || '0'}`);

/**
 * True when key.pem's private key provably belongs to the certificate's public key; undefined when
 * it does not or this cannot tell (then OpenSSL decides, as before).
 */
export function quickKeyMatches(keyPem: Buffer, spkiDer: Buffer): true | undefined {
  try {
    const blocks = decodePem(keyPem);
    if (blocks.length !== 1) return undefined;
    const [{ type, der }] = blocks as [(typeof blocks)[0]];
    const spki = readSpki(spkiDer);
    if (type === 'EC PRIVATE KEY' && spki.algorithmOid === Oid.ecPublicKey)
      return ecMatches(readElement(der, Tag.SEQUENCE), spki, spki.curveOid);
    if (type === 'RSA PRIVATE KEY' && spki.algorithmOid === Oid.rsaEncryption)
      return rsaMatches(readElement(der, Tag.SEQUENCE), spki);
    if (type === 'PRIVATE KEY') {
      const [, algorithm, key] = readChildren(readElement(der, Tag.SEQUENCE));
      const [oid, parameters] = readChildren(algorithm!);
      const algorithmOid = decodeObjectIdentifier(oid!);
      if (key?.tag !== Tag.OCTET_STRING || algorithmOid !== spki.algorithmOid) return undefined;
      const inner = readElement(key.value, Tag.SEQUENCE);
      if (algorithmOid === Oid.ecPublicKey)
        return ecMatches(
          inner,
          spki,
          parameters?.tag === Tag.OID ? decodeObjectIdentifier(parameters) : undefined,
        );
      if (algorithmOid === Oid.rsaEncryption) return rsaMatches(inner, spki);
    }
  } catch {
    // malformed: OpenSSL will say what is wrong
  }
  return undefined;
}

/** One ECDH per curve, its key replaced per check: creating one cost 6% of a start-up at 100,000. */
const ecdhs = new Map<string, ECDH>();

function ecdhFor(curve: string): ECDH {
  let ecdh = ecdhs.get(curve);
  if (!ecdh) {
    ecdh = createECDH(curve);
    ecdhs.set(curve, ecdh);
  }
  return ecdh;
}

/** SEC1 ECPrivateKey: the public point derived from the scalar must be the certificate's. */
function ecMatches(key: DerElement, spki: SpkiView, keyCurveOid: string | undefined): true | undefined {
  const [version, scalar, ...optional] = readChildren(key);
  if (version?.tag !== Tag.INTEGER || scalar?.tag !== Tag.OCTET_STRING) return undefined;
  const params = optional.find((e) => e.tag === 0xa0);
  const curveOid = params ? decodeObjectIdentifier(readChildren(params)[0]!) : keyCurveOid;
  if (curveOid === undefined || curveOid !== spki.curveOid) return undefined;
  const curve = CURVE_NAMES[curveOid];
  if (!curve || spki.keyBits[0] !== 0) return undefined;
  const ecdh = ecdhFor(curve.node);
  ecdh.setPrivateKey(scalar.value);
  return ecdh.getPublicKey().equals(spki.keyBits.subarray(1)) ? true : undefined;
}

/** PKCS#1 RSAPrivateKey: the same modulus and exponent as the certificate's, and p·q = n. */
function rsaMatches(key: DerElement, spki: SpkiView): true | undefined {
  const [version, n, e, , p, q] = readChildren(key);
  if (version?.tag !== Tag.INTEGER || !n || !e || !p || !q || spki.keyBits[0] !== 0) return undefined;
  const [certN, certE] = readChildren(readElement(spki.keyBits.subarray(1), Tag.SEQUENCE));
  if (!certN || !certE || !unsigned(n).equals(unsigned(certN)) || !unsigned(e).equals(unsigned(certE)))
    return undefined;
  return bigint(p) * bigint(q) === bigint(n) ? true : undefined;
}
