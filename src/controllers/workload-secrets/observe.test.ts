// A Secret alcazar just wrote is not parsed again when its watch event
// arrives: what it would have found is remembered at write time. These tests
// hold the remembered view to the parsed one, field for field.
import type { V1Secret } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPluggedIn, loadSelfSigned, type SigningAuthority } from '../../ca/authority.js';
import { issueWorkload } from '../../ca/issue.js';
import { type KeyAlgorithm, privateKeyToPem } from '../../pki/index.js';
import { createTestCa, createTestIntermediate } from '../../pki/testing.js';
import { observeSecret, signedByAuthority, WrittenContents, writtenContent } from './observe.js';

const HOUR = 3_600_000;
const now = new Date(Date.UTC(2026, 10, 23, 12));
const buf = (s: string) => Buffer.from(s);
const loadOpts = { now, minRemainingMs: 60_000 };

let selfSigned: SigningAuthority;
let pluggedIn: SigningAuthority;

beforeAll(async () => {
  const root = await createTestCa({
    notBefore: new Date(now.getTime() - HOUR),
    notAfter: new Date(now.getTime() + 1000 * HOUR),
  });
  selfSigned = await loadSelfSigned(
    { 'ca-cert.pem': buf(root.root.pem), 'ca-key.pem': buf(privateKeyToPem(root.keys.privateKey)) },
    'ca/istio-ca-secret',
    loadOpts,
  );
  const other = await createTestCa({ notBefore: new Date(now.getTime() - HOUR) });
  const mid = await createTestIntermediate(other.issuer, { notBefore: new Date(now.getTime() - HOUR) });
  pluggedIn = await loadPluggedIn(
    {
      'ca-cert.pem': buf(mid.certificate.pem),
      'ca-key.pem': buf(privateKeyToPem(mid.keys.privateKey)),
      'root-cert.pem': buf(other.root.pem),
      'cert-chain.pem': buf(mid.certificate.pem + other.root.pem),
    },
    'ca/cacerts',
    loadOpts,
  );
});

async function written(authority: SigningAuthority, keyAlgorithm: KeyAlgorithm, dnsNames: string[]) {
  const material = await issueWorkload(authority, {
    spiffeId: 'spiffe://cluster.local/ns/app/sa/web',
    dnsNames,
    keyAlgorithm,
    ttlMs: 24 * HOUR,
    backdateMs: 60_000,
    now,
  });
  const data = Object.fromEntries(
    Object.entries(material.data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  );
  const secret: V1Secret = {
    metadata: {
      name: 'istio.web',
      namespace: 'app',
      uid: 'u-1',
      resourceVersion: '42',
      labels: { 'app.kubernetes.io/managed-by': 'alcazar' },
    },
    type: 'istio.io/key-and-cert',
    data,
  };
  return { secret, data, content: writtenContent(material.leafDer, keyAlgorithm, authority) };
}

/** Secrets as alcazar writes them: each key type, each kind of signer, with and without DNS names. */
const WRITTEN_CASES = [
  ['ECDSA, self-signed root', 'ECDSA_P256', () => selfSigned, []],
  [
    'ECDSA with DNS names, plugged-in intermediate',
    'ECDSA_P256',
    () => pluggedIn,
    ['b.example', 'a.example'],
  ],
  ['RSA, self-signed root', 'RSA_2048', () => selfSigned, ['web.app.svc']],
] as const;

describe('WrittenContents', () => {
  it.each(WRITTEN_CASES)(
    'remembers exactly what parsing finds: %s',
    async (_, algorithm, authority, dnsNames) => {
      const { secret, data, content } = await written(authority(), algorithm, [...dnsNames]);
      const parsed = observeSecret(secret);
      // Parsing does not verify the signature up front; it memoises the check on first use.
      expect({ ...parsed, verified: content.verified }).toStrictEqual({
        ...parsed,
        ...content,
      });
      const memo = new WrittenContents();
      memo.remember(data, content);
      expect(observeSecret(secret, memo)).toStrictEqual({ ...parsed, verified: content.verified });
      expect(memo.size).toBe(0);
    },
  );

  it('parses anything that differs from what was written, even by one data value', async () => {
    const { secret, data, content } = await written(selfSigned, 'ECDSA_P256', []);
    const memo = new WrittenContents();
    memo.remember(data, content);
    const other = await written(selfSigned, 'ECDSA_P256', []);
    const tampered: V1Secret = { ...secret, data: { ...data, 'key.pem': other.data['key.pem']! } };
    const view = observeSecret(tampered, memo);
    expect(view.dataProblem).toBe('key.pem does not match the certificate in cert-chain.pem');
    expect(view.verified).toBeUndefined();
    expect(memo.size).toBe(1);
  });

  it('forgets the oldest entries beyond its capacity', async () => {
    const memo = new WrittenContents(2);
    const entries = await Promise.all([1, 2, 3].map(() => written(selfSigned, 'ECDSA_P256', [])));
    for (const e of entries) memo.remember(e.data, e.content);
    expect(memo.size).toBe(2);
    expect(memo.take(entries[0]!.data)).toBeUndefined();
    expect(memo.take(entries[2]!.data)).toBe(entries[2]!.content);
  });
});

describe('observeSecret with the authority signing now', () => {
  it('records whether that authority signed the leaf, as signedByAuthority would find', async () => {
    const { secret } = await written(selfSigned, 'ECDSA_P256', []);
    const mine = observeSecret(secret, undefined, () => selfSigned);
    expect(mine.verified).toStrictEqual({ signer: selfSigned.signer.fingerprintSha256, ok: true });
    const foreign = observeSecret(secret, undefined, () => pluggedIn);
    expect(foreign.verified).toStrictEqual({ signer: pluggedIn.signer.fingerprintSha256, ok: false });
    // The same answers as the check made later, by another parse of the leaf.
    const later = observeSecret(secret);
    expect(later.verified).toBeUndefined();
    expect(signedByAuthority(later, selfSigned)).toBe(true);
    expect(signedByAuthority(later, pluggedIn)).toBe(false);
    // Without a ready CA nothing is recorded.
    expect(observeSecret(secret, undefined, () => undefined).verified).toBeUndefined();
  });

  it.each(WRITTEN_CASES)(
    'finds without OpenSSL what the full parse finds: %s',
    async (_, algorithm, authority, dnsNames) => {
      const { secret } = await written(authority(), algorithm, [...dnsNames]);
      const full = observeSecret(secret);
      expect(full.dataProblem).toBeUndefined();
      const signer = authority().signer.fingerprintSha256;
      expect(observeSecret(secret, undefined, authority)).toStrictEqual({
        ...full,
        verified: { signer, ok: true },
      });
    },
  );

  it('still reports a key that does not match, and records the signature separately', async () => {
    const { secret, data } = await written(selfSigned, 'ECDSA_P256', []);
    const other = await written(selfSigned, 'ECDSA_P256', []);
    const tampered: V1Secret = { ...secret, data: { ...data, 'key.pem': other.data['key.pem']! } };
    const view = observeSecret(tampered, undefined, () => selfSigned);
    expect(view.dataProblem).toBe('key.pem does not match the certificate in cert-chain.pem');
    expect(view.verified?.ok).toBe(true);
  });
});
