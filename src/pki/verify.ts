/** Checks on issued certificates: chain of trust, key/certificate match, the X509-SVID profile. */
import { type KeyObject, randomBytes, sign, verify, X509Certificate } from 'node:crypto';
import {
  type CertificateInput,
  CertificateParseError,
  certificateDerOf,
  findExtension,
  type ParsedCertificate,
  parseCertificate,
} from './certificate-parser.js';
import { type CertificateInfo, describeCertificate, openWithNode } from './inspect.js';
import { Oid } from './oids.js';
import { decodeCertificatesPem, PemError } from './pem.js';
import type { Problem } from './problem.js';

export type ChainProblemReason =
  | 'Unparsable'
  | 'NoTrustedRoots'
  | 'LeafIsCA'
  | 'UnknownAuthority'
  | 'SignatureInvalid'
  | 'SignerNotCA'
  | 'SignerCannotSignCertificates'
  | 'PathLengthExceeded'
  | 'NotYetValid'
  | 'Expired';

export type ChainVerification = { ok: true } | ({ ok: false } & Problem<ChainProblemReason>);

/** Certificates as a list, or as one PEM bundle. */
export type CertificateBundleInput = readonly CertificateInput[] | string;

export interface ChainVerificationRequest {
  leaf: CertificateInput;
  /** Untrusted CA certificates that may complete the path (cert-chain.pem after the leaf). */
  intermediates?: CertificateBundleInput;
  /** Trust anchors (root-cert.pem). */
  roots: CertificateBundleInput;
  at: Date;
}

interface ChainMember {
  label: string;
  parsed: ParsedCertificate;
  x509: X509Certificate;
  info: CertificateInfo;
}

class ChainFailure extends Error {
  constructor(readonly problem: Problem<ChainProblemReason>) {
    super(problem.message);
  }
}

/**
 * Walks leaf → intermediates → one of the roots, checking each link's issuer name and signature, that every
 * signer is a CA allowed to sign certificates (within its path length), that the leaf is not a CA, and
 * that every certificate on the path is valid at `at`.
 */
export function verifyChain(request: ChainVerificationRequest): ChainVerification {
  try {
    const leaf = loadMember(request.leaf, 'leaf');
    const intermediates = loadBundle(request.intermediates ?? [], 'intermediate');
    const roots = loadBundle(request.roots, 'root');
    if (roots.length === 0) fail('NoTrustedRoots', 'no trusted root certificates were given');
    if (leaf.info.isCA) fail('LeafIsCA', 'the leaf is a CA certificate (BasicConstraints CA:TRUE)');
    const path = buildPath(leaf, intermediates, roots);
    for (const member of path) checkValidAt(member, request.at);
    return { ok: true };
  } catch (error) {
    if (error instanceof ChainFailure) return { ok: false, ...error.problem };
    throw error;
  }
}

function buildPath(leaf: ChainMember, intermediates: ChainMember[], roots: ChainMember[]): ChainMember[] {
  const path = [leaf];
  const unused = new Set(intermediates);
  for (let current = leaf; ; ) {
    const intermediatesBelow = path.length - 1;
    const root = findIssuer(current, roots);
    if (root.issuer) {
      checkSigner(root.issuer, intermediatesBelow, true);
      return [...path, root.issuer];
    }
    const intermediate = findIssuer(current, [...unused]);
    if (intermediate.issuer) {
      checkSigner(intermediate.issuer, intermediatesBelow, false);
      unused.delete(intermediate.issuer);
      path.push(intermediate.issuer);
      current = intermediate.issuer;
      continue;
    }
    const issuerName = current.info.issuer || '(empty name)';
    if (root.nameMatched || intermediate.nameMatched) {
      fail(
        'SignatureInvalid',
        `the signature on the ${current.label} does not verify with its issuer's key (${issuerName})`,
      );
    }
    fail(
      'UnknownAuthority',
      `no trusted root or given intermediate issued the ${current.label} (issuer ${issuerName})`,
    );
  }
}

/** The candidate that names `child` as issued by it and whose key verifies child's signature. */
function findIssuer(
  child: ChainMember,
  candidates: ChainMember[],
): { issuer?: ChainMember; nameMatched: boolean } {
  let nameMatched = false;
  for (const candidate of candidates) {
    if (!namesIssuer(candidate, child)) continue;
    if (child.x509.verify(candidate.x509.publicKey)) return { issuer: candidate, nameMatched: true };
    nameMatched = true;
  }
  return { nameMatched };
}

/**
 * OpenSSL's check (canonical name match, key identifiers) or, for signers OpenSSL skips because their
 * KeyUsage lacks keyCertSign, exact name bytes with compatible key identifiers — so those are reported as
 * unable to sign rather than as unknown.
 */
function namesIssuer(candidate: ChainMember, child: ChainMember): boolean {
  if (child.x509.checkIssued(candidate.x509)) return true;
  if (!child.parsed.issuerDer.equals(candidate.parsed.subjectDer)) return false;
  const { authorityKeyId } = child.info;
  const { subjectKeyId } = candidate.info;
  return authorityKeyId === undefined || subjectKeyId === undefined || authorityKeyId === subjectKeyId;
}

