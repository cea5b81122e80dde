/**
 * X.509 v2 certificate revocation lists (RFC 5280 §5): building one signed by a CA, and reading one
 * back. The CertificateList structure comes from @peculiar/asn1-x509; the signature from node:crypto
 * with the CA's key, as for certificates. The issuer Name is the issuer certificate's subject,
 * byte for byte, so verifiers match the CRL to its CA.
 */
import { createHash, type KeyObject, sign, verify, X509Certificate } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AuthorityKeyIdentifier,
  CertificateList,
  CRLReason,
  Extension,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
  KeyIdentifier,
  Name,
  RevokedCertificate,
  TBSCertList,
  Time,
  Version,
} from '@peculiar/asn1-x509';
import { type CertificateInput, certificateDerOf, parseCertificate } from './certificate-parser.js';
import {
  decodeBitString,
  decodeUnsignedInteger,
  readChildren,
  readElement,
  Tag,
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

function serialBytes(serial: string): ArrayBuffer {
  const canonical = normalizeSerialHex(serial);
  if (canonical === undefined) throw new CrlError(`"${serial}" is not a serial number`);
  // DER INTEGER contents: a leading zero byte keeps a serial with the top bit set positive.
  const contents = unsignedInteger(BigInt(`0x${canonical}`)).subarray(2);
  return new Uint8Array(contents).buffer;
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
  const revoked = entries.map(
    (entry) =>
      new RevokedCertificate({
        userCertificate: serialBytes(entry.serial),
        revocationDate: new Time(entry.revokedAt),
        // RFC 5280 §5.3.1: the reason code unspecified SHOULD be absent.
        ...(entry.reason === 'unspecified'
          ? {}
          : {
              crlEntryExtensions: [
                extension(
                  id_ce_cRLReasons,
                  false,
                  new Uint8Array(AsnConvert.serialize(new CRLReason(REASON_CODES[entry.reason]))),
                ),
              ],
            }),
      }),
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
    ...(revoked.length > 0 ? { revokedCertificates: revoked } : {}),
    crlExtensions: [
      extension(id_ce_authorityKeyIdentifier, false, new Uint8Array(AsnConvert.serialize(aki))),
      extension(id_ce_cRLNumber, false, unsignedInteger(request.crlNumber)),
    ],
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = sign(algorithm.hash, tbsDer, issuer.privateKey);
  const list = new CertificateList({
    tbsCertList: tbs,
    signatureAlgorithm,
    signature: new Uint8Array(signature).buffer,
  });
  const der = Buffer.from(AsnConvert.serialize(list));
  return { der, pem: encodePem('X509 CRL', der) };
}

function compareSerials(a: string, b: string): number {
  const x = BigInt(`0x${a}`);
  const y = BigInt(`0x${b}`);
  return x < y ? -1 : x > y ? 1 : 0;
}

const REASON_BY_CODE = new Map(Object.entries(REASON_CODES).map(([name, code]) => [code, name as CrlReason]));

function hexOf(bytes: ArrayBuffer | Uint8Array): string {
  return Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString('hex');
}

/** Reads a DER CRL. Throws CrlError when it is not one. */
export function parseCrl(der: Buffer): ParsedCrl {
  let list: CertificateList;
  try {
    list = AsnConvert.parse(der, CertificateList);
  } catch (err) {
    throw new CrlError(`not a CRL: ${(err as Error).message}`);
  }
  const tbs = list.tbsCertList;
  const extensions = tbs.crlExtensions ?? [];
  const number = extensions.find((e) => e.extnID === id_ce_cRLNumber);
  const akiExtension = extensions.find((e) => e.extnID === id_ce_authorityKeyIdentifier);
  const aki = akiExtension && AsnConvert.parse(akiExtension.extnValue.buffer, AuthorityKeyIdentifier);
  return {
    der,
    issuerDer: Buffer.from(AsnConvert.serialize(tbs.issuer)),
    thisUpdate: tbs.thisUpdate.getTime(),
    ...(tbs.nextUpdate ? { nextUpdate: tbs.nextUpdate.getTime() } : {}),
    ...(number
      ? {
          crlNumber: BigInt(
            `0x${decodeUnsignedInteger(readElement(Buffer.from(number.extnValue.buffer), Tag.INTEGER)).toString('hex') || '0'}`,
          ),
        }
      : {}),
    ...(aki?.keyIdentifier ? { authorityKeyId: hexOf(aki.keyIdentifier.buffer) } : {}),
    entries: (tbs.revokedCertificates ?? []).map((entry) => {
      const reasonExtension = entry.crlEntryExtensions?.find((e) => e.extnID === id_ce_cRLReasons);
      const code = reasonExtension
        ? AsnConvert.parse(reasonExtension.extnValue.buffer, CRLReason).reason
        : REASON_CODES.unspecified;
      const serial = normalizeSerialHex(hexOf(entry.userCertificate));
      if (serial === undefined) throw new CrlError('the CRL lists a serial number that is not positive');
      return {
        serial,
        revokedAt: entry.revocationDate.getTime(),
        reason: REASON_BY_CODE.get(code) ?? 'unspecified',
      };
    }),
  };
}

/** Whether the CRL's signature verifies with the certificate's key and the names match. */
export function crlSignedBy(der: Buffer, issuerCertificate: Buffer): boolean {
  try {
    const list = AsnConvert.parse(der, CertificateList);
    const [tbs] = readChildren(readElement(der, Tag.SEQUENCE));
    if (!tbs) return false;
    const issuer = parseCertificate(issuerCertificate);
    if (!Buffer.from(AsnConvert.serialize(list.tbsCertList.issuer)).equals(issuer.subjectDer)) return false;
    const cert = new X509Certificate(issuerCertificate);
    const hash = signatureAlgorithmFor(cert.publicKey).hash;
    return verify(hash, tbs.raw, cert.publicKey, Buffer.from(list.signature));
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
