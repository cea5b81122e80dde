/**
 * Reads the fields of an X.509 certificate from its DER, keeping byte-exact views of the pieces that must
 * be copied or compared as bytes (issuer and subject Names, SubjectPublicKeyInfo, TBSCertificate).
 */
import { X509Certificate } from 'node:crypto';
import {
  type DerElement,
  DerError,
  decodeBoolean,
  decodeObjectIdentifier,
  decodeTime,
  expectTag,
  readChildren,
  readElement,
  Tag,
} from './der.js';
import { decodeCertificatesPem, PemError } from './pem.js';

/** A certificate as PEM text, DER bytes (or bytes of PEM text, as in Secret data), or a parsed X509Certificate. */
export type CertificateInput = string | Uint8Array | X509Certificate;

export class CertificateParseError extends Error {
  override name = 'CertificateParseError';
}

export interface CertificateExtension {
  oid: string;
  critical: boolean;
  /** The contents of extnValue, i.e. the extension's own DER. */
  value: Buffer;
}

export interface ParsedCertificate {
  der: Buffer;
  tbsDer: Buffer;
  /** 1, 2 or 3. */
  version: number;
  /** The serial's magnitude, without a leading sign octet. */
  serialNumber: Buffer;
  signatureAlgorithmOid: string;
  issuerDer: Buffer;
  subjectDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  subjectPublicKeyInfoDer: Buffer;
  extensions: CertificateExtension[];
  /** The outer and the TBS's AlgorithmIdentifier, whole (a valid certificate has them equal). */
  signatureAlgorithmDer: Buffer;
  innerSignatureAlgorithmDer: Buffer;
  /** The signatureValue BIT STRING's contents, its unused-bits octet included. */
  signatureBits: Buffer;
}

/** The DER of a single certificate; PEM input must hold exactly one CERTIFICATE block. */
export function certificateDerOf(input: CertificateInput): Buffer {
  if (input instanceof X509Certificate) return input.raw;
  if (typeof input !== 'string' && !looksLikePem(input)) return Buffer.from(input);
  let ders: Buffer[];
  try {
    ders = decodeCertificatesPem(input);
  } catch (error) {
    if (error instanceof PemError)
      throw new CertificateParseError(`cannot read certificate PEM: ${error.message}`);
    throw error;
  }
  if (ders.length !== 1) throw new CertificateParseError(`expected one certificate, found ${ders.length}`);
  return ders[0]!;
}

function looksLikePem(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, 200)).toString('latin1').includes('-----BEGIN');
}

export function parseCertificate(input: CertificateInput): ParsedCertificate {
  const der = certificateDerOf(input);
  try {
    return parseCertificateDer(der);
  } catch (error) {
    if (error instanceof DerError)
      throw new CertificateParseError(`cannot parse certificate: ${error.message}`);
    throw error;
  }
}

function parseCertificateDer(der: Buffer): ParsedCertificate {
  const [tbs, signatureAlgorithm, signature] = readChildren(readElement(der, Tag.SEQUENCE));
  expectTag(tbs, Tag.SEQUENCE, 'TBSCertificate');
  expectTag(signatureAlgorithm, Tag.SEQUENCE, 'signatureAlgorithm');
  expectTag(signature, Tag.BIT_STRING, 'signatureValue');

  const fields = readChildren(tbs!);
  let version = 1;
  if (fields[0]?.tag === 0xa0) {
    const [versionNumber] = readChildren(fields.shift()!);
    const value = expectTag(versionNumber, Tag.INTEGER, 'version').value;
    version = (value.at(-1) ?? 0) + 1;
  }
  const [serial, innerSignatureAlgorithm, issuer, validity, subject, spki, ...optional] = fields;
  const serialContents = expectTag(serial, Tag.INTEGER, 'serialNumber').value;
  const [algorithmOid] = readChildren(expectTag(innerSignatureAlgorithm, Tag.SEQUENCE, 'signature'));
  const [notBefore, notAfter] = readChildren(expectTag(validity, Tag.SEQUENCE, 'validity'));
  if (notBefore === undefined || notAfter === undefined)
    throw new DerError('validity needs notBefore and notAfter');

  return {
    der,
    tbsDer: tbs!.raw,
    version,
    serialNumber:
      serialContents.length > 1 && serialContents[0] === 0 ? serialContents.subarray(1) : serialContents,
    signatureAlgorithmOid: decodeObjectIdentifier(expectTag(algorithmOid, Tag.OID, 'signature algorithm')),
    issuerDer: expectTag(issuer, Tag.SEQUENCE, 'issuer').raw,
    subjectDer: expectTag(subject, Tag.SEQUENCE, 'subject').raw,
    notBefore: decodeTime(notBefore),
    notAfter: decodeTime(notAfter),
    subjectPublicKeyInfoDer: expectTag(spki, Tag.SEQUENCE, 'subjectPublicKeyInfo').raw,
    extensions: parseExtensions(optional.find((field) => field.tag === 0xa3)),
    signatureAlgorithmDer: signatureAlgorithm!.raw,
    innerSignatureAlgorithmDer: innerSignatureAlgorithm!.raw,
    signatureBits: signature!.value,
  };
}

function parseExtensions(wrapper: DerElement | undefined): CertificateExtension[] {
  if (wrapper === undefined) return [];
  const [list] = readChildren(wrapper);
  const extensions = readChildren(expectTag(list, Tag.SEQUENCE, 'extensions')).map((extension) => {
    const [id, second, third] = readChildren(expectTag(extension, Tag.SEQUENCE, 'extension'));
    const oid = decodeObjectIdentifier(expectTag(id, Tag.OID, 'extnID'));
    const critical = second?.tag === Tag.BOOLEAN ? decodeBoolean(second) : false;
    const value = expectTag(
      second?.tag === Tag.BOOLEAN ? third : second,
      Tag.OCTET_STRING,
      `extnValue of ${oid}`,
    );
    return { oid, critical, value: value.value };
  });
  const seen = new Set<string>();
  for (const { oid } of extensions) {
    if (seen.has(oid)) throw new DerError(`extension ${oid} appears more than once`);
    seen.add(oid);
  }
  return extensions;
}

export function findExtension(certificate: ParsedCertificate, oid: string): CertificateExtension | undefined {
  return certificate.extensions.find((extension) => extension.oid === oid);
}