function checkSigner(signer: ChainMember, intermediatesBelow: number, isRoot: boolean): void {
  const { info, label } = signer;
  if (!info.isCA) fail('SignerNotCA', `the ${label} (${info.subject}) signs certificates but is not a CA`);
  const hasKeyUsage = findExtension(signer.parsed, Oid.keyUsage) !== undefined;
  // RFC 5280 lets a trust anchor omit KeyUsage (OpenSSL's default roots do); SPIFFE requires it below the root.
  if (hasKeyUsage ? !info.keyUsage.includes('keyCertSign') : !isRoot) {
    fail('SignerCannotSignCertificates', `the ${label} (${info.subject}) lacks KeyUsage keyCertSign`);
  }
  if (info.pathLenConstraint !== undefined && intermediatesBelow > info.pathLenConstraint) {
    fail(
      'PathLengthExceeded',
      `the ${label} (${info.subject}) allows ${info.pathLenConstraint} intermediates below it, the path has ${intermediatesBelow}`,
    );
  }
}

function checkValidAt({ label, info }: ChainMember, at: Date): void {
  if (at < info.notBefore) {
    fail(
      'NotYetValid',
      `the ${label} is not valid before ${info.notBefore.toISOString()} (checked at ${at.toISOString()})`,
    );
  }
  if (at > info.notAfter) {
    fail(
      'Expired',
      `the ${label} expired at ${info.notAfter.toISOString()} (checked at ${at.toISOString()})`,
    );
  }
}

function loadBundle(bundle: CertificateBundleInput, kind: string): ChainMember[] {
  let certificates: readonly CertificateInput[];
  if (typeof bundle === 'string') {
    try {
      certificates = bundle.trim() === '' ? [] : decodeCertificatesPem(bundle);
    } catch (error) {
      if (error instanceof PemError) fail('Unparsable', `cannot read the ${kind} bundle: ${error.message}`);
      throw error;
    }
  } else {
    certificates = bundle;
  }
  return certificates.map((certificate, index) => loadMember(certificate, `${kind} #${index + 1}`));
}

function loadMember(input: CertificateInput, label: string): ChainMember {
  try {
    const parsed = parseCertificate(input);
    const x509 = openWithNode(parsed.der);
    return { label, parsed, x509, info: describeCertificate(parsed, x509) };
  } catch (error) {
    if (error instanceof CertificateParseError) fail('Unparsable', `the ${label}: ${error.message}`);
    throw error;
  }
}

function fail(reason: ChainProblemReason, message: string): never {
  throw new ChainFailure({ reason, message });
}

/**
 * True when `privateKey` is the private half of the certificate's public key. OpenSSL's own check
 * compares only the public key a SEC1 or PKCS#8 file carries next to the private one, so a file
 * whose private scalar was edited and whose public part was not passes it. A signature made with
 * the private key and verified with the certificate's public key proves the private half itself.
 */
export function keyMatchesCertificate(privateKey: KeyObject, certificate: CertificateInput): boolean {
  if (privateKey.type !== 'private')
    throw new TypeError(`expected a private key, got a ${privateKey.type} key`);
  const x509 =
    certificate instanceof X509Certificate ? certificate : openWithNode(certificateDerOf(certificate));
  if (!x509.checkPrivateKey(privateKey)) return false;
  const probe = randomBytes(32);
  try {
    return verify('sha256', probe, x509.publicKey, sign('sha256', probe, privateKey));
  } catch {
    return false;
  }
}

export type WorkloadLeafProblemReason =
  | 'Unparsable'
  | 'SpiffeIdMissing'
  | 'MultipleUriSans'
  | 'SpiffeIdMismatch'
  | 'LeafIsCA'
  | 'LeafCanSignCertificates'
  | 'DigitalSignatureMissing';

/** Everything that keeps `certificate` from being a valid X509-SVID for `expectedSpiffeId`; empty when none. */
export function validateWorkloadLeaf(
  certificate: CertificateInput,
  expectedSpiffeId: string,
): Problem<WorkloadLeafProblemReason>[] {
  let info: CertificateInfo;
  try {
    const parsed = parseCertificate(certificate);
    info = describeCertificate(parsed, openWithNode(parsed.der));
  } catch (error) {
    if (error instanceof CertificateParseError) return [{ reason: 'Unparsable', message: error.message }];
    throw error;
  }
  const problems: Problem<WorkloadLeafProblemReason>[] = [];
  const problem = (reason: WorkloadLeafProblemReason, message: string) => problems.push({ reason, message });

  if (info.uris.length === 0) problem('SpiffeIdMissing', 'the certificate has no URI SAN');
  else if (info.uris.length > 1) {
    problem(
      'MultipleUriSans',
      `the certificate has ${info.uris.length} URI SANs (${info.uris.join(', ')}); exactly one is allowed`,
    );
  } else if (info.uris[0] !== expectedSpiffeId) {
    problem('SpiffeIdMismatch', `the certificate is for ${info.uris[0]}, expected ${expectedSpiffeId}`);
  }
  if (info.isCA) problem('LeafIsCA', 'the certificate is a CA (BasicConstraints CA:TRUE)');
  const signingUsages = info.keyUsage.filter((usage) => usage === 'keyCertSign' || usage === 'cRLSign');
  if (signingUsages.length > 0) {
    problem('LeafCanSignCertificates', `the certificate's KeyUsage includes ${signingUsages.join(' and ')}`);
  }
  if (!info.keyUsage.includes('digitalSignature')) {
    problem('DigitalSignatureMissing', "the certificate's KeyUsage lacks digitalSignature");
  }
  return problems;
}
