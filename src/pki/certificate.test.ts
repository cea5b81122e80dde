import { createHash, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createSelfSignedRoot,
  issueIntermediateCertificate,
  issueLeafCertificate,
  randomSerialNumber,
} from './certificate.js';
import { findExtension, parseCertificate } from './certificate-parser.js';
import { inspectCertificate } from './inspect.js';
import { generateKeyPair, type KeyPair, privateKeyToPem } from './keys.js';
import { Oid } from './oids.js';
import { createTestCa, issueTestLeaf, type TestCa } from './testing.js';

const T0 = new Date('2025-01-01T00:00:00Z');
const HOUR = 60 * 60 * 1000;
const SPIFFE_ID = 'spiffe://cluster.local/ns/default/sa/web';

let rsaKeys: KeyPair;
let ecCa: TestCa;
let rsaCa: TestCa;

beforeAll(async () => {
  rsaKeys = await generateKeyPair('RSA_2048');
  [ecCa, rsaCa] = await Promise.all([
    createTestCa({ notBefore: T0 }),
    createTestCa({ notBefore: T0, algorithm: 'RSA_2048', keys: rsaKeys }),
  ]);
});

async function ecLeaf(overrides: { dnsNames?: string[]; serialNumber?: bigint } = {}) {
  const keys = await generateKeyPair('ECDSA_P256');
  return issueLeafCertificate({
    publicKey: keys.publicKey,
    spiffeId: SPIFFE_ID,
    notBefore: T0,
    notAfter: new Date(T0.getTime() + 24 * HOUR),
    issuer: ecCa.issuer,
    ...overrides,
  });
}

/** Independent of our own DER reader: node-forge's ASN.1 parser. */
function forgeTbsFields(der: Buffer): forge.asn1.Asn1[] {
  const certificate = forge.asn1.fromDer(der.toString('binary'));
  const tbs = (certificate.value as forge.asn1.Asn1[])[0]!;
  return tbs.value as forge.asn1.Asn1[];
}
const forgeDer = (node: forge.asn1.Asn1) => Buffer.from(forge.asn1.toDer(node).getBytes(), 'binary');

