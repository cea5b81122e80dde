import { createPrivateKey, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSelfSignedRoot, issueIntermediateCertificate } from './certificate.js';
import { generateKeyPair, type KeyPair, privateKeyToPem } from './keys.js';
import { encodeCertificatesPem, encodePem } from './pem.js';
import {
  createTestCa,
  createTestIntermediate,
  issueTestLeaf,
  type TestCa,
  type TestIntermediate,
  type TestLeaf,
} from './testing.js';
import { keyMatchesCertificate, validateWorkloadLeaf, verifyChain } from './verify.js';

const T0 = new Date('2025-01-01T00:00:00Z');
const HOUR = 60 * 60 * 1000;
const AT = new Date(T0.getTime() + HOUR);

let rsaKeys: KeyPair;
let ca: TestCa;
let intermediate: TestIntermediate;
let leaf: TestLeaf;
let leafUnderIntermediate: TestLeaf;

beforeAll(async () => {
  rsaKeys = await generateKeyPair('RSA_2048');
  ca = await createTestCa({ notBefore: T0 });
  intermediate = await createTestIntermediate(ca.issuer, { notBefore: T0 });
  [leaf, leafUnderIntermediate] = await Promise.all([
    issueTestLeaf(ca.issuer, { notBefore: T0, serviceAccount: 'web' }),
    issueTestLeaf(intermediate.issuer, { notBefore: T0, serviceAccount: 'api' }),
  ]);
});

// Present in node-forge, missing from @types/node-forge.
const forgeTbsCertificate = (
  forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }
).getTBSCertificate;

/** A copy of `der` with one byte changed. */
function flipByte(der: Buffer, index: number): Buffer {
  const copy = Buffer.from(der);
  copy[index]! ^= 0x01;
  return copy;
}

