/**
 * Certificate templates (workload leaf, self-signed root, intermediate) and signing.
 *
 * The TBSCertificate is assembled from DER pieces and signed with node:crypto on the libuv threadpool.
 * Templates never read the clock: callers pass notBefore/notAfter.
 */
import { KeyObject, randomBytes, sign } from 'node:crypto';
import { type CertificateInput, findExtension, parseCertificate } from './certificate-parser.js';
import { bitString, explicit, sequence, time, unsignedInteger } from './der.js';
import {
  decodeBasicConstraints,
  decodeKeyUsage,
  decodeSubjectKeyIdentifier,
  encodeAuthorityKeyIdentifier,
  encodeBasicConstraints,
  encodeExtension,
  encodeExtKeyUsage,
  encodeKeyUsage,
  encodeSubjectAltName,
  encodeSubjectKeyIdentifier,
  type KeyUsageName,
  keyIdentifierOf,
} from './extensions.js';
import { publicKeyOf, signatureAlgorithmFor } from './keys.js';
import { emptyName, encodeName } from './name.js';
import { Oid } from './oids.js';
import { encodePem } from './pem.js';
import { parseSpiffeId } from './spiffe.js';
import { isRsaSubjectPublicKeyInfo, subjectPublicKeyInfoDer } from './spki.js';

export class CertificateTemplateError extends Error {
  override name = 'CertificateTemplateError';
}

export interface IssuedCertificate {
  der: Buffer;
  pem: string;
}

/**
 * The CA that signs: its certificate and the matching private key. That they match is not re-checked on
 * every issue (it would double the cost of an ECDSA leaf); check once with keyMatchesCertificate when the
 * CA is loaded.
 */
export interface CertificateIssuer {
  certificate: CertificateInput;
  privateKey: KeyObject;
}

interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** A public key already encoded (its algorithm is read from the encoding). */
export interface EncodedPublicKey {
  subjectPublicKeyInfoDer: Buffer;
}

export interface LeafCertificateRequest extends Validity {
  /** The workload's key; a private key is accepted and its public half used. */
  publicKey: KeyObject | EncodedPublicKey;
  spiffeId: string;
  dnsNames?: readonly string[];
  issuer: CertificateIssuer;
  /** Defaults to a random positive serial below 2^127. */
  serialNumber?: bigint;
}

export interface RootCertificateRequest extends Validity {
  privateKey: KeyObject;
  /** Derived from privateKey when absent, so a KeyPair can be passed as is. */
  publicKey?: KeyObject;
  /** The trust domain, as Citadel put it in O. */
  organization: string;
  commonName?: string;
  pathLenConstraint?: number;
  serialNumber?: bigint;
}

export interface IntermediateCertificateRequest extends Validity {
  publicKey: KeyObject;
  organization: string;
  commonName?: string;
  issuer: CertificateIssuer;
  pathLenConstraint?: number;
  serialNumber?: bigint;
}

/**
 * A SPIFFE X509-SVID: empty subject, a critical SAN holding exactly one URI (the SPIFFE ID) plus any DNS
 * names, KeyUsage digitalSignature (+ keyEncipherment for RSA keys), ExtKeyUsage serverAuth + clientAuth,
 * CA:FALSE, and an Issuer copied byte for byte from the issuer certificate's subject.
 */
export async function issueLeafCertificate(request: LeafCertificateRequest): Promise<IssuedCertificate> {
  parseSpiffeId(request.spiffeId);
  const dnsNames = request.dnsNames ?? [];
  for (const dnsName of dnsNames) checkDnsName(dnsName);
  const issuer = resolveIssuer(request.issuer);
  checkValidity(request, issuer);

  const publicKey = encodedPublicKey(request.publicKey);
  const keyUsage: KeyUsageName[] = isRsaSubjectPublicKeyInfo(publicKey.subjectPublicKeyInfoDer)
    ? ['digitalSignature', 'keyEncipherment']
    : ['digitalSignature'];
  return signCertificate(
    {
      serialNumber: request.serialNumber,
      issuerNameDer: issuer.subjectDer,
      subjectNameDer: emptyName(),
      validity: request,
      subjectPublicKeyInfoDer: publicKey.subjectPublicKeyInfoDer,
      extensions: [
        // RFC 5280 §4.2.1.6: with an empty subject the SAN extension must be critical.
        encodeExtension(
          Oid.subjectAltName,
          true,
          encodeSubjectAltName({ uris: [request.spiffeId], dnsNames }),
        ),
        encodeExtension(Oid.keyUsage, true, encodeKeyUsage(keyUsage)),
        encodeExtension(Oid.extKeyUsage, false, encodeExtKeyUsage([Oid.serverAuth, Oid.clientAuth])),
        encodeExtension(Oid.basicConstraints, true, encodeBasicConstraints({ ca: false })),
        ...authorityKeyIdExtension(issuer),
      ],
    },
    issuer.privateKey,
  );
}

