/** A plain-object view of a certificate, for decisions, logs and tests. */
import { createHash, X509Certificate } from 'node:crypto';
import {
  type CertificateInput,
  CertificateParseError,
  findExtension,
  type ParsedCertificate,
  parseCertificate,
} from './certificate-parser.js';
import { DerError } from './der.js';
import {
  decodeAuthorityKeyIdentifier,
  decodeBasicConstraints,
  decodeExtKeyUsage,
  decodeKeyUsage,
  decodeSubjectAltName,
  decodeSubjectKeyIdentifier,
  type KeyUsageName,
} from './extensions.js';
import { type KeyAlgorithm, keyAlgorithmOf } from './keys.js';
import { describeName } from './name.js';
import { Oid } from './oids.js';

export interface CertificateInfo {
  /** Lowercase hex without a sign octet. */
  serialNumberHex: string;
  /** "O=cluster.local"; "" for an empty Name. */
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  isCA: boolean;
  pathLenConstraint?: number;
  /** Empty when the certificate has no KeyUsage extension. */
  keyUsage: KeyUsageName[];
  /** "serverAuth", "clientAuth", or dotted OIDs for other purposes. */
  extKeyUsage: string[];
  uris: string[];
  dnsNames: string[];
  sanCritical: boolean;
  /** SHA-256 of the DER: lowercase hex, no colons. */
  fingerprintSha256: string;
  publicKeyAlgorithm: KeyAlgorithm | 'other';
  /** Lowercase hex. */
  subjectKeyId?: string;
  authorityKeyId?: string;
}

/** Throws a CertificateParseError when the input is not a single well-formed certificate. */
export function inspectCertificate(input: CertificateInput): CertificateInfo {
  const parsed = parseCertificate(input);
  const x509 = input instanceof X509Certificate ? input : openWithNode(parsed.der);
  return describeCertificate(parsed, x509);
}

/** Node's (OpenSSL's) parser is the one TLS uses, so a certificate must satisfy it too. */
export function openWithNode(der: Buffer): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (error) {
    throw new CertificateParseError(`cannot parse certificate: ${(error as Error).message}`);
  }
}

/**
 * The certificate's public key. OpenSSL parses the key lazily: a certificate whose key bytes are not a
 * valid key (an EC point that is not on the curve, a truncated RSA modulus) opens fine and throws here.
 */
function publicKeyOf(x509: X509Certificate) {
  try {
    return x509.publicKey;
  } catch (error) {
    throw new CertificateParseError(`cannot read the certificate's public key: ${(error as Error).message}`);
  }
}

/** The CertificateInfo of a certificate already parsed both ways. */
export function describeCertificate(parsed: ParsedCertificate, x509: X509Certificate): CertificateInfo {
  try {
    return describeExtensions(parsed, x509);
  } catch (error) {
    if (error instanceof DerError)
      throw new CertificateParseError(`cannot parse certificate: ${error.message}`);
    throw error;
  }
}

function describeExtensions(parsed: ParsedCertificate, x509: X509Certificate): CertificateInfo {
  const extension = (oid: string) => findExtension(parsed, oid);
  const basicConstraints = extension(Oid.basicConstraints);
  const constraints = basicConstraints ? decodeBasicConstraints(basicConstraints.value) : { ca: false };
  const keyUsage = extension(Oid.keyUsage);
  const extKeyUsage = extension(Oid.extKeyUsage);
  const subjectAltName = extension(Oid.subjectAltName);
  const altNames = subjectAltName ? decodeSubjectAltName(subjectAltName.value) : { uris: [], dnsNames: [] };
  const subjectKeyId = extension(Oid.subjectKeyIdentifier);
  const authorityKeyId = extension(Oid.authorityKeyIdentifier);
  const authorityKeyIdValue = authorityKeyId && decodeAuthorityKeyIdentifier(authorityKeyId.value);

  return {
    serialNumberHex: parsed.serialNumber.toString('hex'),
    subject: describeName(parsed.subjectDer),
    issuer: describeName(parsed.issuerDer),
    notBefore: parsed.notBefore,
    notAfter: parsed.notAfter,
    isCA: constraints.ca,
    ...(constraints.pathLenConstraint !== undefined && { pathLenConstraint: constraints.pathLenConstraint }),
    keyUsage: keyUsage ? decodeKeyUsage(keyUsage.value) : [],
    extKeyUsage: extKeyUsage ? decodeExtKeyUsage(extKeyUsage.value) : [],
    uris: altNames.uris,
    dnsNames: altNames.dnsNames,
    sanCritical: subjectAltName?.critical ?? false,
    fingerprintSha256: createHash('sha256').update(parsed.der).digest('hex'),
    publicKeyAlgorithm: keyAlgorithmOf(publicKeyOf(x509)),
    ...(subjectKeyId && { subjectKeyId: decodeSubjectKeyIdentifier(subjectKeyId.value).toString('hex') }),
    ...(authorityKeyIdValue && { authorityKeyId: authorityKeyIdValue.toString('hex') }),
  };
}