describe('a workload leaf', () => {
  it('has an empty subject and a critical SAN holding exactly the SPIFFE ID', async () => {
    const info = inspectCertificate((await ecLeaf()).der);
    expect(info.subject).toBe('');
    expect(info.uris).toEqual([SPIFFE_ID]);
    expect(info.dnsNames).toEqual([]);
    expect(info.sanCritical).toBe(true);
  });

  it('adds DNS names next to the one URI', async () => {
    const info = inspectCertificate((await ecLeaf({ dnsNames: ['web.default.svc', '*.web.example'] })).der);
    expect(info.uris).toEqual([SPIFFE_ID]);
    expect(info.dnsNames).toEqual(['web.default.svc', '*.web.example']);
  });

  it('is a v3 end-entity certificate for serverAuth and clientAuth', async () => {
    const leaf = await ecLeaf();
    const parsed = parseCertificate(leaf.der);
    const info = inspectCertificate(leaf.der);
    expect(parsed.version).toBe(3);
    expect(info.isCA).toBe(false);
    expect(findExtension(parsed, Oid.basicConstraints)?.critical).toBe(true);
    expect(findExtension(parsed, Oid.keyUsage)?.critical).toBe(true);
    expect(info.extKeyUsage).toEqual(['serverAuth', 'clientAuth']);
    expect(new X509Certificate(leaf.der).ca).toBe(false);
  });

  it('for an ECDSA key carries only digitalSignature', async () => {
    expect(inspectCertificate((await ecLeaf()).der).keyUsage).toEqual(['digitalSignature']);
  });

  it('for an RSA key carries keyEncipherment too', async () => {
    const leaf = await issueTestLeaf(ecCa.issuer, { notBefore: T0, keys: rsaKeys });
    const info = inspectCertificate(leaf.certificate.der);
    expect(info.keyUsage).toEqual(['digitalSignature', 'keyEncipherment']);
    expect(info.publicKeyAlgorithm).toBe('RSA_2048');
  });

  it("names its issuer by the issuer's SubjectKeyIdentifier", async () => {
    const root = inspectCertificate(ecCa.root.der);
    expect(root.subjectKeyId).toMatch(/^[0-9a-f]{40}$/);
    expect(inspectCertificate((await ecLeaf()).der).authorityKeyId).toBe(root.subjectKeyId);
  });

  it('copies the Issuer name byte for byte from the issuer certificate subject', async () => {
    const leafIssuer = forgeDer(forgeTbsFields((await ecLeaf()).der)[3]!);
    const rootSubject = forgeDer(forgeTbsFields(ecCa.root.der)[5]!);
    expect(leafIssuer).toEqual(rootSubject);
  });

  it("keeps a foreign issuer's name encoding instead of re-encoding it (Istio #19644)", async () => {
    // A root made by another tool, with O as a UTF8String where we would write a PrintableString.
    const forgeKey = forge.pki.privateKeyFromPem(
      privateKeyToPem(rsaKeys.privateKey),
    ) as forge.pki.rsa.PrivateKey;
    const foreign = forge.pki.createCertificate();
    foreign.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
    foreign.serialNumber = '01';
    foreign.validity.notBefore = T0;
    foreign.validity.notAfter = new Date(T0.getTime() + 1000 * HOUR);
    // @types/node-forge types valueTagClass as an ASN.1 class; forge reads it as the value's universal type.
    const name = [
      { shortName: 'O', value: 'cluster.local', valueTagClass: forge.asn1.Type.UTF8 },
    ] as unknown as forge.pki.CertificateField[];
    foreign.setSubject(name);
    foreign.setIssuer(name);
    foreign.setExtensions([{ name: 'basicConstraints', cA: true, critical: true }]);
    foreign.sign(forgeKey, forge.md.sha256.create());
    const foreignDer = Buffer.from(
      forge.asn1.toDer(forge.pki.certificateToAsn1(foreign)).getBytes(),
      'binary',
    );

    const leaf = await issueLeafCertificate({
      publicKey: (await generateKeyPair('ECDSA_P256')).publicKey,
      spiffeId: SPIFFE_ID,
      notBefore: T0,
      notAfter: new Date(T0.getTime() + HOUR),
      issuer: { certificate: foreignDer, privateKey: rsaKeys.privateKey },
    });
    const foreignSubject = parseCertificate(foreignDer).subjectDer;
    expect(foreignSubject.includes(Buffer.from([0x0c, 13]))).toBe(true); // UTF8String, 13 bytes
    expect(parseCertificate(leaf.der).issuerDer).toEqual(foreignSubject);
    expect(new X509Certificate(leaf.der).verify(new X509Certificate(foreignDer).publicKey)).toBe(true);
  });

  it('has a random positive serial below 2^128', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const { serialNumberHex } = inspectCertificate((await ecLeaf()).der);
      const serial = BigInt(`0x${serialNumberHex}`);
      expect(serial).toBeGreaterThan(0n);
      expect(serial).toBeLessThan(1n << 128n);
      serials.add(serialNumberHex);
    }
    expect(serials.size).toBe(20);
  });

  it('uses a given serial number', async () => {
    expect(inspectCertificate((await ecLeaf({ serialNumber: 0xabcdefn })).der).serialNumberHex).toBe(
      'abcdef',
    );
    await expect(ecLeaf({ serialNumber: 0n })).rejects.toThrow('must be positive');
  });

  it('takes its validity from the caller, in whole seconds', async () => {
    const leaf = await issueLeafCertificate({
      publicKey: rsaKeys.publicKey,
      spiffeId: SPIFFE_ID,
      notBefore: new Date('2025-03-04T05:06:07.890Z'),
      notAfter: new Date('2025-03-05T05:06:07.890Z'),
      issuer: ecCa.issuer,
    });
    const info = inspectCertificate(leaf.der);
    expect(info.notBefore.toISOString()).toBe('2025-03-04T05:06:07.000Z');
    expect(info.notAfter.toISOString()).toBe('2025-03-05T05:06:07.000Z');
  });

  it('is a pure function of its inputs (RSA signatures are deterministic)', async () => {
    const request = {
      publicKey: rsaKeys.publicKey,
      spiffeId: SPIFFE_ID,
      notBefore: T0,
      notAfter: new Date(T0.getTime() + HOUR),
      issuer: rsaCa.issuer,
      serialNumber: 42n,
    };
    const [first, second] = await Promise.all([issueLeafCertificate(request), issueLeafCertificate(request)]);
    expect(first.der).toEqual(second.der);
  });

  it.each([
    [{ spiffeId: 'spiffe://Cluster.local/ns/a/sa/b' }, 'must be lowercase'],
    [{ dnsNames: ['bad name'] }, '"bad name" is not a valid DNS name'],
    [{ notAfter: T0 }, 'must be after notBefore'],
    [{ notAfter: new Date(T0.getTime() + 20 * 365 * 24 * HOUR) }, "is after the issuer's notAfter"],
  ])('refuses %j', async (override, message) => {
    const keys = await generateKeyPair('ECDSA_P256');
    const request = {
      publicKey: keys.publicKey,
      spiffeId: SPIFFE_ID,
      notBefore: T0,
      notAfter: new Date(T0.getTime() + HOUR),
      issuer: ecCa.issuer,
    };
    await expect(issueLeafCertificate({ ...request, ...override })).rejects.toThrow(message);
  });

  it('refuses an issuer that is not a CA', async () => {
    const notACa = await issueTestLeaf(ecCa.issuer, { notBefore: T0 });
    const request = {
      publicKey: notACa.keys.publicKey,
      spiffeId: SPIFFE_ID,
      notBefore: T0,
      notAfter: new Date(T0.getTime() + HOUR),
      issuer: { certificate: notACa.certificate.pem, privateKey: notACa.keys.privateKey },
    };
    await expect(issueLeafCertificate(request)).rejects.toThrow('the issuer certificate is not a CA');
    // As DER bytes (what an authority passes, read once per object): refused every time, not only once.
    const asDer = { ...request, issuer: { ...request.issuer, certificate: notACa.certificate.der } };
    await expect(issueLeafCertificate(asDer)).rejects.toThrow('the issuer certificate is not a CA');
    await expect(issueLeafCertificate(asDer)).rejects.toThrow('the issuer certificate is not a CA');
  });

  it('reads an issuer given as bytes once, and each issuer object for itself', async () => {
    const other = await createTestCa({ notBefore: T0, trustDomain: 'other.example' });
    const keys = await generateKeyPair('ECDSA_P256');
    const leafFrom = async (issuer: typeof ecCa.issuer) =>
      parseCertificate(
        (
          await issueLeafCertificate({
            publicKey: keys.publicKey,
            spiffeId: SPIFFE_ID,
            notBefore: T0,
            notAfter: new Date(T0.getTime() + HOUR),
            issuer,
          })
        ).der,
      );
    const first = await leafFrom(ecCa.issuer);
    const again = await leafFrom(ecCa.issuer);
    const fromOther = await leafFrom(other.issuer);
    expect(again.issuerDer).toEqual(first.issuerDer);
    expect(fromOther.issuerDer).not.toEqual(first.issuerDer);
    expect(fromOther.issuerDer).toEqual(parseCertificate(other.issuer.certificate).subjectDer);
  });
});

