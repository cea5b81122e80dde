// The content digest as the controller writes and keeps it (src/ca/content-digest.ts). That an
// edited data value with the digest kept is healed is pinned by controller.test.ts's hand-edit
// tests: their merge patches leave the annotation in place.
import { createHash, hkdfSync } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { SigningAuthority } from '../../ca/authority.js';
import { contentDigestMatches, contentDigestV1 } from '../../ca/content-digest.js';
import { CONTENT_DIGEST_ANNOTATION } from '../../model/names.js';
import {
  bedWithReadyAuthority,
  type ControllerTestBed,
  controllerContext,
  growCaBundle,
} from '../testing.js';
import { WorkloadSecretsController } from './controller.js';
import { leafChecks, observeSecret } from './observe.js';

let bed: ControllerTestBed;
afterEach(() => bed.stop());

const PATH = '/api/v1/namespaces/shop/secrets/istio.cart';
const MERGE = 'application/merge-patch+json';
/** An annotation someone else adds: alcazar's writes must keep it. */
const annotateByHand = () =>
  bed.api.request('PATCH', PATH, { metadata: { annotations: { 'team.example/owner': 'payments' } } }, MERGE);
const shopWrites = () => bed.api.writes.filter((w) => w.path.startsWith('/api/v1/namespaces/shop/'));

async function start(log = pino({ level: 'silent' })) {
  bed = await bedWithReadyAuthority((fresh) => {
    fresh.namespace('shop');
    fresh.api.seed('/api/v1/namespaces/shop/serviceaccounts/cart', { metadata: { name: 'cart' } });
  });
  const controller = bed.track(
    new WorkloadSecretsController({ ...controllerContext(bed), log, foreignRecheckMs: 600_000 }),
  );
  controller.start();
  await controller.queue.whenIdle();
  await bed.settle();
  return controller;
}

function authority(): SigningAuthority {
  const current = bed.caches.state.authority.current;
  if (current.status !== 'ready') throw new Error('the CA is not ready');
  return current.authority;
}

function digestHolds(secret: V1Secret): boolean {
  const bytes = (name: string) => Buffer.from(secret.data![name]!, 'base64');
  return contentDigestMatches(
    authority(),
    {
      'cert-chain.pem': bytes('cert-chain.pem'),
      'key.pem': bytes('key.pem'),
      'root-cert.pem': bytes('root-cert.pem'),
    },
    secret.metadata?.annotations?.[CONTENT_DIGEST_ANNOTATION],
  );
}

describe('the content digest of workload Secrets', () => {
  it('is written with the Secret, and lets a later look (a restart listing it) skip the signature and key checks', async () => {
    await start();
    const secret = bed.api.get(PATH)! as V1Secret;
    expect(digestHolds(secret)).toBe(true);
    const before = leafChecks.signatureAndKey;
    const view = observeSecret(secret, undefined, authority);
    expect(leafChecks.signatureAndKey).toBe(before);
    expect(view.verified).toStrictEqual({ signer: authority().signer.fingerprintSha256, ok: true });
    expect(view.dataProblem).toBeUndefined();
  });

  it('a reissue writes a new digest and keeps an annotation someone else added', async () => {
    const c = await start();
    await annotateByHand();
    await bed.api.request(
      'PATCH',
      PATH,
      { data: { 'key.pem': Buffer.from('not a key').toString('base64') } },
      MERGE,
    );
    await bed.until(
      'the reissue',
      () => (bed.api.get(PATH) as V1Secret).data!['key.pem'] !== Buffer.from('not a key').toString('base64'),
    );
    await c.queue.whenIdle();
    const healed = bed.api.get(PATH) as V1Secret;
    expect(healed.metadata?.annotations?.['team.example/owner']).toBe('payments');
    expect(digestHolds(healed)).toBe(true);
  });

  it('a bundle refresh keeps the digest, which still verifies: the next look skips the checks; nothing else', async () => {
    const c = await start();
    await annotateByHand();
    await c.queue.whenIdle();
    const digest = (bed.api.get(PATH) as V1Secret).metadata?.annotations?.[CONTENT_DIGEST_ANNOTATION];
    const writes = shopWrites().length;
    await growCaBundle(bed);
    await bed.until('the bundle refresh', () => shopWrites().length > writes);
    await c.queue.whenIdle();
    const refreshed = bed.api.get(PATH) as V1Secret;
    expect(refreshed.metadata?.annotations?.[CONTENT_DIGEST_ANNOTATION]).toBe(digest);
    expect(refreshed.metadata?.annotations?.['team.example/owner']).toBe('payments');
    expect(digestHolds(refreshed)).toBe(true);
    const before = leafChecks.signatureAndKey;
    const view = observeSecret(refreshed, undefined, authority);
    expect(leafChecks.signatureAndKey).toBe(before);
    expect(view.rootBundleHash).toBe(authority().rootBundleHash);
    expect(view.dataProblem).toBeUndefined();
    c.enqueueAll();
    await c.queue.whenIdle();
    expect(shopWrites().length).toBe(writes + 1);
  });

  it('a Secret under a v1 digest (an older alcazar) is refreshed without touching it, then checked in full', async () => {
    const c = await start();
    const secret = bed.api.get(PATH) as V1Secret;
    const bytes = (name: string) => Buffer.from(secret.data![name]!, 'base64');
    const v1 = contentDigestV1(authority(), {
      'cert-chain.pem': bytes('cert-chain.pem'),
      'key.pem': bytes('key.pem'),
      'root-cert.pem': bytes('root-cert.pem'),
    });
    await bed.api.request(
      'PATCH',
      PATH,
      { metadata: { annotations: { [CONTENT_DIGEST_ANNOTATION]: v1 } } },
      MERGE,
    );
    await c.queue.whenIdle();
    const writes = shopWrites().length;
    await growCaBundle(bed);
    await bed.until('the bundle refresh', () => shopWrites().length > writes);
    await c.queue.whenIdle();
    const refreshed = bed.api.get(PATH) as V1Secret;
    expect(refreshed.metadata?.annotations?.[CONTENT_DIGEST_ANNOTATION]).toBe(v1);
    expect(digestHolds(refreshed)).toBe(false);
    const before = leafChecks.signatureAndKey;
    const view = observeSecret(refreshed, undefined, authority);
    expect(leafChecks.signatureAndKey).toBe(before + 1);
    expect(view.dataProblem).toBeUndefined();
    c.enqueueAll();
    await c.queue.whenIdle();
    expect(shopWrites().length).toBe(writes + 1);
  });

  it('its key never reaches the logs', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'trace' }, { write: (line: string) => lines.push(line) });
    const c = await start(log);
    await bed.api.request(
      'PATCH',
      PATH,
      { data: { 'cert-chain.pem': Buffer.from('edited').toString('base64') } },
      MERGE,
    );
    await bed.until('the reissue', () => lines.some((l) => l.includes('InvalidData')));
    await c.queue.whenIdle();
    const signer = authority();
    const key = Buffer.from(
      hkdfSync(
        'sha256',
        signer.signerKey.export({ format: 'der', type: 'pkcs8' }),
        createHash('sha256').update(signer.signerCertificateDer).digest(),
        'alcazar.dev/content-digest v1',
        32,
      ),
    );
    const text = lines.join('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const encoding of ['hex', 'base64', 'base64url'] as const)
      expect(text).not.toContain(key.toString(encoding));
  });
});
