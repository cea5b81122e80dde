import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isRsaSubjectPublicKeyInfo, subjectPublicKeyInfoDer } from './spki.js';

describe('subjectPublicKeyInfoDer', () => {
  it('matches what Node exports, byte for byte, for RSA, P-256, P-384 and Ed25519 keys', () => {
    const keys = [
      generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey, // the encoding does not depend on the size
      generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: 3 }).publicKey,
      ...Array.from({ length: 20 }, () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey),
      generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey,
      generateKeyPairSync('ed25519').publicKey,
    ];
    for (const key of keys) {
      expect(subjectPublicKeyInfoDer(key)).toEqual(key.export({ type: 'spki', format: 'der' }));
    }
  });
});

describe('isRsaSubjectPublicKeyInfo', () => {
  it('says yes for rsaEncryption only: not EC, not RSA-PSS, not Ed25519', () => {
    const der = (key: ReturnType<typeof generateKeyPairSync>['publicKey']) =>
      key.export({ type: 'spki', format: 'der' });
    expect(
      isRsaSubjectPublicKeyInfo(der(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey)),
    ).toBe(true);
    expect(
      isRsaSubjectPublicKeyInfo(der(generateKeyPairSync('rsa-pss', { modulusLength: 1024 }).publicKey)),
    ).toBe(false);
    expect(
      isRsaSubjectPublicKeyInfo(der(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey)),
    ).toBe(false);
    expect(isRsaSubjectPublicKeyInfo(der(generateKeyPairSync('ed25519').publicKey))).toBe(false);
  });
});
