import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  generateKeyPair,
  type KeyPair,
  keyAlgorithmOf,
  parsePrivateKeyPem,
  privateKeyToPem,
  signatureAlgorithmFor,
} from './keys.js';
import { encodePem } from './pem.js';
import { pemBegin, pemEnd } from './testing.js';

let rsa: KeyPair;
let ec: KeyPair;

beforeAll(async () => {
  [rsa, ec] = await Promise.all([generateKeyPair('RSA_2048'), generateKeyPair('ECDSA_P256')]);
});

describe('generateKeyPair', () => {
  it('makes RSA-2048 and ECDSA P-256 pairs that sign and verify', () => {
    for (const { privateKey, publicKey } of [rsa, ec]) {
      const signature = sign('sha256', Buffer.from('hello'), privateKey);
      expect(verify('sha256', Buffer.from('hello'), publicKey, signature)).toBe(true);
    }
  });

  it('reports the algorithm of either half', () => {
    expect(keyAlgorithmOf(rsa.privateKey)).toBe('RSA_2048');
    expect(keyAlgorithmOf(rsa.publicKey)).toBe('RSA_2048');
    expect(keyAlgorithmOf(ec.privateKey)).toBe('ECDSA_P256');
    expect(keyAlgorithmOf(ec.publicKey)).toBe('ECDSA_P256');
  });
});

describe('privateKeyToPem', () => {
  it('writes RSA keys as PKCS#1, as Citadel did', () => {
    const pem = privateKeyToPem(rsa.privateKey);
    expect(pem.startsWith(`${pemBegin('RSA PRIVATE KEY')}\n`)).toBe(true);
    expect(pem.endsWith(`${pemEnd('RSA PRIVATE KEY')}\n`)).toBe(true);
  });

  it('writes EC keys as SEC1', () => {
    expect(privateKeyToPem(ec.privateKey).startsWith(`${pemBegin('EC PRIVATE KEY')}\n`)).toBe(true);
  });

  it('refuses a public key', () => {
    expect(() => privateKeyToPem(ec.publicKey)).toThrow('expected a private key, got a public key');
  });
});

describe('parsePrivateKeyPem', () => {
  it.each(['rsa', 'ec'] as const)('reads back the Citadel encoding and PKCS#8 of a %s key', (kind) => {
    const { privateKey } = kind === 'rsa' ? rsa : ec;
    const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(pkcs8.startsWith(pemBegin('PRIVATE KEY'))).toBe(true);
    for (const pem of [privateKeyToPem(privateKey), pkcs8]) {
      expect(parsePrivateKeyPem(pem).equals(privateKey)).toBe(true);
    }
  });

  it('skips the EC PARAMETERS block `openssl ecparam -genkey` writes first', () => {
    const withParameters =
      encodePem('EC PARAMETERS', Buffer.from('06082a8648ce3d030107', 'hex')) + privateKeyToPem(ec.privateKey);
    expect(parsePrivateKeyPem(withParameters).equals(ec.privateKey)).toBe(true);
  });

  it('refuses a bundle with two keys or none', () => {
    const two = privateKeyToPem(ec.privateKey) + privateKeyToPem(rsa.privateKey);
    expect(() => parsePrivateKeyPem(two)).toThrow('found 2');
    expect(() => parsePrivateKeyPem(encodePem('CERTIFICATE', Buffer.from([1])))).toThrow('found 0');
  });

  it('refuses encrypted keys', () => {
    const encrypted = ec.privateKey.export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'test-only',
    }) as string;
    expect(() => parsePrivateKeyPem(encrypted)).toThrow('encrypted private keys are not supported');
  });

  it('explains a corrupt key without echoing it', () => {
    const der = ec.privateKey.export({ type: 'sec1', format: 'der' });
    const corrupt = encodePem('EC PRIVATE KEY', der.subarray(0, 20));
    let message = '';
    try {
      parsePrivateKeyPem(corrupt);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^cannot parse the "EC PRIVATE KEY" block/);
    expect(message).not.toContain(der.subarray(2, 20).toString('base64'));
  });
});

describe('signatureAlgorithmFor', () => {
  it('signs with sha256WithRSAEncryption for RSA and ecdsa-with-SHA256 for P-256', () => {
    expect(signatureAlgorithmFor(rsa.privateKey).name).toBe('sha256WithRSAEncryption');
    expect(signatureAlgorithmFor(ec.privateKey).name).toBe('ecdsa-with-SHA256');
  });

  it('refuses keys it cannot sign certificates with', () => {
    const ed25519 = generateKeyPairSync('ed25519').privateKey;
    expect(keyAlgorithmOf(ed25519)).toBe('other');
    expect(() => signatureAlgorithmFor(ed25519)).toThrow('cannot sign with a ed25519 key');
  });
});
