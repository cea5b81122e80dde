import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../ca/authority.js';
import type { CrlSigner } from '../../ca/crl-signers.js';
import { buildCrl, crlSignedBy, decodeCrlsPem, parseCrl } from '../../pki/crl.js';
import { createTestCa, type TestCa } from '../../pki/testing.js';
import {
  CA_NAMESPACE,
  type ControllerTestBed,
  controllerContext,
  controllerTestBed,
  readyAuthority,
} from '../testing.js';
import { CrlController, type CrlSources, examinePublished, operatorCrls } from './controller.js';
import type { CrlConfigMapView } from './observe.js';
import { CrlPublisher } from './publisher.js';

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

  it('expects an operator CRL issued by one of our signers merged into ours, not beside it', () => {
    const operatorPem = crlOf(roots[0]!, ['0b']);
    const ours = buildCrl({
      issuer: roots[0]!.issuer,
      crlNumber: 10n,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + 86_400_000),
      entries: [{ serial: '0b', revokedAt: now, reason: 'keyCompromise' }],
    }).pem;
    const sources = { signers: [signers[0]!], operatorPem };
    expect(operatorCrls(sources)).toEqual({
      foreign: [],
      unreadable: 0,
      adopted: [
        {
          serial: '0b',
          notAfter: Number.POSITIVE_INFINITY,
          revokedAt: now.getTime(),
          reason: 'keyCompromise',
        },
      ],
    });
    const merged = examinePublished(view(ours), sources);
    expect(merged.wellFormed).toBe(true);
    expect(merged.crls.map((c) => c.crlNumber)).toEqual([10n]);
    // Both published (as before this was merged): two CRLs of one signer, which the plan signs again.
    expect(examinePublished(view(ours + operatorPem), sources).crls.map((c) => c.crlNumber)).toEqual([
      10n,
      9n,
    ]);
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

describe('CrlController on the shared caches', () => {
  let bed: ControllerTestBed;
  afterEach(() => bed.stop());

  it('signs istio-ca-crl once the CA is ready, publishes its health, and the publisher copies it', async () => {
    bed = controllerTestBed();
    bed.namespace('shop');
    await bed.start();
    const context = controllerContext(bed);
    const crl = bed.track(new CrlController({ ...context, workers: 1 }));
    const publisher = bed.track(new CrlPublisher(context, crl));
    crl.start();
    publisher.start();
    expect(bed.caches.state.crl.current.state).toBe('unknown');
    // The CA becoming ready is all it hears of: through the shared state, no call from anyone.
    await readyAuthority(bed);
    await bed.until('the CRL', () => bed.caches.state.crl.current.state === 'current');
    const source = bed.api.get(`/api/v1/namespaces/${CA_NAMESPACE}/configmaps/istio-ca-crl`);
    const [der] = decodeCrlsPem(source?.data?.['ca-crl.pem'] ?? '');
    const state = bed.caches.state.authority.current;
    expect(state.status).toBe('ready');
    if (state.status !== 'ready') return;
    expect(crlSignedBy(der!, state.authority.signerCertificateDer)).toBe(true);
    expect(crl.queue.scheduled).toBe(1); // looked at again at half the validity
    await bed.until('the copy in shop', () =>
      Boolean(bed.api.get('/api/v1/namespaces/shop/configmaps/istio-ca-crl')),
    );
    expect(bed.api.get('/api/v1/namespaces/shop/configmaps/istio-ca-crl')?.data?.['ca-crl.pem']).toBe(
      source?.data?.['ca-crl.pem'],
    );
  });

  it('signs once, not in a loop, when the operator’s CRL is issued by our own signer, and lists its entries', async () => {
    bed = controllerTestBed();
    await bed.start();
    /** The CA's own signer, and an operator CRL it issued (as istiod's intermediate would have). */
    let sources: CrlSources | undefined;
    let looks = 0;
    const sourcesNow = () => {
      if (++looks > 50) return undefined; // a signing loop stops here instead of hanging the test
      const state = bed.caches.state.authority.current;
      if (state.status !== 'ready') return undefined;
      const signer = {
        fingerprint: state.authority.signer.fingerprintSha256,
        certificateDer: state.authority.signerCertificateDer,
        privateKey: state.authority.signerKey,
      };
      sources ??= {
        signers: [signer],
        operatorPem: buildCrl({
          issuer: { certificate: signer.certificateDer, privateKey: signer.privateKey },
          crlNumber: 3n,
          thisUpdate: new Date(bed.clock.now()),
          nextUpdate: new Date(bed.clock.now() + 86_400_000),
          entries: [{ serial: '0c', revokedAt: new Date(bed.clock.now() - 60_000), reason: 'superseded' }],
        }).pem,
      };
      return sources;
    };
    const crl = bed.track(new CrlController({ ...controllerContext(bed), workers: 1, sources: sourcesNow }));
    crl.start();
    await readyAuthority(bed);
    await bed.until('the CRL', () => bed.caches.state.crl.current.state === 'current');
    await crl.queue.whenIdle();
    await bed.settle();
    const writes = bed.api.writes.filter(
      (w) =>
        w.path.includes('/configmaps/istio-ca-crl') ||
        (w.body as { metadata?: { name?: string } } | undefined)?.metadata?.name === 'istio-ca-crl',
    );
    expect(writes).toHaveLength(1);
    const text = bed.api.get(`/api/v1/namespaces/${CA_NAMESPACE}/configmaps/istio-ca-crl`)?.data?.[
      'ca-crl.pem'
    ];
    const published = decodeCrlsPem(text ?? '');
    expect(published, 'one CRL for the one issuer').toHaveLength(1);
    expect(parseCrl(published[0]!)).toMatchObject({
      crlNumber: expect.any(BigInt),
      entries: [{ serial: '0c', reason: 'superseded' }],
    });
    expect(parseCrl(published[0]!).crlNumber).not.toBe(3n);
  });
});
