/**
 * Key pairs and their PEM encodings. Keys are generated and used with node:crypto: generation runs on the
 * libuv threadpool, and native signing is far faster than any pure-JS implementation.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateNodeKeyPair,
  type KeyObject,
} from 'node:crypto';
import {
  CURVES,
  KEY_ALGORITHM_NAMES,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  SIGNATURE_ALGORITHMS,
  type SignatureAlgorithm,
} from './key-algorithms.js';
import { decodePem } from './pem.js';

export type { KeyAlgorithm, SignatureAlgorithm } from './key-algorithms.js';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export class KeyError extends Error {
  override name = 'KeyError';
}

export function generateKeyPair(algorithm: KeyAlgorithm): Promise<KeyPair> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, publicKey: KeyObject, privateKey: KeyObject) => {
      if (error) reject(error);
      else resolve({ privateKey, publicKey });
    };
    const { generation } = KEY_ALGORITHMS[algorithm];
    if (generation.type === 'ec') generateNodeKeyPair('ec', generation.options, done);
    else generateNodeKeyPair('rsa', generation.options, done);
  });
}

/** Which of alcazar's algorithms a key (private or public) uses; 'other' for anything else (RSA-4096, P-384…). */
export function keyAlgorithmOf(key: KeyObject): KeyAlgorithm | 'other' {
  return KEY_ALGORITHM_NAMES.find((name) => KEY_ALGORITHMS[name].matches(key)) ?? 'other';
}

/**
 * The private key in the encoding Citadel wrote to Secrets: PKCS#1 ("RSA PRIVATE KEY") for RSA, SEC1
 * ("EC PRIVATE KEY") for EC keys.
 */
export function privateKeyToPem(privateKey: KeyObject): string {
  if (privateKey.type !== 'private')
    throw new KeyError(`expected a private key, got a ${privateKey.type} key`);
  switch (privateKey.asymmetricKeyType) {
    case 'rsa':
      return privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
    case 'ec':
      return privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    default:
      throw new KeyError(
        `cannot encode a ${privateKey.asymmetricKeyType} private key; only RSA and EC keys are supported`,
      );
  }
}

const PRIVATE_KEY_BLOCKS: Record<string, 'pkcs1' | 'sec1' | 'pkcs8'> = {
  'RSA PRIVATE KEY': 'pkcs1',
  'EC PRIVATE KEY': 'sec1',
  'PRIVATE KEY': 'pkcs8',
};

/**
 * Reads a PEM private key in PKCS#1, SEC1 or PKCS#8 form. Other blocks that commonly travel with keys
 * ("EC PARAMETERS", certificates) are ignored; exactly one private key must be present. Error messages
 * never contain key material.
 */
export function parsePrivateKeyPem(pem: string | Uint8Array): KeyObject {
  const blocks = decodePem(pem);
  if (blocks.some((block) => block.type === 'ENCRYPTED PRIVATE KEY')) {
    throw new KeyError('encrypted private keys are not supported');
  }
  const keyBlocks = blocks.filter((block) => block.type in PRIVATE_KEY_BLOCKS);
  if (keyBlocks.length !== 1) {
    throw new KeyError(
      `expected exactly one private key block (RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY), found ${keyBlocks.length}`,
    );
  }
  const [block] = keyBlocks as [(typeof keyBlocks)[0]];
  try {
    return createPrivateKey({ key: block.der, format: 'der', type: PRIVATE_KEY_BLOCKS[block.type]! });
  } catch (error) {
    throw new KeyError(`cannot parse the "${block.type}" block: ${(error as Error).message}`);
  }
}

/** The public half of a key; a public key is returned as is. */
export function publicKeyOf(key: KeyObject): KeyObject {
  return key.type === 'private' ? createPublicKey(key) : key;
}

/**
 * The algorithm a key signs certificates with: RSA (any size) → sha256WithRSAEncryption, P-256 →
 * ecdsa-with-SHA256, P-384 → ecdsa-with-SHA384 (so plugged-in P-384 CAs work too).
 */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return SIGNATURE_ALGORITHMS.rsa;
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const known = CURVES.find((c) => c.nodeName === curve);
    if (known) return known.signature;
    throw new KeyError(`cannot sign with an EC key on curve ${curve}; P-256 and P-384 are supported`);
  }
  throw new KeyError(`cannot sign with a ${key.asymmetricKeyType} key; RSA and EC keys are supported`);
}
