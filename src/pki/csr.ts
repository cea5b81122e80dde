/**
 * PKCS#10 certification requests (RFC 2986), as sent over Istio's CSR API: untrusted network input.
 *
 * Parsing is @peculiar/asn1-csr's (a schema-driven DER decoder); what alcazar reads from the result is
 * checked here: the self-signature over the exact bytes received, the key type, and every name the
 * request asks for. Nothing in a request ever reaches a certificate except its public key: the issuer
 * writes the identity and every extension itself.
 */
import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Extensions, id_ce_subjectAltName, SubjectAlternativeName } from '@peculiar/asn1-x509';
import { decodePem, type PemError } from './pem.js';

/** Why a CSR is unusable; `reason` is a short code for metrics, `message` says what is wrong. */
export class CsrError extends Error {
  override name = 'CsrError';
  constructor(
    readonly reason: 'Malformed' | 'BadSignature' | 'UnsupportedKey' | 'UnsupportedSignature',
    message: string,
  ) {
    super(message);
  }
}

/** The names a request asks for, by kind. Anything but `uris` is refused by alcazar's policy. */
export interface RequestedNames {
  uris: string[];
  dnsNames: string[];
  ipAddresses: string[];
  emails: string[];
  /** otherName, directoryName, registeredID, x400Address, ediPartyName: kinds alcazar never issues. */
  others: string[];
  /** Subject common names (a "CN-only" identity). */
  commonNames: string[];
}

export interface ParsedCsr {
  publicKey: KeyObject;
  /** e.g. "ECDSA P-256", "RSA 2048", for logs and messages. */
  keyDescription: string;
  names: RequestedNames;
}

/** Bounds that keep a hostile request cheap to reject: a CSR with one SPIFFE ID is under 2 KiB. */
export const MAX_CSR_PEM_BYTES = 16 * 1024;
const MAX_SUBJECT_ALT_NAMES = 16;

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const COMMON_NAME = '2.5.4.3';

/** Signature algorithms a CSR may be signed with, and the hash each implies. */
const SIGNATURE_HASH: Readonly<Record<string, string>> = {
  '1.2.840.10045.4.3.2': 'sha256', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};

const EC_CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384' };
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 4096;

/** Parses one PEM "CERTIFICATE REQUEST" and checks its signature and key. Throws CsrError. */
export function parseCsrPem(pem: string): ParsedCsr {
  if (pem.length > MAX_CSR_PEM_BYTES) {
    throw new CsrError(
      'Malformed',
      `the CSR is ${pem.length} bytes; at most ${MAX_CSR_PEM_BYTES} are accepted`,
    );
  }
  let blocks: ReturnType<typeof decodePem>;
  try {
    blocks = decodePem(pem);
  } catch (err) {
    throw new CsrError('Malformed', `the CSR is not PEM: ${(err as PemError).message}`);
  }
  const requests = blocks.filter(
    (b) => b.type === 'CERTIFICATE REQUEST' || b.type === 'NEW CERTIFICATE REQUEST',
  );
  if (requests.length !== 1 || blocks.length !== 1) {
    throw new CsrError(
      'Malformed',
      `expected exactly one PEM block "CERTIFICATE REQUEST", got ${blocks.map((b) => `"${b.type}"`).join(', ') || 'none'}`,
    );
  }
  return parseCsrDer(requests[0]!.der);
}

/** Parses a DER PKCS#10 request and checks its signature and key. Throws CsrError. */
export function parseCsrDer(der: Buffer): ParsedCsr {
  // The decoder ignores bytes after the outer SEQUENCE; a request is exactly one structure.
  if (outerLength(der) !== der.length) {
    throw new CsrError('Malformed', 'the CSR is not one DER SEQUENCE (truncated, or bytes after it)');
  }
  let request: CertificationRequest;
  try {
    request = AsnConvert.parse(der, CertificationRequest);
  } catch (err) {
    throw new CsrError('Malformed', `the CSR is not a DER PKCS#10 request: ${(err as Error).message}`);
  }
  const info = request.certificationRequestInfo;
  const signedBytes = request.certificationRequestInfoRaw;
  if (info.version !== 0 || signedBytes === undefined) {
    throw new CsrError('Malformed', `the CSR has version ${info.version}; only version 1 (0) exists`);
  }

  const publicKey = publicKeyOf(Buffer.from(AsnConvert.serialize(info.subjectPKInfo)));
  const keyDescription = checkKey(publicKey);

  const algorithm = request.signatureAlgorithm.algorithm;
  const hash = SIGNATURE_HASH[algorithm];
  if (hash === undefined) {
    throw new CsrError(
      'UnsupportedSignature',
      `the CSR is signed with algorithm ${algorithm}; ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512 is required`,
    );
  }
  const isEcSignature = algorithm.startsWith('1.2.840.10045.');
  if (isEcSignature !== (publicKey.asymmetricKeyType === 'ec')) {
    throw new CsrError(
      'BadSignature',
      `the CSR's signature algorithm ${algorithm} does not fit its ${keyDescription} key`,
    );
  }
  let valid = false;
  try {
    valid = verify(hash, Buffer.from(signedBytes), publicKey, Buffer.from(request.signature));
  } catch {
    valid = false;
  }
  if (!valid) {
    throw new CsrError('BadSignature', 'the CSR signature does not verify with its own public key');
  }

  return { publicKey, keyDescription, names: requestedNames(request) };
}