/** A self-signed root: Subject = Issuer = O=<organization> [CN=<commonName>], CA:TRUE, keyCertSign + cRLSign. */
export async function createSelfSignedRoot(request: RootCertificateRequest): Promise<IssuedCertificate> {
  checkValidity(request);
  checkOrganization(request.organization);
  const publicKey = publicKeyOf(request.privateKey);
  if (request.publicKey !== undefined && !request.publicKey.equals(publicKey)) {
    throw new CertificateTemplateError('publicKey is not the public half of privateKey');
  }
  const name = encodeName({ organization: request.organization, commonName: request.commonName });
  return signCertificate(
    {
      serialNumber: request.serialNumber,
      issuerNameDer: name,
      subjectNameDer: name,
      validity: request,
      subjectPublicKeyInfoDer: subjectPublicKeyInfoDer(publicKey),
      extensions: caExtensions(publicKey, request.pathLenConstraint),
    },
    request.privateKey,
  );
}

/** An intermediate CA signed by `issuer`, with the same CA profile as a root plus AuthorityKeyIdentifier. */
export async function issueIntermediateCertificate(
  request: IntermediateCertificateRequest,
): Promise<IssuedCertificate> {
  const issuer = resolveIssuer(request.issuer);
  checkValidity(request, issuer);
  checkOrganization(request.organization);
  const publicKey = publicKeyOf(request.publicKey);
  return signCertificate(
    {
      serialNumber: request.serialNumber,
      issuerNameDer: issuer.subjectDer,
      subjectNameDer: encodeName({ organization: request.organization, commonName: request.commonName }),
      validity: request,
      subjectPublicKeyInfoDer: subjectPublicKeyInfoDer(publicKey),
      extensions: [...caExtensions(publicKey, request.pathLenConstraint), ...authorityKeyIdExtension(issuer)],
    },
    issuer.privateKey,
  );
}

function encodedPublicKey(key: KeyObject | EncodedPublicKey): EncodedPublicKey {
  return key instanceof KeyObject
    ? { subjectPublicKeyInfoDer: subjectPublicKeyInfoDer(publicKeyOf(key)) }
    : key;
}

function caExtensions(publicKey: KeyObject, pathLenConstraint: number | undefined): Buffer[] {
  const spki = subjectPublicKeyInfoDer(publicKey);
  return [
    encodeExtension(Oid.basicConstraints, true, encodeBasicConstraints({ ca: true, pathLenConstraint })),
    encodeExtension(Oid.keyUsage, true, encodeKeyUsage(['keyCertSign', 'cRLSign'])),
    encodeExtension(Oid.subjectKeyIdentifier, false, encodeSubjectKeyIdentifier(keyIdentifierOf(spki))),
  ];
}

function authorityKeyIdExtension(issuer: ResolvedIssuer): Buffer[] {
  if (issuer.subjectKeyId === undefined) return [];
  return [
    encodeExtension(Oid.authorityKeyIdentifier, false, encodeAuthorityKeyIdentifier(issuer.subjectKeyId)),
  ];
}

// ---- issuer ----

interface ResolvedIssuer {
  subjectDer: Buffer;
  subjectKeyId: Buffer | undefined;
  notAfter: Date;
  privateKey: KeyObject;
}

/**
 * What was read from an issuer certificate given as an object (DER bytes, X509Certificate), so that
 * a CA issuing thousands of leaves parses its own certificate once (~30 µs a leaf in a cold-mint
 * profile). Callers never edit a certificate's bytes in place; a new certificate is a new object.
 */
const resolvedIssuers = new WeakMap<object, Omit<ResolvedIssuer, 'privateKey'>>();

/** Reads what a child certificate needs from the issuer, refusing certificates that cannot sign. */
function resolveIssuer({ certificate, privateKey }: CertificateIssuer): ResolvedIssuer {
  if (privateKey.type !== 'private')
    throw new CertificateTemplateError('the issuer key must be a private key');
  if (typeof certificate === 'string') return { ...readIssuer(certificate), privateKey };
  let read = resolvedIssuers.get(certificate);
  if (read === undefined) {
    read = readIssuer(certificate);
    resolvedIssuers.set(certificate, read);
  }
  return { ...read, privateKey };
}