describe('verifyChain', () => {
  it('accepts a leaf signed directly by the root', () => {
    expect(verifyChain({ leaf: leaf.certificate.pem, roots: [ca.root.pem], at: AT })).toEqual({ ok: true });
  });

  it('accepts root → intermediate → leaf, with the chain as a list or a PEM bundle', () => {
    const leafPem = leafUnderIntermediate.certificate.pem;
    expect(
      verifyChain({
        leaf: leafPem,
        intermediates: [intermediate.certificate.der],
        roots: [ca.root.der],
        at: AT,
      }),
    ).toEqual({ ok: true });
    expect(
      verifyChain({ leaf: leafPem, intermediates: intermediate.certificate.pem, roots: ca.root.pem, at: AT }),
    ).toEqual({ ok: true });
  });

  it('accepts an RSA hierarchy', async () => {
    const rsaCa = await createTestCa({ notBefore: T0, keys: rsaKeys });
    const rsaLeaf = await issueTestLeaf(rsaCa.issuer, { notBefore: T0, keys: rsaKeys });
    expect(verifyChain({ leaf: rsaLeaf.certificate.der, roots: [rsaCa.root.der], at: AT })).toEqual({
      ok: true,
    });
  });

  it('accepts a P-384 root plugged in from elsewhere', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const root = await createSelfSignedRoot({
      ...p384,
      organization: 'cluster.local',
      notBefore: T0,
      notAfter: AT,
    });
    const p384Leaf = await issueTestLeaf(
      { certificate: root.der, privateKey: p384.privateKey },
      { notBefore: T0, lifetimeMs: HOUR },
    );
    expect(verifyChain({ leaf: p384Leaf.certificate.der, roots: [root.der], at: AT })).toEqual({ ok: true });
  });

  it('finds the right root among roots with the same subject during a rotation', async () => {
    const next = await createTestCa({ notBefore: T0 });
    expect(verifyChain({ leaf: leaf.certificate.der, roots: [next.root.der, ca.root.der], at: AT })).toEqual({
      ok: true,
    });
  });

  it('detects a missing intermediate', () => {
    const result = verifyChain({ leaf: leafUnderIntermediate.certificate.der, roots: [ca.root.der], at: AT });
    expect(result).toMatchObject({ ok: false, reason: 'UnknownAuthority' });
  });

  it('detects a leaf from another root with the same name', async () => {
    const other = await createTestCa({ notBefore: T0 });
    const result = verifyChain({ leaf: leaf.certificate.der, roots: [other.root.der], at: AT });
    expect(result).toEqual({
      ok: false,
      reason: 'UnknownAuthority',
      message: 'no trusted root or given intermediate issued the leaf (issuer O=cluster.local)',
    });
  });

  it('detects a tampered signature', () => {
    const tampered = flipByte(leaf.certificate.der, leaf.certificate.der.length - 1);
    expect(verifyChain({ leaf: tampered, roots: [ca.root.der], at: AT })).toMatchObject({
      ok: false,
      reason: 'SignatureInvalid',
    });
  });

  it('detects a tampered SPIFFE ID', () => {
    const der = leaf.certificate.der;
    const tampered = flipByte(der, der.indexOf(Buffer.from('/sa/web')) + 5);
    expect(validateWorkloadLeaf(tampered, leaf.spiffeId)[0]?.reason).toBe('SpiffeIdMismatch');
    expect(verifyChain({ leaf: tampered, roots: [ca.root.der], at: AT })).toMatchObject({
      reason: 'SignatureInvalid',
    });
  });

  it('detects an expired leaf', () => {
    const result = verifyChain({
      leaf: leaf.certificate.der,
      roots: [ca.root.der],
      at: new Date(T0.getTime() + 25 * HOUR),
    });
    expect(result).toEqual({
      ok: false,
      reason: 'Expired',
      message: 'the leaf expired at 2025-01-02T00:00:00.000Z (checked at 2025-01-02T01:00:00.000Z)',
    });
  });

  it('detects a leaf that is not valid yet', () => {
    const result = verifyChain({
      leaf: leaf.certificate.der,
      roots: [ca.root.der],
      at: new Date(T0.getTime() - 1000),
    });
    expect(result).toMatchObject({ ok: false, reason: 'NotYetValid' });
  });

  it('detects an expired intermediate under a still-valid leaf', async () => {
    // The same intermediate key and name, re-issued for just one hour.
    const shortLived = await issueIntermediateCertificate({
      publicKey: intermediate.keys.publicKey,
      organization: 'cluster.local',
      commonName: 'alcazar test intermediate',
      notBefore: T0,
      notAfter: new Date(T0.getTime() + HOUR),
      issuer: ca.issuer,
    });
    const result = verifyChain({
      leaf: leafUnderIntermediate.certificate.der,
      intermediates: [shortLived.der],
      roots: [ca.root.der],
      at: new Date(T0.getTime() + 2 * HOUR),
    });
    expect(result).toEqual({
      ok: false,
      reason: 'Expired',
      message:
        'the intermediate #1 expired at 2025-01-01T01:00:00.000Z (checked at 2025-01-01T02:00:00.000Z)',
    });
  });

  it('refuses a CA certificate as the leaf', () => {
    const result = verifyChain({ leaf: intermediate.certificate.der, roots: [ca.root.der], at: AT });
    expect(result).toMatchObject({ ok: false, reason: 'LeafIsCA' });
  });

  it('enforces a path length constraint', async () => {
    const constrained = await issueIntermediateCertificate({
      publicKey: intermediate.keys.publicKey,
      organization: 'cluster.local',
      commonName: 'alcazar test intermediate',
      notBefore: T0,
      notAfter: new Date(T0.getTime() + 100 * HOUR),
      issuer: ca.issuer,
      pathLenConstraint: 0,
    });
    const second = await createTestIntermediate(intermediate.issuer, {
      notBefore: T0,
      organization: 'second',
    });
    const deepLeaf = await issueTestLeaf(second.issuer, { notBefore: T0 });
    const result = verifyChain({
      leaf: deepLeaf.certificate.der,
      intermediates: [second.certificate.der, constrained.der],
      roots: [ca.root.der],
      at: AT,
    });
    expect(result).toMatchObject({ ok: false, reason: 'PathLengthExceeded' });
  });

  it('reports unparsable input and missing roots', () => {
    expect(
      verifyChain({ leaf: Buffer.from('not a certificate'), roots: [ca.root.der], at: AT }),
    ).toMatchObject({
      ok: false,
      reason: 'Unparsable',
    });
    expect(verifyChain({ leaf: leaf.certificate.der, roots: 'garbage', at: AT })).toMatchObject({
      reason: 'Unparsable',
    });
    expect(verifyChain({ leaf: leaf.certificate.der, roots: [], at: AT })).toMatchObject({
      reason: 'NoTrustedRoots',
    });
  });

  describe('with signers built by another tool', () => {
    // node-forge builds certificates our templates refuse to: signers that are not allowed to sign.
    let forgeKey: forge.pki.rsa.PrivateKey;

    beforeAll(() => {
      forgeKey = forge.pki.privateKeyFromPem(privateKeyToPem(rsaKeys.privateKey)) as forge.pki.rsa.PrivateKey;
    });

    function forgeCertificate(
      subject: string,
      issuer: string,
      extensions: object[],
      altNames: string[] = [],
    ) {
      const certificate = forge.pki.createCertificate();
      certificate.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
      certificate.serialNumber = '01';
      certificate.validity.notBefore = T0;
      certificate.validity.notAfter = new Date(T0.getTime() + 10 * HOUR);
      certificate.setSubject([{ shortName: 'O', value: subject }]);
      certificate.setIssuer([{ shortName: 'O', value: issuer }]);
      const san = { name: 'subjectAltName', altNames: altNames.map((value) => ({ type: 6, value })) };
      certificate.setExtensions(altNames.length > 0 ? [...extensions, san] : extensions);
      // forge builds the TBSCertificate; node:crypto signs it (forge's pure-JS RSA is slow).
      certificate.signatureOid = forge.pki.oids.sha256WithRSAEncryption!;
      certificate.siginfo.algorithmOid = certificate.signatureOid;
      const tbs = forge.asn1.toDer(forgeTbsCertificate(certificate)).getBytes();
      certificate.signature = sign('sha256', Buffer.from(tbs, 'binary'), rsaKeys.privateKey).toString(
        'binary',
      );
      return Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(certificate)).getBytes(), 'binary');
    }

    it('detects a signer that is not a CA', () => {
      const signer = forgeCertificate('signer', 'signer', [{ name: 'basicConstraints', cA: false }]);
      const child = forgeCertificate('child', 'signer', [{ name: 'basicConstraints', cA: false }]);
      expect(verifyChain({ leaf: child, roots: [signer], at: AT })).toMatchObject({
        ok: false,
        reason: 'SignerNotCA',
      });
    });

    it('detects a signer without keyCertSign', () => {
      const signer = forgeCertificate('signer', 'signer', [
        { name: 'basicConstraints', cA: true },
        { name: 'keyUsage', digitalSignature: true },
      ]);
      const child = forgeCertificate('child', 'signer', [{ name: 'basicConstraints', cA: false }]);
      expect(verifyChain({ leaf: child, roots: [signer], at: AT })).toMatchObject({
        ok: false,
        reason: 'SignerCannotSignCertificates',
      });
    });

    it('flags a leaf with two URI SANs', () => {
      const twoUris = forgeCertificate('x', 'x', [], ['spiffe://td/ns/a/sa/b', 'spiffe://td/ns/c/sa/d']);
      expect(validateWorkloadLeaf(twoUris, 'spiffe://td/ns/a/sa/b').map((p) => p.reason)).toEqual([
        'MultipleUriSans',
        'DigitalSignatureMissing',
      ]);
    });
  });
});

