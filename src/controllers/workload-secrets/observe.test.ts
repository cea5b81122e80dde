// A Secret alcazar just wrote is not parsed again when its watch event
// arrives: what it would have found is remembered at write time. These tests
// hold the remembered view to the parsed one, field for field.
import type { V1Secret } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPluggedIn, loadSelfSigned, type SigningAuthority } from '../../ca/authority.js';
import { contentDigest } from '../../ca/content-digest.js';
import { issueWorkload } from '../../ca/issue.js';
import { CONTENT_DIGEST_ANNOTATION } from '../../model/names.js';
import { type KeyAlgorithm, privateKeyToPem } from '../../pki/index.js';
import { decodePem, encodePem } from '../../pki/pem.js';
import { createTestCa, createTestIntermediate } from '../../pki/testing.js';
import { leafChecks, observeSecret, signedByAuthority, WrittenContents, writtenContent } from './observe.js';

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

  it('reports a SEC1 key.pem whose private scalar was edited and whose public key was kept', async () => {
    const { secret, data } = await written(selfSigned, 'ECDSA_P256', []);
    expect(decodePem(Buffer.from(data['key.pem']!, 'base64'))[0]!.type).toBe('EC PRIVATE KEY');
    // The last byte of the 32-byte scalar, which starts at offset 7 of the ECPrivateKey DER.
    const edited = { ...secret, data: { ...data, 'key.pem': flipByte(data['key.pem']!, () => 38) } };
    const view = observeSecret(withoutDigest(edited), undefined, () => selfSigned);
    expect(view.dataProblem).toBe('key.pem does not match the certificate in cert-chain.pem');
  });
});

/** The Secret with the content digest `authority` writes for its data, as WorkloadSecretWriter does. */
function withDigest(secret: V1Secret, authority: SigningAuthority, data = secret.data!): V1Secret {
  const bytes = (name: string) => Buffer.from(data[name]!, 'base64');
  const digest = contentDigest(authority, {
    'cert-chain.pem': bytes('cert-chain.pem'),
    'key.pem': bytes('key.pem'),
    'root-cert.pem': bytes('root-cert.pem'),
  });
  return {
    ...secret,
    metadata: { ...secret.metadata, annotations: { [CONTENT_DIGEST_ANNOTATION]: digest } },
  };
}

const withoutDigest = (secret: V1Secret): V1Secret => ({
  ...secret,
  metadata: { ...secret.metadata, annotations: {} },
});

/** One byte of the DER in the value's first PEM block flipped, at `at(der)`; the rest kept. */
function flipByte(base64: string, at: (der: Buffer) => number): string {
  const [first, ...rest] = decodePem(Buffer.from(base64, 'base64'));
  const der = Buffer.from(first!.der);
  der[at(der)] = der[at(der)]! ^ 0x01;
  const pem = [encodePem(first!.type, der), ...rest.map((b) => encodePem(b.type, b.der))].join('');
  return Buffer.from(pem).toString('base64');
}

/** Observes under `authority`, saying whether the signature and key-pair checks ran. */
function observeCounting(secret: V1Secret, authority: SigningAuthority) {
  const before = leafChecks.signatureAndKey;
  const view = observeSecret(secret, undefined, () => authority);
  return { view, checked: leafChecks.signatureAndKey > before };
}