function readIssuer(certificate: CertificateInput): Omit<ResolvedIssuer, 'privateKey'> {
  const parsed = parseCertificate(certificate);
  const basicConstraints = findExtension(parsed, Oid.basicConstraints);
  if (basicConstraints === undefined || !decodeBasicConstraints(basicConstraints.value).ca) {
    throw new CertificateTemplateError(
      'the issuer certificate is not a CA (BasicConstraints CA:TRUE is missing)',
    );
  }
  const keyUsage = findExtension(parsed, Oid.keyUsage);
  if (keyUsage !== undefined && !decodeKeyUsage(keyUsage.value).includes('keyCertSign')) {
    throw new CertificateTemplateError(
      'the issuer certificate may not sign certificates (KeyUsage lacks keyCertSign)',
    );
  }
  const subjectKeyId = findExtension(parsed, Oid.subjectKeyIdentifier);
  return {
    subjectDer: parsed.subjectDer,
    subjectKeyId: subjectKeyId && decodeSubjectKeyIdentifier(subjectKeyId.value),
    notAfter: parsed.notAfter,
  };
}

// ---- checks ----

function checkValidity({ notBefore, notAfter }: Validity, issuer?: ResolvedIssuer): void {
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) {
    throw new CertificateTemplateError('notBefore and notAfter must be valid dates');
  }
  if (wholeSeconds(notAfter) <= wholeSeconds(notBefore)) {
    throw new CertificateTemplateError(
      `notAfter (${notAfter.toISOString()}) must be after notBefore (${notBefore.toISOString()})`,
    );
  }
  // A child that outlives its issuer stops verifying early (Istio #18990); the caller must shorten it.
  if (issuer !== undefined && wholeSeconds(notAfter) > issuer.notAfter.getTime()) {
    throw new CertificateTemplateError(
      `notAfter (${notAfter.toISOString()}) is after the issuer's notAfter (${issuer.notAfter.toISOString()})`,
    );
  }
}

function wholeSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000) * 1000;
}

function checkOrganization(organization: string): void {
  if (organization.trim() === '') throw new CertificateTemplateError('organization must not be empty');
}

const DNS_NAME =
  /^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/;

function checkDnsName(dnsName: string): void {
  if (dnsName.length > 253 || !DNS_NAME.test(dnsName)) {
    throw new CertificateTemplateError(`"${dnsName}" is not a valid DNS name`);
  }
}

// ---- signing ----

interface CertificateTemplate {
  serialNumber: bigint | undefined;
  issuerNameDer: Buffer;
  subjectNameDer: Buffer;
  validity: Validity;
  subjectPublicKeyInfoDer: Buffer;
  extensions: Buffer[];
}

async function signCertificate(
  template: CertificateTemplate,
  signingKey: KeyObject,
): Promise<IssuedCertificate> {
  const algorithm = signatureAlgorithmFor(signingKey);
  const tbs = sequence(
    explicit(0, unsignedInteger(2)), // v3
    unsignedInteger(checkSerialNumber(template.serialNumber ?? randomSerialNumber())),
    algorithm.identifierDer,
    template.issuerNameDer,
    sequence(time(template.validity.notBefore), time(template.validity.notAfter)),
    template.subjectNameDer,
    template.subjectPublicKeyInfoDer,
    explicit(3, sequence(...template.extensions)),
  );
  const signature = await signOffThread(algorithm.hash, tbs, signingKey);
  const der = sequence(tbs, algorithm.identifierDer, bitString(signature));
  return { der, pem: encodePem('CERTIFICATE', der) };
}

function signOffThread(hash: string, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign(hash, data, key, (error, signature) => (error ? reject(error) : resolve(signature)));
  });
}

const MAX_SERIAL_NUMBER = 1n << 159n; // RFC 5280 §4.1.2.2: at most 20 octets, positive

function checkSerialNumber(serialNumber: bigint): bigint {
  if (serialNumber <= 0n || serialNumber >= MAX_SERIAL_NUMBER) {
    throw new CertificateTemplateError(`serial number ${serialNumber} must be positive and below 2^159`);
  }
  return serialNumber;
}

/** 16 random bytes with the top bit cleared: positive, non-zero, below 2^127 (so below Citadel's 2^128). */
export function randomSerialNumber(): bigint {
  for (;;) {
    const bytes = randomBytes(16);
    bytes[0]! &= 0x7f;
    const serial = BigInt(`0x${bytes.toString('hex')}`);
    if (serial !== 0n) return serial;
  }
}