describe('a self-signed root', () => {
  it('is O=<trust domain> on both sides, CA:TRUE, keyCertSign + cRLSign, all critical', () => {
    const parsed = parseCertificate(ecCa.root.pem);
    const info = inspectCertificate(ecCa.root.pem);
    expect(info.subject).toBe('O=cluster.local');
    expect(info.issuer).toBe('O=cluster.local');
    expect(info.isCA).toBe(true);
    expect(info.keyUsage).toEqual(['keyCertSign', 'cRLSign']);
    expect(findExtension(parsed, Oid.basicConstraints)?.critical).toBe(true);
    expect(findExtension(parsed, Oid.keyUsage)?.critical).toBe(true);
    expect(parsed.issuerDer).toEqual(parsed.subjectDer);
  });

  it('verifies with its own key', () => {
    const x509 = new X509Certificate(ecCa.root.der);
    expect(x509.verify(ecCa.keys.publicKey)).toBe(true);
    expect(x509.checkIssued(x509)).toBe(true);
  });

  it('identifies its key by the SHA-1 of the public key bits', () => {
    const spki = ecCa.keys.publicKey.export({ type: 'spki', format: 'der' });
    const publicKeyBits = spki.subarray(spki.length - 65); // uncompressed P-256 point
    expect(inspectCertificate(ecCa.root.der).subjectKeyId).toBe(
      createHash('sha1').update(publicKeyBits).digest('hex'),
    );
  });

  it('keeps the same subject bytes when rotated to a new key (Istio #19644)', async () => {
    const rotated = await createTestCa({ notBefore: new Date(T0.getTime() + 1000 * HOUR) });
    expect(parseCertificate(rotated.root.der).subjectDer).toEqual(parseCertificate(ecCa.root.der).subjectDer);
    const [oldLeaf, newLeaf] = await Promise.all([
      issueTestLeaf(ecCa.issuer, { notBefore: T0 }),
      issueTestLeaf(rotated.issuer, { notBefore: new Date(T0.getTime() + 1000 * HOUR) }),
    ]);
    expect(parseCertificate(newLeaf.certificate.der).issuerDer).toEqual(
      parseCertificate(oldLeaf.certificate.der).issuerDer,
    );
  });

  it('encodes O as PrintableString like Go (and Citadel), UTF8String when it must', async () => {
    const printable = parseCertificate(ecCa.root.der).subjectDer;
    expect(printable.toString('hex')).toBe(
      `301831163014060355040a130d${Buffer.from('cluster.local').toString('hex')}`,
    );
    const underscored = await createSelfSignedRoot({
      ...ecCa.keys,
      organization: 'my_td',
      notBefore: T0,
      notAfter: new Date(T0.getTime() + HOUR),
    });
    expect(parseCertificate(underscored.der).subjectDer.toString('hex')).toContain(
      `0c05${Buffer.from('my_td').toString('hex')}`,
    );
  });

  it('refuses a public key that does not belong to the private key', async () => {
    const request = { organization: 'cluster.local', notBefore: T0, notAfter: new Date(T0.getTime() + HOUR) };
    await expect(
      createSelfSignedRoot({ ...request, privateKey: ecCa.keys.privateKey, publicKey: rsaKeys.publicKey }),
    ).rejects.toThrow('publicKey is not the public half of privateKey');
  });

  it('can carry a common name after O', async () => {
    const root = await createSelfSignedRoot({
      privateKey: ecCa.keys.privateKey,
      organization: 'cluster.local',
      commonName: 'alcazar root',
      notBefore: T0,
      notAfter: new Date(T0.getTime() + HOUR),
    });
    expect(inspectCertificate(root.der).subject).toBe('O=cluster.local, CN=alcazar root');
  });
});

describe('an intermediate', () => {
  it('is a CA under its issuer with a path length, named by key identifiers', async () => {
    const keys = await generateKeyPair('ECDSA_P256');
    const intermediate = await issueIntermediateCertificate({
      publicKey: keys.publicKey,
      organization: 'cluster.local',
      commonName: 'intermediate',
      notBefore: T0,
      notAfter: new Date(T0.getTime() + HOUR),
      issuer: ecCa.issuer,
      pathLenConstraint: 0,
    });
    const info = inspectCertificate(intermediate.der);
    expect(info).toMatchObject({
      subject: 'O=cluster.local, CN=intermediate',
      issuer: 'O=cluster.local',
      isCA: true,
      pathLenConstraint: 0,
      keyUsage: ['keyCertSign', 'cRLSign'],
      authorityKeyId: inspectCertificate(ecCa.root.der).subjectKeyId,
    });
    expect(info.subjectKeyId).not.toBe(info.authorityKeyId);
  });
});

describe('randomSerialNumber', () => {
  it('stays positive and below 2^127', () => {
    for (let i = 0; i < 1000; i++) {
      const serial = randomSerialNumber();
      expect(serial > 0n && serial < 1n << 127n).toBe(true);
    }
  });
});
