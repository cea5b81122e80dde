import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSelfSignedRoot } from './certificate.js';
import { KEY_ALGORITHM_NAMES, KEY_ALGORITHMS } from './key-algorithms.js';
import { generateKeyPair, keyAlgorithmOf, signatureAlgorithmFor } from './keys.js';
import { subjectPublicKeyInfoDer } from './spki.js';

describe('the key algorithm registry', () => {
  it.each(KEY_ALGORITHM_NAMES)(
    '%s: a generated key is recognised as itself and by no other entry',
    async (name) => {
      const { privateKey, publicKey } = await generateKeyPair(name);
      expect(keyAlgorithmOf(privateKey)).toBe(name);
      expect(keyAlgorithmOf(publicKey)).toBe(name);
      for (const other of KEY_ALGORITHM_NAMES.filter((n) => n !== name))
        expect(KEY_ALGORITHMS[other].matches(publicKey)).toBe(false);
    },
  );

  it.each(KEY_ALGORITHM_NAMES)(
    '%s: SPKI and signature algorithm agree with Node and OpenSSL',
    async (name) => {
      const keys = await generateKeyPair(name);
      expect(subjectPublicKeyInfoDer(keys.publicKey)).toEqual(
        keys.publicKey.export({ type: 'spki', format: 'der' }),
      );
      expect(signatureAlgorithmFor(keys.privateKey)).toBe(KEY_ALGORITHMS[name].signature);
      const root = await createSelfSignedRoot({
        ...keys,
        organization: 'registry.test',
        notBefore: new Date('2030-01-01T00:00:00Z'),
        notAfter: new Date('2031-01-01T00:00:00Z'),
      });
      // Node (OpenSSL) reads the key back as the same algorithm and verifies the signature it chose.
      const parsed = new X509Certificate(root.der);
      expect(keyAlgorithmOf(parsed.publicKey)).toBe(name);
      expect(parsed.verify(keys.publicKey)).toBe(true);
    },
  );
});
