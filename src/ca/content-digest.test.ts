// The content digest answers "is this exactly what alcazar wrote with this authority" and nothing
// else: any edit of any of the three values, of the digest itself, or another signer says no.
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { privateKeyToPem } from '../pki/index.js';
import { createTestCa, type TestCa } from '../pki/testing.js';
import { loadSelfSigned, type SigningAuthority } from './authority.js';
import { contentDigest, contentDigestMatches, type DigestedValues } from './content-digest.js';

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

/** Real PEM bytes, generated at run time (the digest treats them as opaque bytes). */
const values = (): DigestedValues => ({
  'cert-chain.pem': Buffer.from(ca.root.pem),
  'key.pem': Buffer.from(privateKeyToPem(ca.keys.privateKey)),
  'root-cert.pem': Buffer.from(`${ca.root.pem}${ca.root.pem}`),
});

describe('contentDigest', () => {
  it('verifies for exactly the values it was made for, and again after the authority is loaded anew', async () => {
    const digest = contentDigest(authority, values());
    expect(digest).toMatch(/^v1\.[A-Za-z0-9_-]{43}$/);
    expect(contentDigestMatches(authority, values(), digest)).toBe(true);
    // A restart loads the same CA Secret into a new authority object: the same digest key.
    expect(contentDigestMatches(await load(ca), values(), digest)).toBe(true);
  });

  it.each(['cert-chain.pem', 'key.pem', 'root-cert.pem'] as const)(
    'fails when one byte of %s differs',
    (name) => {
      const digest = contentDigest(authority, values());
      const edited = values();
      const bytes = Buffer.from(edited[name]);
      bytes[30] = bytes[30]! ^ 0x01;
      edited[name] = bytes;
      expect(contentDigestMatches(authority, edited, digest)).toBe(false);
    },
  );

  it('fails when bytes move from one value to the next (each value is length-prefixed)', () => {
    const v = values();
    const digest = contentDigest(authority, v);
    const chain = Buffer.from(v['cert-chain.pem']);
    const moved: DigestedValues = {
      ...v,
      'cert-chain.pem': chain.subarray(0, chain.length - 1),
      'key.pem': Buffer.concat([chain.subarray(chain.length - 1), v['key.pem']]),
    };
    expect(contentDigestMatches(authority, moved, digest)).toBe(false);
  });

  it('fails for an edited digest, a missing one, and one made by another signer', () => {
    const digest = contentDigest(authority, values());
    const last = digest.at(-1) === 'A' ? 'B' : 'A';
    expect(contentDigestMatches(authority, values(), digest.slice(0, -1) + last)).toBe(false);
    expect(contentDigestMatches(authority, values(), `${digest}=`)).toBe(false);
    expect(contentDigestMatches(authority, values(), '')).toBe(false);
    expect(contentDigestMatches(authority, values(), undefined)).toBe(false);
    expect(contentDigestMatches(other, values(), digest)).toBe(false);
    expect(contentDigestMatches(authority, values(), contentDigest(other, values()))).toBe(false);
  });

  it('is keyed by HKDF over the signing key, salted with the signer certificate (pinned: a change invalidates every digest)', () => {
    const ikm = authority.signerKey.export({ format: 'der', type: 'pkcs8' });
    const salt = createHash('sha256').update(authority.signerCertificateDer).digest();
    const key = Buffer.from(hkdfSync('sha256', ikm, salt, 'alcazar.dev/content-digest v1', 32));
    const mac = createHmac('sha256', key);
    for (const v of Object.values(values())) {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(v.length);
      mac.update(length).update(v);
    }
    expect(contentDigest(authority, values())).toBe(`v1.${mac.digest('base64url')}`);
  });
});
