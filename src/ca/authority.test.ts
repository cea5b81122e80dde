import { generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeCertificatesPem, privateKeyToPem } from '../pki/index.js';
import { createTestCa, createTestIntermediate, type TestCa } from '../pki/testing.js';
import { CaLoadError, loadPluggedIn, loadSelfSigned } from './authority.js';
import { issueWorkload, serialHex } from './issue.js';

const HOUR = 3600_000;
const now = new Date(Date.UTC(2026, 10, 23));
const opts = { now, minRemainingMs: 60_000 };
const buf = (s: string) => Buffer.from(s);

let ca: TestCa;
let other: TestCa;
beforeAll(async () => {
  ca = await createTestCa({
    notBefore: new Date(now.getTime() - HOUR),
    notAfter: new Date(now.getTime() + 1000 * HOUR),
  });
  other = await createTestCa({ notBefore: new Date(now.getTime() - HOUR) });
});

const selfSignedData = (c: TestCa) => ({
  'ca-cert.pem': buf(c.root.pem),
  'ca-key.pem': buf(privateKeyToPem(c.keys.privateKey)),
});

async function loadError(load: Promise<unknown>): Promise<string> {
  try {
    await load;
  } catch (err) {
    if (err instanceof CaLoadError) return err.reason;
    throw err;
  }
  throw new Error('expected the CA to be refused');
}

describe('loadSelfSigned', () => {
  it('loads a root whose key matches, with the root as the bundle and no chain after the leaf', async () => {
    const authority = await loadSelfSigned(selfSignedData(ca), 'ns/istio-ca-secret', opts);
    expect(authority.roots.map((r) => r.fingerprintSha256)).toEqual([authority.signer.fingerprintSha256]);
    expect(authority.activeRootFingerprint).toBe(authority.signer.fingerprintSha256);
    expect(authority.chainPem).toBe('');
  });

  it('keeps the bundle order of root-cert.pem (old root first during a rotation)', async () => {
    const data = {
      ...selfSignedData(ca),
      'root-cert.pem': buf(encodeCertificatesPem([other.root.der, ca.root.der])),
    };
    const authority = await loadSelfSigned(data, 'ns/istio-ca-secret', opts);
    expect(authority.roots.map((r) => r.fingerprintSha256)[1]).toBe(authority.signer.fingerprintSha256);
    expect(authority.activeRootFingerprint).toBe(authority.signer.fingerprintSha256);
  });

  it('still loads a root about to expire or past its end, so its rotation can replace it', async () => {
    const late = {
      now: new Date(ca.root.der ? now.getTime() + 1000 * HOUR - 30_000 : 0),
      minRemainingMs: 60_000,
    };
    await expect(loadSelfSigned(selfSignedData(ca), 'ns/istio-ca-secret', late)).resolves.toBeDefined();
    // A cluster stopped past its root's end: refusing the root deadlocked the rotation for good.
    const ended = { now: new Date(now.getTime() + 1001 * HOUR), minRemainingMs: 60_000 };
    const authority = await loadSelfSigned(selfSignedData(ca), 'ns/istio-ca-secret', ended);
    expect(authority.signer.notAfter.getTime()).toBeLessThan(ended.now.getTime());
    expect(authority.activeRootFingerprint).toBe(authority.signer.fingerprintSha256);
  });

  it.each([
    ['garbage certificate', () => ({ ...selfSignedData(ca), 'ca-cert.pem': buf('nope') }), 'Unparsable'],
    [
      'a key of another CA',
      () => ({ ...selfSignedData(ca), 'ca-key.pem': selfSignedData(other)['ca-key.pem'] }),
      'KeyMismatch',
    ],
    ['no key', () => ({ 'ca-cert.pem': selfSignedData(ca)['ca-cert.pem'] }), 'MissingKey'],
  ])('refuses %s', async (_, data, reason) => {
    expect(await loadError(loadSelfSigned(data(), 'ns/istio-ca-secret', opts))).toBe(reason);
  });

  it('issues workload leaves that never outlive the root', async () => {
    const authority = await loadSelfSigned(selfSignedData(ca), 'ns/istio-ca-secret', opts);
    const material = await issueWorkload(authority, {
      spiffeId: 'spiffe://cluster.local/ns/a/sa/b',
      dnsNames: [],
      keyAlgorithm: 'ECDSA_P256',
      ttlMs: 5000 * HOUR,
      backdateMs: 0,
      now,
    });
    expect(material.notAfter.getTime()).toBe(authority.signer.notAfter.getTime());
    expect(material.data['root-cert.pem']).toBe(authority.rootBundlePem);
  });
});

