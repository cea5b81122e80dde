/**
 * A workload's new key, in the two forms alcazar uses it in: the SubjectPublicKeyInfo its certificate
 * carries and the PEM its Secret holds. alcazar never signs with a workload's key, so no KeyObject is
 * made for it.
 *
 * EC keys come from node:crypto's ECDH (`generateKeys`, the same scalar-times-generator OpenSSL uses
 * for any EC key) and are encoded here: measured on this project's 2-core machine, an async
 * `generateKeyPair('ec')` plus its first export cost ~180–300 µs of CPU per key (the thread hop, the
 * KeyObject, OpenSSL 3's conversion on first export), ECDH plus this encoding ~25–30 µs. The tests pin
 * the bytes to what Node's own export writes for the same key. RSA keys still come from the async
 * generateKeyPair on the libuv threadpool: their cost is the prime search.
 */
import { createECDH, type ECDH } from 'node:crypto';
import { bitString, explicit, objectIdentifier, octetString, sequence, unsignedInteger } from './der.js';
import { CURVES, type Curve, KEY_ALGORITHMS, type KeyAlgorithm } from './key-algorithms.js';
import { generateKeyPair, privateKeyToPem } from './keys.js';
import { encodePem } from './pem.js';
import { ecSubjectPublicKeyInfoDer, subjectPublicKeyInfoDer } from './spki.js';

export interface NewKey {
  /** The public key as a certificate carries it. */
  subjectPublicKeyInfoDer: Buffer;
  /** PKCS#1 for RSA, SEC1 for EC: what Citadel wrote (see privateKeyToPem). Never log it. */
  privateKeyPem: string;
}

export async function generateNewKey(algorithm: KeyAlgorithm): Promise<NewKey> {
  const { generation } = KEY_ALGORITHMS[algorithm];
  if (generation.type === 'ec') return generateEcKey(curveNamed(generation.options.namedCurve));
  const pair = await generateKeyPair(algorithm);
  return {
    subjectPublicKeyInfoDer: subjectPublicKeyInfoDer(pair.publicKey),
    privateKeyPem: privateKeyToPem(pair.privateKey),
  };
}

function curveNamed(nodeName: string): Curve {
  const curve = CURVES.find((c) => c.nodeName === nodeName);
  if (!curve) throw new Error(`no curve ${nodeName}`);
  return curve;
}

/**
 * One ECDH object per curve, reused: `generateKeys()` replaces its key each time (half the cost of a
 * new one). It holds the last key it made until the next one, as the KeyObjects it replaces held
 * theirs until collected. Nothing here can wipe key material: the PEM is a string.
 */
const generators = new Map<string, ECDH>();

/** Exported for the tests, which compare every curve's encoding with Node's. */
export function generateEcKey(curve: Curve): NewKey {
  let ecdh = generators.get(curve.nodeName);
  if (ecdh === undefined) {
    ecdh = createECDH(curve.nodeName);
    generators.set(curve.nodeName, ecdh);
  }
  ecdh.generateKeys();
  const point = ecdh.getPublicKey(); // uncompressed: 0x04 ‖ x ‖ y
  return {
    subjectPublicKeyInfoDer: ecSubjectPublicKeyInfoDer(curve.oid, point),
    privateKeyPem: sec1Pem(curve, ecdh.getPrivateKey(), point),
  };
}

/**
 * RFC 5915 ECPrivateKey, as OpenSSL writes it: version 1, the scalar as an octet string of the
 * curve's size (ECDH hands it back without its leading zero bytes, ~1 key in 256), the named curve,
 * and the public point.
 */
function sec1Pem(curve: Curve, scalar: Buffer, point: Buffer): string {
  const size = (point.length - 1) / 2;
  const padded = Buffer.alloc(size);
  scalar.copy(padded, size - scalar.length);
  const der = sequence(
    unsignedInteger(1),
    octetString(padded),
    explicit(0, objectIdentifier(curve.oid)),
    explicit(1, bitString(point)),
  );
  return encodePem('EC PRIVATE KEY', der);
}