/** Length of the DER element at the start of `der` (tag, length and contents), or -1. */
function outerLength(der: Buffer): number {
  if (der.length < 2 || der[0] !== 0x30) return -1;
  const first = der[1]!;
  if (first < 0x80) return 2 + first;
  const octets = first & 0x7f;
  if (octets === 0 || octets > 4 || der.length < 2 + octets) return -1;
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + der[2 + i]!;
  return 2 + octets + length;
}

function publicKeyOf(spki: Buffer): KeyObject {
  try {
    return createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (err) {
    throw new CsrError('UnsupportedKey', `the CSR's public key cannot be read: ${(err as Error).message}`);
  }
}

/** ECDSA P-256/P-384 or RSA 2048–4096 bits; returns a description of the key. */
function checkKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    const curve = EC_CURVES[details.namedCurve ?? ''];
    if (curve === undefined) {
      throw new CsrError(
        'UnsupportedKey',
        `ECDSA curve ${details.namedCurve} is not accepted; use P-256 or P-384`,
      );
    }
    return `ECDSA ${curve}`;
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
      throw new CsrError(
        'UnsupportedKey',
        `an RSA key of ${bits} bits is not accepted; use ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits`,
      );
    }
    return `RSA ${bits}`;
  }
  throw new CsrError(
    'UnsupportedKey',
    `a ${key.asymmetricKeyType} key is not accepted; use ECDSA P-256/P-384 or RSA 2048–4096`,
  );
}

function requestedNames(request: CertificationRequest): RequestedNames {
  const names: RequestedNames = {
    uris: [],
    dnsNames: [],
    ipAddresses: [],
    emails: [],
    others: [],
    commonNames: [],
  };
  for (const rdn of request.certificationRequestInfo.subject) {
    for (const attribute of rdn) {
      if (attribute.type === COMMON_NAME) names.commonNames.push(attribute.value.toString());
    }
  }
  for (const attribute of request.certificationRequestInfo.attributes ?? []) {
    if (attribute.type !== EXTENSION_REQUEST) continue;
    for (const value of attribute.values) {
      const extensions = parseOrThrow(value, Extensions, 'the extensionRequest attribute');
      for (const extension of extensions) {
        if (extension.extnID !== id_ce_subjectAltName) continue;
        const san = parseOrThrow(
          extension.extnValue.buffer,
          SubjectAlternativeName,
          'the subjectAltName extension',
        );
        if (san.length > MAX_SUBJECT_ALT_NAMES) {
          throw new CsrError(
            'Malformed',
            `the CSR asks for ${san.length} alternative names; at most ${MAX_SUBJECT_ALT_NAMES}`,
          );
        }
        for (const name of san) {
          if (name.uniformResourceIdentifier !== undefined) names.uris.push(name.uniformResourceIdentifier);
          else if (name.dNSName !== undefined) names.dnsNames.push(name.dNSName);
          else if (name.iPAddress !== undefined) names.ipAddresses.push(name.iPAddress);
          else if (name.rfc822Name !== undefined) names.emails.push(name.rfc822Name);
          else names.others.push(otherKind(name));
        }
      }
    }
  }
  return names;
}

function otherKind(name: SubjectAlternativeName[number]): string {
  if (name.otherName) return `otherName ${name.otherName.typeId}`;
  if (name.directoryName) return 'directoryName';
  if (name.registeredID) return `registeredID ${name.registeredID}`;
  if (name.x400Address) return 'x400Address';
  return 'ediPartyName';
}

function parseOrThrow<T>(data: ArrayBuffer | ArrayBufferView, type: new () => T, what: string): T {
  try {
    return AsnConvert.parse(data, type);
  } catch (err) {
    throw new CsrError('Malformed', `${what} cannot be parsed: ${(err as Error).message}`);
  }
}
