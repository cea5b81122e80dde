/**
 * X.509 v2 certificate revocation lists (RFC 5280 §5): building one signed by a CA, and reading one
 * back. The structure comes from @peculiar/asn1-x509 (the revoked entries are encoded with der.ts: its
 * encoder was ~0.5 ms per entry); the signature from node:crypto
 * with the CA's key, as for certificates. The issuer Name is the issuer certificate's subject,
 * byte for byte, so verifiers match the CRL to its CA.
 */
import { createHash, type KeyObject, sign, verify, X509Certificate } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AuthorityKeyIdentifier,
  Extension,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
  KeyIdentifier,
  Name,
  TBSCertList,
  Time,
  Version,
} from '@peculiar/asn1-x509';
import { type CertificateInput, certificateDerOf, parseCertificate } from './certificate-parser.js';
import {
  bitString,
  type DerElement,
  decodeBitString,
  decodeObjectIdentifier,
  decodeTime,
  decodeUnsignedInteger,
  objectIdentifier,
  octetString,
  readChildren,
  readElement,
  sequence,
  Tag,
  time,
  tlv,
  unsignedInteger,
} from './der.js';
import { decodeKeyUsage, decodeSubjectKeyIdentifier } from './extensions.js';
import { signatureAlgorithmFor } from './keys.js';
import { Oid } from './oids.js';
import { decodePem, encodePem } from './pem.js';

/** RFC 5280 §5.3.1 reason names, as the CRD spells them; removeFromCRL (delta CRLs only) is left out. */
export const CRL_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'privilegeWithdrawn',
  'aACompromise',
] as const;
export type CrlReason = (typeof CRL_REASONS)[number];

const REASON_CODES: Record<CrlReason, number> = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aACompromise: 10,
};

export class CrlError extends Error {
  override name = 'CrlError';
}

export interface CrlEntry {
  /** Serial number as canonical hex (see normalizeSerialHex). */
  serial: string;
  revokedAt: Date;
  reason: CrlReason;
}

export interface CrlRequest {
  issuer: { certificate: CertificateInput; privateKey: KeyObject };
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: readonly CrlEntry[];
}

export interface ParsedCrl {
  der: Buffer;
  issuerDer: Buffer;
  thisUpdate: Date;
  nextUpdate?: Date;
  crlNumber?: bigint;
  /** The AuthorityKeyIdentifier's keyIdentifier, hex. */
  authorityKeyId?: string;
  entries: CrlEntry[];
}

/**
 * A serial number written by a person (`04:FA:…`, `0x4fa…`, `4FA…`) as alcazar writes it: lowercase
 * hex, whole bytes, no leading zero bytes beyond the one a whole byte needs. Undefined when the
 * text is not a positive serial of at most 20 octets (RFC 5280 §4.1.2.2).
 */
export function normalizeSerialHex(text: string): string | undefined {
  const hex = text.trim().replace(/^0x/i, '').replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{1,40}$/.test(hex)) return undefined;
  const value = BigInt(`0x${hex}`);
  if (value === 0n) return undefined;
  const digits = value.toString(16);
  return digits.length % 2 === 1 ? `0${digits}` : digits;
}

function serialError(serial: string): never {
  throw new CrlError(`"${serial}" is not a serial number`);
}

const REASON_EXTENSIONS = new Map<CrlReason, Buffer>();

/** The cRLReason entry extension (not critical): OID, OCTET STRING { ENUMERATED code }. */
function reasonExtension(reason: CrlReason): Buffer {
  let encoded = REASON_EXTENSIONS.get(reason);
  if (!encoded) {
    encoded = sequence(
      objectIdentifier(id_ce_cRLReasons),
      octetString(tlv(0x0a, Buffer.from([REASON_CODES[reason]]))),
    );
    REASON_EXTENSIONS.set(reason, encoded);
  }
  return encoded;
}

function extension(oid: string, critical: boolean, value: Uint8Array): Extension {
  return new Extension({ extnID: oid, critical, extnValue: new OctetString(value) });
}

function authorityKeyIdOf(issuerDer: Buffer): Buffer {
  const parsed = parseCertificate(issuerDer);
  const ski = parsed.extensions.find((e) => e.oid === Oid.subjectKeyIdentifier);
  if (ski) return decodeSubjectKeyIdentifier(ski.value);
  // RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits.
  const [, subjectPublicKey] = readChildren(readElement(parsed.subjectPublicKeyInfoDer, Tag.SEQUENCE));
  if (!subjectPublicKey) throw new CrlError('the issuer certificate has no subjectPublicKey');
  return createHash('sha1').update(decodeBitString(subjectPublicKey).bytes).digest();
}

