/**
 * SubjectPublicKeyInfo DER for a public key.
 *
 * Node's `export({ type: 'spki', format: 'der' })` costs 120–170 µs on the main thread (OpenSSL 3's
 * encoder lookup), more than signing a leaf; the JWK export is ~4 µs. So RSA and P-256/P-384 keys are
 * encoded here from their JWK form (the test pins byte equality with Node's output); other keys fall back
 * to Node.
 */
import type { JsonWebKey, KeyObject } from 'node:crypto';
import {
  bitString,
  decodeObjectIdentifier,
  nullValue,
  objectIdentifier,
  readChildren,
  readElement,
  sequence,
  Tag,
  unsignedInteger,
} from './der.js';
import { CURVES } from './key-algorithms.js';
import { Oid } from './oids.js';

export function subjectPublicKeyInfoDer(publicKey: KeyObject): Buffer {
  if (publicKey.asymmetricKeyType === 'rsa' || publicKey.asymmetricKeyType === 'ec') {
    const encoded = fromJwk(publicKey.export({ format: 'jwk' }));
    if (encoded !== undefined) return encoded;
  }
  return publicKey.export({ type: 'spki', format: 'der' });
}

function fromJwk(jwk: JsonWebKey): Buffer | undefined {
  const bytes = (base64url: unknown) => Buffer.from(String(base64url), 'base64url');
  if (jwk.kty === 'RSA' && jwk.n !== undefined && jwk.e !== undefined) {
    const rsaPublicKey = sequence(unsignedInteger(bytes(jwk.n)), unsignedInteger(bytes(jwk.e)));
    return sequence(sequence(objectIdentifier(Oid.rsaEncryption), nullValue()), bitString(rsaPublicKey));
  }
  const curve = jwk.kty === 'EC' ? CURVES.find((c) => c.jwkName === jwk.crv)?.oid : undefined;
  if (curve !== undefined && jwk.x !== undefined && jwk.y !== undefined) {
    // SEC1 uncompressed point; JWK coordinates are already padded to the field size.
    return ecSubjectPublicKeyInfoDer(curve, Buffer.concat([Buffer.from([0x04]), bytes(jwk.x), bytes(jwk.y)]));
  }
  return undefined;
}

/** An EC public key's SubjectPublicKeyInfo: the named curve's OID and the uncompressed point (0x04 ‖ x ‖ y). */
export function ecSubjectPublicKeyInfoDer(curveOid: string, point: Uint8Array): Buffer {
  return sequence(sequence(objectIdentifier(Oid.ecPublicKey), objectIdentifier(curveOid)), bitString(point));
}

/** Whether a SubjectPublicKeyInfo holds an RSA key (rsaEncryption; not RSA-PSS). */
export function isRsaSubjectPublicKeyInfo(der: Buffer): boolean {
  return readSpki(der).algorithmOid === Oid.rsaEncryption;
}

/** A SubjectPublicKeyInfo read without OpenSSL: its algorithm, its curve (EC), its key bits. */
export interface SpkiView {
  algorithmOid: string;
  curveOid?: string;
  /** The subjectPublicKey BIT STRING's contents (unused-bits octet first). */
  keyBits: Buffer;
}

export function readSpki(spkiDer: Buffer): SpkiView {
  const [algorithm, key] = readChildren(readElement(spkiDer, Tag.SEQUENCE));
  const [oid, parameters] = readChildren(algorithm!);
  if (key?.tag !== Tag.BIT_STRING) throw new Error('subjectPublicKey is not a BIT STRING');
  return {
    algorithmOid: decodeObjectIdentifier(oid!),
    ...(parameters?.tag === Tag.OID && { curveOid: decodeObjectIdentifier(parameters) }),
    keyBits: key.value,
  };
}
