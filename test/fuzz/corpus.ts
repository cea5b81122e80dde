// What the fuzz targets start from: real certificates, keys and CA Secrets,
// generated at run time (no key material is stored in the repository). The
// mutators turn these into the near-valid input that reaches deep into a
// parser, which purely random bytes rarely do.
import type { KeyObject } from 'node:crypto';
import { encodeCertificateRequest } from '../../src/csr/protocol.js';
import { parseCertificate } from '../../src/pki/certificate-parser.js';
import { buildCrl } from '../../src/pki/crl.js';
import { buildTestCsrDer, buildTestCsrPem, testKey } from '../../src/pki/csr-testing.js';
import { generateKeyPair, privateKeyToPem } from '../../src/pki/keys.js';
import { encodePem } from '../../src/pki/pem.js';
import { createTestCa, createTestIntermediate, issueTestLeaf } from '../../src/pki/testing.js';

export interface Corpus {
  /** Whole certificates: a root, an intermediate, ECDSA and RSA leaves. */
  certificates: Buffer[];
  /** The extnValue contents of every extension of those certificates. */
  extensionValues: Buffer[];
  /** Private keys in every encoding alcazar reads: PKCS#1, SEC1, PKCS#8 (DER). */
  privateKeyDers: Array<{ label: string; der: Buffer }>;
  /** A leaf and the key that matches it, for key/certificate checks. */
  leaf: { der: Buffer; key: KeyObject };
  /** A valid istio-ca-secret's data and a valid cacerts' data. */
  selfSignedData: Record<string, Buffer>;
  pluggedInData: Record<string, Buffer>;
  /** PKCS#10 requests (ECDSA and RSA, with SPIFFE and DNS names) and CRLs (empty and with entries). */
  csrs: Buffer[];
  crls: Buffer[];
  /** Encoded IstioCertificateRequest messages, as an agent sends them. */
  csrMessages: Buffer[];
  /** A valid CertificateAuthority spec with every field set. */
  caSpec: Record<string, unknown>;
  now: Date;
}

const PRIVATE_KEY_PKCS8 = 'PRIVATE KEY';

function keyDers(key: KeyObject): Array<{ label: string; der: Buffer }> {
  const native = key.asymmetricKeyType === 'rsa' ? 'RSA PRIVATE KEY' : 'EC PRIVATE KEY';
  const type = key.asymmetricKeyType === 'rsa' ? 'pkcs1' : 'sec1';
  return [
    { label: native, der: key.export({ type, format: 'der' }) },
    { label: PRIVATE_KEY_PKCS8, der: key.export({ type: 'pkcs8', format: 'der' }) },
  ];
}

export async function buildCorpus(): Promise<Corpus> {
  const now = new Date();
  const notBefore = new Date(now.getTime() - 60_000);
  const ca = await createTestCa({ notBefore });
  const intermediate = await createTestIntermediate(ca.issuer, { notBefore });
  const ecLeaf = await issueTestLeaf(intermediate.issuer, { notBefore, serviceAccount: 'fuzz' });
  const rsaKeys = await generateKeyPair('RSA_2048');
  const rsaLeaf = await issueTestLeaf(ca.issuer, { notBefore, keys: rsaKeys });
  const certificates = [
    ca.root.der,
    intermediate.certificate.der,
    ecLeaf.certificate.der,
    rsaLeaf.certificate.der,
  ];
  const extensionValues = certificates.flatMap((der) => parseCertificate(der).extensions.map((e) => e.value));
  const spiffe = 'spiffe://cluster.local/ns/default/sa/fuzz';
  const csrs = [
    buildTestCsrDer({ uris: [spiffe] }),
    buildTestCsrDer({ privateKey: testKey('RSA-2048'), uris: [spiffe], dnsNames: ['fuzz.default.svc'] }),
  ];
  const crlIssuer = { certificate: ca.root.der, privateKey: ca.keys.privateKey };
  const crl = (entries: number) =>
    buildCrl({
      issuer: crlIssuer,
      crlNumber: BigInt(entries + 1),
      thisUpdate: notBefore,
      nextUpdate: new Date(now.getTime() + 3_600_000),
      entries: Array.from({ length: entries }, (_, i) => ({
        serial: (0x1000 + i).toString(16),
        revokedAt: notBefore,
        reason: 'keyCompromise' as const,
      })),
    }).der;
  const csrMessages = [
    encodeCertificateRequest({ csr: buildTestCsrPem({ uris: [spiffe] }), validityDurationSeconds: 3600 }),
    encodeCertificateRequest({ csr: buildTestCsrPem({ uris: [spiffe] }), validityDurationSeconds: 0 }),
  ];
  return {
    csrs,
    crls: [crl(0), crl(3)],
    csrMessages,
    certificates,
    extensionValues,
    privateKeyDers: [...keyDers(ecLeaf.keys.privateKey), ...keyDers(rsaKeys.privateKey)],
    leaf: { der: ecLeaf.certificate.der, key: ecLeaf.keys.privateKey },
    selfSignedData: {
      'ca-cert.pem': Buffer.from(ca.root.pem),
      'ca-key.pem': Buffer.from(privateKeyToPem(ca.keys.privateKey)),
    },
    pluggedInData: {
      'ca-cert.pem': Buffer.from(intermediate.certificate.pem),
      'ca-key.pem': Buffer.from(privateKeyToPem(intermediate.keys.privateKey)),
      'root-cert.pem': Buffer.from(ca.root.pem),
      'cert-chain.pem': Buffer.from(intermediate.certificate.pem + ca.root.pem),
    },
    caSpec: {
      trustDomain: 'example.org',
      workloadCertificates: {
        ttl: '24h',
        keyAlgorithm: 'ECDSA_P256',
        gracePeriodRatio: 0.5,
        minGracePeriod: '10m',
        clockSkewAllowance: '5m',
      },
      rootCA: {
        mode: 'SelfSigned',
        selfSigned: { ttl: '87600h', keyAlgorithm: 'ECDSA_P256', rotationThreshold: 0.2 },
      },
      namespaces: { managedByDefault: true, alwaysManaged: ['istio-system'] },
    },
    now,
  };
}

/** PEM text of every certificate, for text-level mutation. */
export const certificatePems = (corpus: Corpus): string[] =>
  corpus.certificates.map((der) => encodePem('CERTIFICATE', der));
