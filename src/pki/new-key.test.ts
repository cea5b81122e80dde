import { createPrivateKey, createPublicKey, sign, verify, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { issueLeafCertificate } from './certificate.js';
import { inspectCertificate } from './inspect.js';
import { CURVES } from './key-algorithms.js';
import { keyAlgorithmOf } from './keys.js';
import { generateEcKey, generateNewKey } from './new-key.js';
import { decodePem } from './pem.js';
import { isRsaSubjectPublicKeyInfo } from './spki.js';
import { createTestCa, pemBegin } from './testing.js';

describe('generateEcKey', () => {
  it.each(CURVES.map((c) => [c.jwkName, c] as const))(
    'writes %s keys byte for byte as Node exports them, the scalar padded to the curve size',
    (_name, curve) => {
      const size = curve.jwkName === 'P-256' ? 32 : 48;
      const scalarOf = (pem: string) => {
        // SEQUENCE { INTEGER 1, OCTET STRING scalar, … }; the P-384 SEQUENCE has a two-byte length.
        const der = decodePem(pem)[0]!.der;
        const at = der[1]! & 0x80 ? 7 : 6;
        return der.subarray(at + 1, at + 1 + der[at]!);
      };
      // ~1 scalar in 256 starts with a zero byte, which ECDH hands back one byte short: find one.
      const keys = Array.from({ length: 10 }, () => generateEcKey(curve));
      for (let i = 0; i < 20_000; i++) {
        const key = generateEcKey(curve);
        if (scalarOf(key.privateKeyPem)[0] === 0) {
          keys.push(key);
          break;
        }
      }
      expect(keys).toHaveLength(11);
      for (const key of keys) {
        expect(scalarOf(key.privateKeyPem)).toHaveLength(size);
        const privateKey = createPrivateKey(key.privateKeyPem);
        expect(privateKey.asymmetricKeyDetails?.namedCurve).toBe(curve.nodeName);
        expect(privateKey.export({ type: 'sec1', format: 'pem' })).toBe(key.privateKeyPem);
        expect(createPublicKey(privateKey).export({ type: 'spki', format: 'der' })).toEqual(
          key.subjectPublicKeyInfoDer,
        );
      }
    },
  );

  it('makes a different key every time', () => {
    const pems = new Set(Array.from({ length: 100 }, () => generateEcKey(CURVES[0]!).privateKeyPem));
    expect(pems.size).toBe(100);
  });
});

describe('generateNewKey', () => {
  it.each(['ECDSA_P256', 'RSA_2048'] as const)(
    'makes %s keys whose halves sign and verify',
    async (algorithm) => {
      const key = await generateNewKey(algorithm);
      const privateKey = createPrivateKey(key.privateKeyPem);
      const publicKey = createPublicKey({ key: key.subjectPublicKeyInfoDer, format: 'der', type: 'spki' });
      expect(keyAlgorithmOf(privateKey)).toBe(algorithm);
      expect(keyAlgorithmOf(publicKey)).toBe(algorithm);
      expect(isRsaSubjectPublicKeyInfo(key.subjectPublicKeyInfoDer)).toBe(
        privateKey.asymmetricKeyType === 'rsa',
      );
      const signature = sign('sha256', Buffer.from('hello'), privateKey);
      expect(verify('sha256', Buffer.from('hello'), publicKey, signature)).toBe(true);
      const block = algorithm === 'RSA_2048' ? 'RSA PRIVATE KEY' : 'EC PRIVATE KEY';
      expect(key.privateKeyPem.startsWith(`${pemBegin(block)}\n`)).toBe(true);
    },
  );
});

describe('a leaf for a new key (the encoded public key, no KeyObject)', () => {
  it.each([
    ['ECDSA_P256', ['digitalSignature']],
    ['RSA_2048', ['digitalSignature', 'keyEncipherment']],
  ] as const)('%s: the KeyUsage of its algorithm, the key as generated', async (algorithm, keyUsage) => {
    const notBefore = new Date(Date.UTC(2026, 10, 1));
    const ca = await createTestCa({ notBefore });
    const key = await generateNewKey(algorithm);
    const leaf = await issueLeafCertificate({
      publicKey: { subjectPublicKeyInfoDer: key.subjectPublicKeyInfoDer },
      spiffeId: 'spiffe://cluster.local/ns/a/sa/b',
      notBefore,
      notAfter: new Date(notBefore.getTime() + 3_600_000),
      issuer: ca.issuer,
    });
    const info = inspectCertificate(leaf.der);
    expect(info.keyUsage).toEqual(keyUsage);
    expect(info.publicKeyAlgorithm).toBe(algorithm);
    expect(new X509Certificate(leaf.der).checkPrivateKey(createPrivateKey(key.privateKeyPem))).toBe(true);
  });
});
