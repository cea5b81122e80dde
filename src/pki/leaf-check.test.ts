// The quick leaf check may only ever say "valid" where OpenSSL agrees; anything it cannot prove it
// leaves to OpenSSL (undefined). Keys and certificates are generated here, per run.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCertificate } from './certificate-parser.js';
import { readChildren, readElement, sequence } from './der.js';
import { generateKeyPair, type KeyAlgorithm, type KeyPair, privateKeyToPem } from './keys.js';
import { quickIssuedBy, quickKeyAlgorithm, quickKeyMatches, quickSigner } from './leaf-check.js';
import { decodePem, encodePem } from './pem.js';
import { createTestCa, createTestIntermediate, issueTestLeaf, type TestCa } from './testing.js';
import { keyMatchesCertificate } from './verify.js';

const notBefore = new Date(Date.UTC(2026, 10, 23, 12));
let ca: TestCa;
let other: TestCa;
const rsaKeys: Partial<Record<KeyAlgorithm, KeyPair>> = {};

beforeAll(async () => {
  ca = await createTestCa({ notBefore });
  other = await createTestCa({ notBefore });
  rsaKeys.RSA_2048 = await generateKeyPair('RSA_2048');
});

async function leafOf(algorithm: KeyAlgorithm, issuer = ca.issuer) {
  const leaf = await issueTestLeaf(issuer, {
    notBefore,
    algorithm,
    ...(algorithm === 'RSA_2048' && { keys: rsaKeys.RSA_2048 }),
  });
  const keyPem = Buffer.from(privateKeyToPem(leaf.keys.privateKey));
  return { leaf, der: leaf.certificate.der, parsed: parseCertificate(leaf.certificate.der), keyPem };
}

describe.each(['ECDSA_P256', 'RSA_2048'] as const)('%s', (algorithm) => {
  it('proves what OpenSSL finds for a leaf the signer issued, with its own key', async () => {
    const { der, parsed, keyPem } = await leafOf(algorithm);
    const signer = quickSigner(ca.root.der)!;
    expect(quickIssuedBy(parsed, signer)).toBe(true);
    expect(new X509Certificate(der).verify(new X509Certificate(ca.root.der).publicKey)).toBe(true);
    expect(quickKeyMatches(keyPem, parsed.subjectPublicKeyInfoDer)).toBe(true);
    expect(quickKeyAlgorithm(parsed.subjectPublicKeyInfoDer)).toBe(algorithm);
  });

  it('accepts the same key as PKCS#8', async () => {
    const { leaf, parsed } = await leafOf(algorithm);
    const pkcs8 = Buffer.from(leaf.keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    expect(quickKeyMatches(pkcs8, parsed.subjectPublicKeyInfoDer)).toBe(true);
  });

  it('cannot tell for another signer, a changed signature or a key of another leaf', async () => {
    const { der, parsed, keyPem } = await leafOf(algorithm);
    expect(quickIssuedBy(parsed, quickSigner(other.root.der)!)).toBeUndefined();
    const forged = Buffer.from(der);
    forged[forged.length - 3]! ^= 0x01;
    expect(quickIssuedBy(parseCertificate(forged), quickSigner(ca.root.der)!)).toBeUndefined();
    const ec = await leafOf('ECDSA_P256');
    const wrongKey = algorithm === 'ECDSA_P256' ? ec.keyPem : keyPem;
    const wrongCert = algorithm === 'ECDSA_P256' ? parsed : ec.parsed;
    expect(quickKeyMatches(wrongKey, wrongCert.subjectPublicKeyInfoDer)).toBeUndefined();
    expect(keyMatchesCertificate(createPrivateKey(wrongKey), wrongCert.der)).toBe(false);
  });
});

it('derives the EC public key from the scalar: a key file claiming the right public key is not enough', async () => {
  const a = await leafOf('ECDSA_P256');
  const b = await leafOf('ECDSA_P256');
  // b's scalar with a's public key in the optional [1] field of SEC1's ECPrivateKey.
  const [version, scalar, params] = readChildren(readElement(decodePem(b.keyPem)[0]!.der));
  const [, , , aPublic] = readChildren(readElement(decodePem(a.keyPem)[0]!.der));
  const spliced = sequence(version!.raw, scalar!.raw, params!.raw, aPublic!.raw);
  const pem = Buffer.from(encodePem('EC PRIVATE KEY', spliced));
  expect(quickKeyMatches(pem, a.parsed.subjectPublicKeyInfoDer)).toBeUndefined();
  expect(quickKeyMatches(b.keyPem, b.parsed.subjectPublicKeyInfoDer)).toBe(true);
});

it('checks p·q = n for RSA: the right modulus with a wrong factor is not enough', async () => {
  const { keyPem, parsed } = await leafOf('RSA_2048');
  const fields = readChildren(readElement(decodePem(keyPem)[0]!.der));
  const p = Buffer.from(fields[4]!.raw);
  p[p.length - 1]! ^= 0x02;
  const tampered = sequence(...fields.slice(0, 4).map((f) => f.raw), p, ...fields.slice(5).map((f) => f.raw));
  const pem = Buffer.from(encodePem('RSA PRIVATE KEY', tampered));
  expect(quickKeyMatches(pem, parsed.subjectPublicKeyInfoDer)).toBeUndefined();
});

it('leaves a leaf under an intermediate to its own signer, and garbage to OpenSSL', async () => {
  const mid = await createTestIntermediate(ca.issuer, { notBefore });
  const { parsed, keyPem } = await leafOf('ECDSA_P256', mid.issuer);
  expect(quickIssuedBy(parsed, quickSigner(mid.certificate.der)!)).toBe(true);
  expect(quickIssuedBy(parsed, quickSigner(ca.root.der)!)).toBeUndefined();
  expect(quickKeyMatches(Buffer.from('not a key'), parsed.subjectPublicKeyInfoDer)).toBeUndefined();
  expect(quickKeyMatches(keyPem, Buffer.from([0x30, 0x00]))).toBeUndefined();
  expect(quickSigner(Buffer.from([0x30, 0x00]))).toBeUndefined();
  expect(quickKeyAlgorithm(Buffer.from([0x30, 0x00]))).toBeUndefined();
});