describe('observeSecret with a content digest', () => {
  it.each(WRITTEN_CASES)(
    'a Secret alcazar wrote is judged by its digest, without the signature or key check: %s',
    async (_, algorithm, authority, dnsNames) => {
      const { secret } = await written(authority(), algorithm, [...dnsNames]);
      const quick = observeCounting(secret, authority());
      expect(quick.checked).toBe(true);
      const digested = observeCounting(withDigest(secret, authority()), authority());
      expect(digested.checked).toBe(false);
      expect(digested.view).toStrictEqual(quick.view);
      expect(digested.view.verified).toStrictEqual({
        signer: authority().signer.fingerprintSha256,
        ok: true,
      });
    },
  );

  it('the digest is what answers: a key that does not match passes when the digest (made only by alcazar) says so', async () => {
    // Only a holder of the signing key can make such a digest; alcazar never does. This tells the
    // digest path apart from the checks it replaces, which would report the key.
    const { secret, data } = await written(selfSigned, 'ECDSA_P256', []);
    const other = await written(selfSigned, 'ECDSA_P256', []);
    const mixed = { ...data, 'key.pem': other.data['key.pem']! };
    const view = observeSecret(
      withDigest({ ...secret, data: mixed }, selfSigned),
      undefined,
      () => selfSigned,
    );
    expect(view.dataProblem).toBeUndefined();
  });

  const EDITS = [
    // The last byte of the leaf: its signature.
    ['cert-chain.pem', (der: Buffer) => der.length - 1],
    // The key's outer tag: no longer a key at all.
    ['key.pem', () => 0],
  ] as const;

  it.each(EDITS)(
    'one byte of %s edited, the digest kept: checked in full and judged as without a digest',
    async (name, at) => {
      const { secret, data } = await written(selfSigned, 'ECDSA_P256', []);
      const sealed = withDigest(secret, selfSigned);
      const edited: V1Secret = { ...sealed, data: { ...data, [name]: flipByte(data[name]!, at) } };
      const { view, checked } = observeCounting(edited, selfSigned);
      expect(checked).toBe(true);
      expect(view).toStrictEqual(observeSecret(withoutDigest(edited), undefined, () => selfSigned));
      if (name === 'key.pem') expect(view.dataProblem).toBeDefined(); // plan: InvalidData
      if (name === 'cert-chain.pem') expect(view.verified?.ok ?? false).toBe(false); // NotSignedByCurrentCA
    },
  );

  it('one byte of root-cert.pem edited, the digest kept: the digest still answers for the leaf and key, the bundle hash tells', async () => {
    // A (v2) digest covers the leaf and key.pem only: the bundle is compared by hash on every look.
    const { secret, data } = await written(selfSigned, 'ECDSA_P256', []);
    const sealed = withDigest(secret, selfSigned);
    const edited: V1Secret = {
      ...sealed,
      data: { ...data, 'root-cert.pem': flipByte(data['root-cert.pem']!, (der) => der.length - 1) },
    };
    const { view, checked } = observeCounting(edited, selfSigned);
    expect(checked).toBe(false);
    expect(view).toStrictEqual(observeSecret(withoutDigest(edited), undefined, () => selfSigned));
    expect(view.rootBundleHash).not.toBe(selfSigned.rootBundleHash); // plan: refresh the bundle
  });

  it('a certificate appended after the leaf, the digest kept: the digest answers for the leaf and key, the chain hash tells', async () => {
    const { secret, data } = await written(selfSigned, 'ECDSA_P256', []);
    const chain = Buffer.from(data['cert-chain.pem']!, 'base64').toString() + selfSigned.rootBundlePem;
    const edited: V1Secret = {
      ...withDigest(secret, selfSigned),
      data: { ...data, 'cert-chain.pem': Buffer.from(chain).toString('base64') },
    };
    const { view, checked } = observeCounting(edited, selfSigned);
    expect(checked).toBe(false);
    expect(view).toStrictEqual(observeSecret(withoutDigest(edited), undefined, () => selfSigned));
    expect(view.chainHash).not.toBe(selfSigned.chainHash); // plan: refresh the chain
  });

  it('another kind of block appended after the leaf, the digest kept: a data problem, as without one', async () => {
    const { secret, data } = await written(selfSigned, 'ECDSA_P256', []);
    const chain =
      Buffer.from(data['cert-chain.pem']!, 'base64').toString() +
      encodePem('PUBLIC KEY', Buffer.from('not a certificate'));
    const edited: V1Secret = {
      ...withDigest(secret, selfSigned),
      data: { ...data, 'cert-chain.pem': Buffer.from(chain).toString('base64') },
    };
    const view = observeSecret(edited, undefined, () => selfSigned);
    expect(view.dataProblem).toMatch(/cannot parse the key or certificate/);
    expect(view).toStrictEqual(observeSecret(withoutDigest(edited), undefined, () => selfSigned));
  });

  it('an edited or missing digest, or one another signer made, is checked in full', async () => {
    const { secret } = await written(selfSigned, 'ECDSA_P256', []);
    const sealed = withDigest(secret, selfSigned);
    const digest = sealed.metadata!.annotations![CONTENT_DIGEST_ANNOTATION]!;
    const edited: V1Secret = {
      ...sealed,
      metadata: {
        ...sealed.metadata,
        annotations: {
          [CONTENT_DIGEST_ANNOTATION]: `${digest.slice(0, -2)}${digest.endsWith('AA') ? 'BB' : 'AA'}`,
        },
      },
    };
    for (const s of [edited, withoutDigest(sealed), withDigest(secret, pluggedIn)]) {
      const { view, checked } = observeCounting(s, selfSigned);
      expect(checked).toBe(true);
      expect(view.verified).toStrictEqual({ signer: selfSigned.signer.fingerprintSha256, ok: true });
    }
  });

  it('under another signer (a rotated root, a new intermediate) the digest no longer answers', async () => {
    const { secret } = await written(selfSigned, 'ECDSA_P256', []);
    const { view, checked } = observeCounting(withDigest(secret, selfSigned), pluggedIn);
    expect(checked).toBe(true);
    expect(view.verified).toStrictEqual({ signer: pluggedIn.signer.fingerprintSha256, ok: false });
  });
});
