import { beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../ca/authority.js';
import type { CrlSigner } from '../../ca/crl-signers.js';
import { buildCrl } from '../../pki/crl.js';
import { createTestCa, type TestCa } from '../../pki/testing.js';
import { examinePublished } from './controller.js';
import type { CrlConfigMapView } from './observe.js';

const now = new Date(Date.UTC(2026, 10, 30, 12));
let roots: TestCa[];
let signers: CrlSigner[];

beforeAll(async () => {
  roots = await Promise.all([createTestCa({ notBefore: now }), createTestCa({ notBefore: now })]);
  signers = roots.map((r) => ({
    fingerprint: sha256Hex(r.root.der),
    certificateDer: r.root.der,
    privateKey: r.keys.privateKey,
  }));
});

const crlOf = (ca: TestCa, serials: string[] = []) =>
  buildCrl({
    issuer: ca.issuer,
    crlNumber: 9n,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + 86_400_000),
    entries: serials.map((serial) => ({ serial, revokedAt: now, reason: 'keyCompromise' as const })),
  }).pem;

const view = (text: string, dataKeys = ['ca-crl.pem']): CrlConfigMapView => ({
  uid: 'u',
  resourceVersion: '1',
  owned: true,
  labelled: true,
  dataKeys,
  contentHash: sha256Hex(text),
  highestCrlNumber: 9n,
  text,
});

describe('examinePublished', () => {
  it('attributes each CRL to the signer whose key verifies it', () => {
    const published = examinePublished(view(crlOf(roots[0]!, ['0a']) + crlOf(roots[1]!, ['0a'])), {
      signers,
      operatorPem: '',
    });
    expect(published.wellFormed).toBe(true);
    expect(published.crls.map((c) => c.signerFingerprint)).toEqual(signers.map((s) => s.fingerprint));
    expect(published.crls[0]).toMatchObject({ crlNumber: 9n, nextUpdate: now.getTime() + 86_400_000 });
  });

  it('accepts the operator’s CRLs after ours, and nothing else', async () => {
    const other = await createTestCa({ notBefore: now });
    const operatorPem = crlOf(other);
    const ours = crlOf(roots[0]!);
    expect(
      examinePublished(view(ours + operatorPem), { signers: [signers[0]!], operatorPem }).wellFormed,
    ).toBe(true);
    expect(
      examinePublished(view(ours + operatorPem), { signers: [signers[0]!], operatorPem: '' }).wellFormed,
    ).toBe(false);
  });

  it('finds nothing usable in edited text or extra keys', () => {
    expect(examinePublished(view('tampered'), { signers, operatorPem: '' })).toMatchObject({
      crls: [],
      wellFormed: false,
    });
    expect(
      examinePublished(view(crlOf(roots[0]!), ['ca-crl.pem', 'extra']), {
        signers: [signers[0]!],
        operatorPem: '',
      }).wellFormed,
    ).toBe(false);
  });
});