/** Builds and signs a CRL for `issuer`. Entries are written sorted by serial, so equal input means equal TBS. */
export function buildCrl(request: CrlRequest): { der: Buffer; pem: string } {
  const issuer = { ...request.issuer, certificate: certificateDerOf(request.issuer.certificate) };
  const issuerCert = parseCertificate(issuer.certificate);
  if (!new X509Certificate(issuer.certificate).ca)
    throw new CrlError('the CRL issuer is not a CA certificate');
  const keyUsage = issuerCert.extensions.find((e) => e.oid === Oid.keyUsage);
  if (keyUsage && !decodeKeyUsage(keyUsage.value).includes('cRLSign')) {
    // OpenSSL, Go and Envoy reject a CRL whose issuer's KeyUsage lacks cRLSign.
    throw new CrlError('the CRL issuer certificate lacks the cRLSign key usage');
  }
  if (request.nextUpdate.getTime() <= request.thisUpdate.getTime())
    throw new CrlError('nextUpdate must be after thisUpdate');
  if (request.crlNumber < 0n || request.crlNumber >= 2n ** 159n)
    throw new CrlError('the CRL number must fit in 20 octets');
  const algorithm = signatureAlgorithmFor(issuer.privateKey);
  const signatureAlgorithm = AsnConvert.parse(algorithm.identifierDer, AlgorithmIdentifier);
  const issuerName = AsnConvert.parse(issuerCert.subjectDer, Name);
  if (!Buffer.from(AsnConvert.serialize(issuerName)).equals(issuerCert.subjectDer)) {
    throw new CrlError(
      'the issuer Name does not survive re-encoding; refusing to write a CRL it would not match',
    );
  }
  const entries = [...request.entries].sort((a, b) => compareSerials(a.serial, b.serial));
  // The entries are encoded here rather than by @peculiar/asn1-x509: its encoder took ~0.5 ms per
  // entry (1,000 entries: ~1 s of blocked event loop), this takes microseconds.
  const revoked = entries.map((entry) =>
    sequence(
      unsignedInteger(BigInt(`0x${normalizeSerialHex(entry.serial) ?? serialError(entry.serial)}`)),
      time(entry.revokedAt),
      // RFC 5280 §5.3.1: the reason code unspecified SHOULD be absent.
      ...(entry.reason === 'unspecified' ? [] : [sequence(reasonExtension(entry.reason))]),
    ),
  );
  const aki = new AuthorityKeyIdentifier({
    keyIdentifier: new KeyIdentifier(new Uint8Array(authorityKeyIdOf(issuer.certificate))),
  });
  const tbs = new TBSCertList({
    version: Version.v2,
    signature: signatureAlgorithm,
    issuer: issuerName,
    thisUpdate: new Time(request.thisUpdate),
    nextUpdate: new Time(request.nextUpdate),
    crlExtensions: [
      extension(id_ce_authorityKeyIdentifier, false, new Uint8Array(AsnConvert.serialize(aki))),
      extension(id_ce_cRLNumber, false, unsignedInteger(request.crlNumber)),
    ],
  });
  // revokedCertificates goes between nextUpdate and the [0] crlExtensions.
  const fields = readChildren(readElement(Buffer.from(AsnConvert.serialize(tbs)), Tag.SEQUENCE)).map(
    (f) => f.raw,
  );
  const tbsDer = sequence(
    ...fields.slice(0, -1),
    ...(revoked.length > 0 ? [sequence(...revoked)] : []),
    fields.at(-1)!,
  );
  const signature = sign(algorithm.hash, tbsDer, issuer.privateKey);
  const der = sequence(tbsDer, algorithm.identifierDer, bitString(signature));
  return { der, pem: encodePem('X509 CRL', der) };
}

function compareSerials(a: string, b: string): number {
  const x = BigInt(`0x${a}`);
  const y = BigInt(`0x${b}`);
  return x < y ? -1 : x > y ? 1 : 0;
}

const REASON_BY_CODE = new Map(Object.entries(REASON_CODES).map(([name, code]) => [code, name as CrlReason]));

const isTime = (e: DerElement | undefined) => e?.tag === Tag.UTC_TIME || e?.tag === Tag.GENERALIZED_TIME;

interface CrlParts {
  tbs: DerElement;
  issuer: DerElement;
  thisUpdate: DerElement;
  nextUpdate?: DerElement;
  revoked?: DerElement;
  extensions?: DerElement;
  signature: Buffer;
}

/**
 * The fields of a DER CRL, read with der.ts: @peculiar/asn1-x509's parser took ~2 ms per entry and
 * refuses lists of 10,000 entries (its node limit); this reads them in milliseconds.
 */