describe('keyMatchesCertificate', () => {
  it("is true for the certificate's own key", () => {
    expect(keyMatchesCertificate(leaf.keys.privateKey, leaf.certificate.pem)).toBe(true);
  });

  it('is false for another key of the same or another algorithm', () => {
    expect(keyMatchesCertificate(leafUnderIntermediate.keys.privateKey, leaf.certificate.pem)).toBe(false);
    expect(keyMatchesCertificate(rsaKeys.privateKey, leaf.certificate.pem)).toBe(false);
  });

  it('is false for a SEC1 key whose private scalar was edited while its public key was kept', () => {
    const sec1 = leaf.keys.privateKey.export({ format: 'der', type: 'sec1' });
    // ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING (32 bytes), [0] curve, [1] public key }
    expect([...sec1.subarray(0, 7)]).toEqual([0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20]);
    const edited = Buffer.from(sec1);
    edited[38]! ^= 0x01;
    const key = createPrivateKey({ key: edited, format: 'der', type: 'sec1' });
    expect(key.export({ format: 'jwk' }).x).toBe(leaf.keys.privateKey.export({ format: 'jwk' }).x);
    expect(new X509Certificate(leaf.certificate.pem).checkPrivateKey(key)).toBe(true);
    expect(keyMatchesCertificate(key, leaf.certificate.pem)).toBe(false);
  });
});

describe('validateWorkloadLeaf', () => {
  it('finds nothing wrong with a leaf we issued', () => {
    expect(validateWorkloadLeaf(leaf.certificate.pem, 'spiffe://cluster.local/ns/default/sa/web')).toEqual(
      [],
    );
  });

  it('reports a leaf for another identity', () => {
    expect(validateWorkloadLeaf(leaf.certificate.pem, 'spiffe://cluster.local/ns/default/sa/other')).toEqual([
      {
        reason: 'SpiffeIdMismatch',
        message:
          'the certificate is for spiffe://cluster.local/ns/default/sa/web, expected spiffe://cluster.local/ns/default/sa/other',
      },
    ]);
  });

  it('reports everything wrong with using a CA certificate as a workload leaf', () => {
    expect(
      validateWorkloadLeaf(ca.root.der, 'spiffe://cluster.local/ns/default/sa/web').map((p) => p.reason),
    ).toEqual(['SpiffeIdMissing', 'LeafIsCA', 'LeafCanSignCertificates', 'DigitalSignatureMissing']);
  });

  it('reports unparsable input as a problem rather than throwing', () => {
    expect(validateWorkloadLeaf(encodePem('CERTIFICATE', Buffer.from('junk')), 'spiffe://td')).toEqual([
      { reason: 'Unparsable', message: expect.stringMatching(/^cannot parse certificate/) },
    ]);
    expect(
      validateWorkloadLeaf(encodeCertificatesPem([leaf.certificate.der, leaf.certificate.der]), 'x'),
    ).toEqual([{ reason: 'Unparsable', message: 'expected one certificate, found 2' }]);
  });
});
