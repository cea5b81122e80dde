// The content digest answers "is this exactly what alcazar wrote with this authority" and nothing
// else: any edit of any of the three values, of the digest itself, or another signer says no.
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { privateKeyToPem } from '../pki/index.js';
import { createTestCa, type TestCa } from '../pki/testing.js';
import { loadSelfSigned, type SigningAuthority } from './authority.js';
import {
  contentDigest,
  contentDigestMatches,
  contentDigestV1,
  type DigestedValues,
} from './content-digest.js';

const HOUR = 3_600_000;
const now = new Date(Date.UTC(2026, 10, 23));
const load = (ca: TestCa) =>
  loadSelfSigned(
    {
      'ca-cert.pem': Buffer.from(ca.root.pem),
      'ca-key.pem': Buffer.from(privateKeyToPem(ca.keys.privateKey)),
    },
    'ns/istio-ca-secret',
    { now, minRemainingMs: 60_000 },
  );

let ca: TestCa;
let authority: SigningAuthority;
let other: SigningAuthority;
beforeAll(async () => {
  ca = await createTestCa({ notBefore: new Date(now.getTime() - HOUR) });
  authority = await load(ca);
  other = await load(await createTestCa({ notBefore: new Date(now.getTime() - HOUR) }));
});

/** Real PEM bytes, generated at run time (the digest treats key.pem as opaque bytes). */
const values = (): DigestedValues => ({
  'cert-chain.pem': Buffer.from(`${ca.root.pem}${ca.root.pem}`),
  'key.pem': Buffer.from(privateKeyToPem(ca.keys.privateKey)),
  'root-cert.pem': Buffer.from(`${ca.root.pem}${ca.root.pem}`),
});

/** One bit of the value flipped, in its base64 body (so it stays well-formed PEM). */
function flipped(value: Uint8Array, at = 40): Buffer {
  const bytes = Buffer.from(value);
  bytes[at] = bytes[at] === 0x41 ? 0x42 : 0x41;
  return bytes;
}

describe('contentDigest (v2: the leaf and key.pem)', () => {
  it('verifies for exactly the values it was made for, and again after the authority is loaded anew', async () => {
    const digest = contentDigest(authority, values());
    expect(digest).toMatch(/^v2\.[A-Za-z0-9_-]{43}$/);
    expect(contentDigestMatches(authority, values(), digest)).toBe(true);
    // A restart loads the same CA Secret into a new authority object: the same digest key.
    expect(contentDigestMatches(await load(ca), values(), digest)).toBe(true);
    // The leaf given as DER, as the controller has it when it writes, gives the same digest.
    expect(contentDigest(authority, { leafDer: ca.root.der, 'key.pem': values()['key.pem'] })).toBe(digest);
  });

  it.each([
    ['the leaf', 'cert-chain.pem', 40],
    ['key.pem', 'key.pem', 40],
  ] as const)('fails when %s differs', (_what, name, at) => {
    const digest = contentDigest(authority, values());
    const edited = values();
    edited[name] = flipped(edited[name], at);
    expect(contentDigestMatches(authority, edited, digest)).toBe(false);
  });

  it('holds across a new root-cert.pem and a new chain after the leaf: what a bundle refresh writes', () => {
    const digest = contentDigest(authority, values());
    const chain = Buffer.from(values()['cert-chain.pem']);
    const refreshed: DigestedValues = {
      ...values(),
      'cert-chain.pem': Buffer.concat([
        Buffer.from(ca.root.pem),
        flipped(chain.subarray(ca.root.pem.length)),
      ]),
      'root-cert.pem': flipped(values()['root-cert.pem']),
    };
    expect(contentDigestMatches(authority, refreshed, digest)).toBe(true);
  });

  it('fails when bytes move from the leaf to key.pem (each value is length-prefixed)', () => {
    const v = values();
    const leaf = ca.root.der;
    const digest = contentDigest(authority, { leafDer: leaf, 'key.pem': v['key.pem'] });
    const moved = {
      leafDer: leaf.subarray(0, leaf.length - 1),
      'key.pem': Buffer.concat([leaf.subarray(leaf.length - 1), v['key.pem']]),
    };
    expect(contentDigest(authority, moved)).not.toBe(digest);
  });

  it('fails for an edited digest, a missing one, an unknown version, one by another signer, and no leaf', () => {
    const digest = contentDigest(authority, values());
    const last = digest.at(-1) === 'A' ? 'B' : 'A';
    expect(contentDigestMatches(authority, values(), digest.slice(0, -1) + last)).toBe(false);
    expect(contentDigestMatches(authority, values(), `${digest}=`)).toBe(false);
    expect(contentDigestMatches(authority, values(), `v3${digest.slice(2)}`)).toBe(false);
    expect(contentDigestMatches(authority, values(), '')).toBe(false);
    expect(contentDigestMatches(authority, values(), undefined)).toBe(false);
    expect(contentDigestMatches(other, values(), digest)).toBe(false);
    expect(contentDigestMatches(authority, values(), contentDigest(other, values()))).toBe(false);
    const noLeaf = { ...values(), 'cert-chain.pem': Buffer.from('not PEM') };
    expect(contentDigestMatches(authority, noLeaf, digest)).toBe(false);
    expect(() => contentDigest(authority, noLeaf)).toThrow('cert-chain.pem holds no certificate');
  });

  it('is keyed by HKDF over the signing key, salted with the signer certificate (pinned: a change invalidates every digest)', () => {
    const ikm = authority.signerKey.export({ format: 'der', type: 'pkcs8' });
    const salt = createHash('sha256').update(authority.signerCertificateDer).digest();
    const key = Buffer.from(hkdfSync('sha256', ikm, salt, 'alcazar.dev/content-digest v2', 32));
    const mac = createHmac('sha256', key);
    for (const v of [ca.root.der, values()['key.pem']]) {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(v.length);
      mac.update(length).update(v);
    }
    expect(contentDigest(authority, values())).toBe(`v2.${mac.digest('base64url')}`);
  });
});

describe('v1 digests (written before v2: the three values as stored)', () => {
  it('still verify, and fail when any of the three values differs', () => {
    const digest = contentDigestV1(authority, values());
    expect(digest).toMatch(/^v1\.[A-Za-z0-9_-]{43}$/);
    expect(contentDigestMatches(authority, values(), digest)).toBe(true);
    for (const name of ['cert-chain.pem', 'key.pem', 'root-cert.pem'] as const) {
      const edited = values();
      edited[name] = flipped(edited[name], edited[name].length - 40);
      expect(contentDigestMatches(authority, edited, digest)).toBe(false);
    }
    expect(contentDigestMatches(other, values(), digest)).toBe(false);
  });

  it('are keyed and laid out as they were (pinned)', () => {
    const ikm = authority.signerKey.export({ format: 'der', type: 'pkcs8' });
    const salt = createHash('sha256').update(authority.signerCertificateDer).digest();
    const key = Buffer.from(hkdfSync('sha256', ikm, salt, 'alcazar.dev/content-digest v1', 32));
    const mac = createHmac('sha256', key);
    const v = values();
    for (const part of [v['cert-chain.pem'], v['key.pem'], v['root-cert.pem']]) {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(part.length);
      mac.update(length).update(part);
    }
    expect(contentDigestV1(authority, values())).toBe(`v1.${mac.digest('base64url')}`);
  });
});
