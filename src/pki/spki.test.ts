import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { subjectPublicKeyInfoDer } from './spki.js';

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