describe('loadPluggedIn', () => {
  it('signs with an intermediate: the chain after the leaf is the intermediate, the root stays in the bundle', async () => {
    const mid = await createTestIntermediate(other.issuer, { notBefore: new Date(now.getTime() - HOUR) });
    const authority = await loadPluggedIn(
      {
        'ca-cert.pem': buf(mid.certificate.pem),
        'ca-key.pem': buf(privateKeyToPem(mid.keys.privateKey)),
        'root-cert.pem': buf(other.root.pem),
        'cert-chain.pem': buf(mid.certificate.pem + other.root.pem),
      },
      'ns/cacerts',
      opts,
    );
    expect(authority.chainPem).toBe(encodeCertificatesPem([mid.certificate.der]));
    expect(authority.rootBundlePem).toBe(encodeCertificatesPem([other.root.der]));
  });

  it('puts the signer first, once, when cert-chain.pem lists it out of order', async () => {
    const mid = await createTestIntermediate(other.issuer, { notBefore: new Date(now.getTime() - HOUR) });
    const signer = await createTestIntermediate(mid.issuer, { notBefore: new Date(now.getTime() - HOUR) });
    const authority = await loadPluggedIn(
      {
        'ca-cert.pem': buf(signer.certificate.pem),
        'ca-key.pem': buf(privateKeyToPem(signer.keys.privateKey)),
        'root-cert.pem': buf(other.root.pem),
        'cert-chain.pem': buf(mid.certificate.pem + signer.certificate.pem + other.root.pem),
      },
      'ns/cacerts',
      opts,
    );
    expect(authority.chainPem).toBe(encodeCertificatesPem([signer.certificate.der, mid.certificate.der]));
  });

  it('refuses an intermediate that does not chain to root-cert.pem', async () => {
    const mid = await createTestIntermediate(other.issuer, { notBefore: new Date(now.getTime() - HOUR) });
    const data = {
      'ca-cert.pem': buf(mid.certificate.pem),
      'ca-key.pem': buf(privateKeyToPem(mid.keys.privateKey)),
      'root-cert.pem': buf(ca.root.pem),
    };
    expect(await loadError(loadPluggedIn(data, 'ns/cacerts', opts))).toBe('ChainInvalid');
  });

  it('refuses a key it cannot sign with as UnsupportedKey, before any key match', async () => {
    const mid = await createTestIntermediate(other.issuer, { notBefore: new Date(now.getTime() - HOUR) });
    for (const key of [
      generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey,
      generateKeyPairSync('ed25519').privateKey,
    ]) {
      const data = {
        'ca-cert.pem': buf(mid.certificate.pem),
        'ca-key.pem': buf(key.export({ type: 'pkcs8', format: 'pem' }) as string),
        'root-cert.pem': buf(other.root.pem),
      };
      expect(await loadError(loadPluggedIn(data, 'ns/cacerts', opts))).toBe('UnsupportedKey');
    }
  });

  it('refuses a signer not valid yet, saying when to look again', async () => {
    const mid = await createTestIntermediate(other.issuer, { notBefore: new Date(now.getTime() + 30_000) });
    const data = {
      'ca-cert.pem': buf(mid.certificate.pem),
      'ca-key.pem': buf(privateKeyToPem(mid.keys.privateKey)),
      'root-cert.pem': buf(other.root.pem),
    };
    const refused = await loadPluggedIn(data, 'ns/cacerts', opts).catch((err: unknown) => err);
    expect(refused).toMatchObject({ reason: 'SignerNotYetValid', retryAt: now.getTime() + 30_000 });
    const later = { ...opts, now: new Date(now.getTime() + 31_000) };
    await expect(loadPluggedIn(data, 'ns/cacerts', later)).resolves.toBeDefined();
  });

  it('refuses a plugged-in signer with less than the minimum lifetime left', async () => {
    const mid = await createTestIntermediate(other.issuer, { notBefore: new Date(now.getTime() - HOUR) });
    const data = {
      'ca-cert.pem': buf(mid.certificate.pem),
      'ca-key.pem': buf(privateKeyToPem(mid.keys.privateKey)),
      'root-cert.pem': buf(ca.root.pem),
    };
    const nearEnd = {
      now: new Date(mid.certificate.der ? now.getTime() + 365 * 24 * HOUR - 2 * HOUR - 30_000 : 0),
      minRemainingMs: 3 * HOUR,
    };
    expect(await loadError(loadPluggedIn(data, 'ns/cacerts', nearEnd))).toBe('SignerExpiring');
  });
});

describe('serialHex', () => {
  it('shows whole bytes, as inspectCertificate does', () => {
    expect(serialHex(0x04fa89n)).toBe('04fa89');
    expect(serialHex(0x7fa89n)).toBe('07fa89');
    expect(serialHex(0x7f0001n)).toBe('7f0001');
  });
});