function crlParts(der: Buffer): CrlParts {
  const [tbs, , signatureValue] = readChildren(readElement(der, Tag.SEQUENCE));
  if (!tbs || tbs.tag !== Tag.SEQUENCE || !signatureValue)
    throw new CrlError('not a CRL: expected three fields');
  const fields = readChildren(tbs);
  let i = fields[0]?.tag === Tag.INTEGER ? 1 : 0;
  const issuer = fields[i + 1];
  const thisUpdate = fields[i + 2];
  if (!issuer || issuer.tag !== Tag.SEQUENCE || !isTime(thisUpdate))
    throw new CrlError('not a CRL: no issuer or thisUpdate');
  i += 3;
  const nextUpdate = isTime(fields[i]) ? fields[i++] : undefined;
  const revoked = fields[i]?.tag === Tag.SEQUENCE ? fields[i++] : undefined;
  const extensions = fields[i]?.tag === 0xa0 ? fields[i++] : undefined;
  return {
    tbs,
    issuer,
    thisUpdate: thisUpdate!,
    ...(nextUpdate && { nextUpdate }),
    ...(revoked && { revoked }),
    ...(extensions && { extensions }),
    signature: decodeBitString(signatureValue).bytes,
  };
}

/** Extension OID → extnValue contents, from `SEQUENCE OF Extension`. */
function extensionValues(list: DerElement | undefined): Map<string, Buffer> {
  const values = new Map<string, Buffer>();
  for (const extension of list ? readChildren(list) : []) {
    const parts = readChildren(extension);
    const value = parts.at(-1);
    if (!parts[0] || !value || value.tag !== Tag.OCTET_STRING)
      throw new CrlError('not a CRL: malformed extension');
    values.set(decodeObjectIdentifier(parts[0]), value.value);
  }
  return values;
}

/** Reads a DER CRL. Throws CrlError when it is not one. */
export function parseCrl(der: Buffer): ParsedCrl {
  let parts: CrlParts;
  try {
    parts = crlParts(der);
  } catch (err) {
    if (err instanceof CrlError) throw err;
    throw new CrlError(`not a CRL: ${(err as Error).message}`);
  }
  try {
    const extensions = extensionValues(parts.extensions && readChildren(parts.extensions)[0]);
    const number = extensions.get(id_ce_cRLNumber);
    const aki = extensions.get(id_ce_authorityKeyIdentifier);
    const keyIdentifier = aki && readChildren(readElement(aki, Tag.SEQUENCE)).find((e) => e.tag === 0x80);
    const entries = (parts.revoked ? readChildren(parts.revoked) : []).map((entry): CrlEntry => {
      const [serialElement, dateElement, entryExtensions] = readChildren(entry);
      if (!serialElement || !isTime(dateElement)) throw new CrlError('not a CRL: malformed entry');
      const serial = normalizeSerialHex(decodeUnsignedInteger(serialElement).toString('hex') || '0');
      if (serial === undefined) throw new CrlError('the CRL lists a serial number that is not positive');
      const reasonValue = extensionValues(entryExtensions).get(id_ce_cRLReasons);
      const code = reasonValue ? (readElement(reasonValue, 0x0a).value[0] ?? 0) : REASON_CODES.unspecified;
      return {
        serial,
        revokedAt: decodeTime(dateElement!),
        reason: REASON_BY_CODE.get(code) ?? 'unspecified',
      };
    });
    return {
      der,
      issuerDer: parts.issuer.raw,
      thisUpdate: decodeTime(parts.thisUpdate),
      ...(parts.nextUpdate && { nextUpdate: decodeTime(parts.nextUpdate) }),
      ...(number && {
        crlNumber: BigInt(
          `0x${decodeUnsignedInteger(readElement(number, Tag.INTEGER)).toString('hex') || '0'}`,
        ),
      }),
      ...(keyIdentifier && { authorityKeyId: keyIdentifier.value.toString('hex') }),
      entries,
    };
  } catch (err) {
    if (err instanceof CrlError) throw err;
    throw new CrlError(`not a CRL: ${(err as Error).message}`);
  }
}

/** Whether the CRL's signature verifies with the certificate's key and the names match. */
export function crlSignedBy(der: Buffer, issuerCertificate: Buffer): boolean {
  try {
    const parts = crlParts(der);
    const issuer = parseCertificate(issuerCertificate);
    if (!parts.issuer.raw.equals(issuer.subjectDer)) return false;
    const cert = new X509Certificate(issuerCertificate);
    const hash = signatureAlgorithmFor(cert.publicKey).hash;
    return verify(hash, parts.tbs.raw, cert.publicKey, parts.signature);
  } catch {
    return false;
  }
}

/** Every `X509 CRL` block of a PEM text, as DER; none for an empty text. */
export function decodeCrlsPem(text: string | Uint8Array): Buffer[] {
  if (Buffer.from(text).toString('utf8').trim() === '') return [];
  return decodePem(text)
    .filter((block) => block.type === 'X509 CRL')
    .map((block) => block.der);
}
