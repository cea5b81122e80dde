/**
 * Every key algorithm alcazar knows, in one table: how to generate a key, how to recognise one, how it
 * appears in a SubjectPublicKeyInfo and which signature algorithm it signs certificates with. The
 * configuration's enum (zod and the CRD, kept in step by crd-sync.test.ts) is derived from the names of
 * the generatable ones, so adding an algorithm is one entry here plus its tests.
 */
import type { ECKeyPairKeyObjectOptions, KeyObject, RSAKeyPairKeyObjectOptions } from 'node:crypto';
import { nullValue, objectIdentifier, sequence } from './der.js';
import { Oid } from './oids.js';

export interface SignatureAlgorithm {
  name: 'sha256WithRSAEncryption' | 'ecdsa-with-SHA256' | 'ecdsa-with-SHA384';
  /** The digest passed to crypto.sign. */
  hash: 'sha256' | 'sha384';
  /** The DER AlgorithmIdentifier placed in certificates. */
  identifierDer: Buffer;
}

// RFC 4055 gives RSA signature algorithms an explicit NULL parameter; RFC 5758 gives ECDSA ones none.
export const SIGNATURE_ALGORITHMS = {
  rsa: {
    name: 'sha256WithRSAEncryption',
    hash: 'sha256',
    identifierDer: sequence(objectIdentifier(Oid.sha256WithRSAEncryption), nullValue()),
  },
  p256: {
    name: 'ecdsa-with-SHA256',
    hash: 'sha256',
    identifierDer: sequence(objectIdentifier(Oid.ecdsaWithSHA256)),
  },
  p384: {
    name: 'ecdsa-with-SHA384',
    hash: 'sha384',
    identifierDer: sequence(objectIdentifier(Oid.ecdsaWithSHA384)),
  },
} as const satisfies Record<string, SignatureAlgorithm>;

/** The elliptic curves alcazar signs and encodes with (P-384 only for plugged-in CAs). */
export interface Curve {
  /** Node's name (`asymmetricKeyDetails.namedCurve`). */
  nodeName: string;
  /** The JWK `crv`. */
  jwkName: string;
  oid: string;
  signature: SignatureAlgorithm;
}

export const CURVES: readonly Curve[] = [
  { nodeName: 'prime256v1', jwkName: 'P-256', oid: Oid.prime256v1, signature: SIGNATURE_ALGORITHMS.p256 },
  { nodeName: 'secp384r1', jwkName: 'P-384', oid: Oid.secp384r1, signature: SIGNATURE_ALGORITHMS.p384 },
];

type Generation =
  | { type: 'ec'; options: ECKeyPairKeyObjectOptions }
  | { type: 'rsa'; options: RSAKeyPairKeyObjectOptions };

export interface KeyAlgorithmEntry {
  generation: Generation;
  /** Whether a key (private or public) is of this algorithm. */
  matches(key: KeyObject): boolean;
  /** What its certificates are signed with. */
  signature: SignatureAlgorithm;
}

/** The algorithms alcazar generates keys for; the first is the default. */
export const KEY_ALGORITHMS = {
  ECDSA_P256: {
    generation: { type: 'ec', options: { namedCurve: 'prime256v1' } },
    matches: (key) => key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1',
    signature: SIGNATURE_ALGORITHMS.p256,
  },
  // Citadel's key type; ~270 ms per key on a 2-core machine.
  RSA_2048: {
    generation: { type: 'rsa', options: { modulusLength: 2048, publicExponent: 0x10001 } },
    matches: (key) => key.asymmetricKeyType === 'rsa' && key.asymmetricKeyDetails?.modulusLength === 2048,
    signature: SIGNATURE_ALGORITHMS.rsa,
  },
} as const satisfies Record<string, KeyAlgorithmEntry>;

export type KeyAlgorithm = keyof typeof KEY_ALGORITHMS;

/** The names, in table order, as a non-empty tuple (what z.enum and the CRD enum take). */
export const KEY_ALGORITHM_NAMES = Object.keys(KEY_ALGORITHMS) as [KeyAlgorithm, ...KeyAlgorithm[]];

export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = KEY_ALGORITHM_NAMES[0];
