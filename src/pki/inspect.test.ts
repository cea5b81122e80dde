import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { CertificateParseError, parseCertificate } from './certificate-parser.js';
import { inspectCertificate } from './inspect.js';
import { encodePem } from './pem.js';
import { createTestCa, issueTestLeaf, type TestCa, type TestLeaf } from './testing.js';
import { verifyChain } from './verify.js';

const T0 = new Date('2025-01-01T00:00:00Z');

let ca: TestCa;
let leaf: TestLeaf;

beforeAll(async () => {
  ca = await createTestCa({ notBefore: T0 });
  leaf = await issueTestLeaf(ca.issuer, { notBefore: T0, namespace: 'shop', serviceAccount: 'cart' });
});

describe('inspectCertificate', () => {
  it('describes a workload leaf as a plain object', () => {
    expect(inspectCertificate(leaf.certificate.pem)).toEqual({
      serialNumberHex: expect.stringMatching(/^[0-9a-f]+$/),
      subject: '',
      issuer: 'O=cluster.local',
      notBefore: T0,
      notAfter: new Date('2025-01-02T00:00:00Z'),
      isCA: false,
      keyUsage: ['digitalSignature'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      uris: ['spiffe://cluster.local/ns/shop/sa/cart'],
      dnsNames: [],
      sanCritical: true,
      fingerprintSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      publicKeyAlgorithm: 'ECDSA_P256',
      authorityKeyId: inspectCertificate(ca.root.der).subjectKeyId,
    });
  });

  it("agrees with Node's X509Certificate on fingerprint, serial and validity", () => {
    const x509 = new X509Certificate(leaf.certificate.der);
    const info = inspectCertificate(x509);
    expect(info.fingerprintSha256).toBe(x509.fingerprint256.replaceAll(':', '').toLowerCase());
    expect(BigInt(`0x${info.serialNumberHex}`)).toBe(BigInt(`0x${x509.serialNumber}`));
    expect(info.notBefore).toEqual(new Date(x509.validFrom));
    expect(info.notAfter).toEqual(new Date(x509.validTo));
  });

  it('takes PEM text, DER, PEM bytes (as in Secret data) or an X509Certificate alike', () => {
    const expected = inspectCertificate(leaf.certificate.der);
    expect(inspectCertificate(leaf.certificate.pem)).toEqual(expected);
    expect(inspectCertificate(Buffer.from(leaf.certificate.pem))).toEqual(expected);
    expect(inspectCertificate(new X509Certificate(leaf.certificate.der))).toEqual(expected);
  });

  it.each([
    ['random bytes', Buffer.from('definitely not DER'), /^cannot parse certificate: /],
    [
      'a truncated certificate',
      () => leaf.certificate.der.subarray(0, 100),
      /^cannot parse certificate: truncated DER/,
    ],
    ['PEM without a block', 'hello', 'cannot read certificate PEM: no PEM block found'],
    ['a PEM key', encodePem('EC PRIVATE KEY', Buffer.from([1])), 'expected only CERTIFICATE blocks'],
    ['a chain', () => leaf.certificate.pem + ca.root.pem, 'expected one certificate, found 2'],
  ])('rejects %s with a clear error', (_, input, message) => {
    const value = typeof input === 'function' ? input() : input;
    expect(() => inspectCertificate(value)).toThrow(CertificateParseError);
    expect(() => inspectCertificate(value)).toThrow(message);
  });
});

describe('hostile certificates (found by test/fuzz, seed 20261130)', () => {
  /** The leaf with its EC point's 0x04 (uncompressed) prefix replaced: OpenSSL opens it, then fails on the key. */
  function withBrokenPublicKey(der: Buffer): Buffer {
    const spki = parseCertificate(der).subjectPublicKeyInfoDer;
    const at = der.indexOf(spki) + spki.length - 65; // the point: 0x04 || X || Y
    expect(der[at]).toBe(0x04);
    const broken = Buffer.from(der);
    broken[at] = 0x80;
    return broken;
  }

  it('reports a public key OpenSSL cannot decode as a CertificateParseError, not a crypto error', () => {
    const broken = withBrokenPublicKey(leaf.certificate.der);
    expect(() => new X509Certificate(broken)).not.toThrow();
    expect(() => inspectCertificate(broken)).toThrow(CertificateParseError);
    expect(() => inspectCertificate(broken)).toThrow(/cannot read the certificate's public key/);
  });

  it('makes verifyChain answer Unparsable for such a leaf instead of throwing', () => {
    const result = verifyChain({
      leaf: withBrokenPublicKey(leaf.certificate.der),
      roots: [ca.root.der],
      at: T0,
    });
    expect(result).toMatchObject({ ok: false, reason: 'Unparsable' });
  });
});
