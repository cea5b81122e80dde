import { afterEach, describe, expect, it } from 'vitest';
import { generateRootData } from '../../ca/self-signed.js';
import { SELF_SIGNED_SECRET, TRUST_BUNDLE_KEY, TRUST_BUNDLE_NAME } from '../../model/names.js';
import type { AuthorityController } from '../authority/controller.js';
import {
  CA_NAMESPACE,
  type ControllerTestBed,
  controllerContext,
  controllerTestBed,
  readyAuthority,
} from '../testing.js';
import { TrustBundleController } from './controller.js';

let bed: ControllerTestBed;
let authority: AuthorityController | undefined;
let controller: TrustBundleController | undefined;

afterEach(async () => {
  await controller?.stop();
  await authority?.stop();
  await bed.stop();
});

async function start(namespaces: string[], before: () => void = () => {}) {
  bed = controllerTestBed();
  for (const ns of namespaces) bed.namespace(ns);
  await bed.start();
  before();
  authority = await readyAuthority(bed);
  controller = new TrustBundleController(controllerContext(bed));
  controller.start();
  controller.enqueueAll();
  await controller.queue.whenIdle();
}

const bundlePath = (ns: string) => `/api/v1/namespaces/${ns}/configmaps/${TRUST_BUNDLE_NAME}`;
const creates = () => bed.api.writes.filter((w) => w.method === 'POST' && w.path.endsWith('/configmaps'));

describe('TrustBundleController', () => {
  it('creates istio-ca-root-cert with the root bundle in a managed namespace', async () => {
    await start(['shop']);
    const cm = bed.api.get(bundlePath('shop'));
    const state = bed.caches.state.authority.current;
    expect(state.status).toBe('ready');
    expect(cm?.data?.[TRUST_BUNDLE_KEY]).toBe(state.status === 'ready' && state.authority.rootBundlePem);
    expect(cm?.metadata?.labels).toEqual({
      'app.kubernetes.io/managed-by': 'alcazar',
      'istio.io/config': 'true',
    });
  });

  it('takes a 409 on create as the cache being behind: no error, no retry', async () => {
    await start(['shop'], () =>
      bed.api.failNext('POST', '/api/v1/namespaces/shop/configmaps', 409, 'already exists'),
    );
    expect(creates().length).toBeGreaterThanOrEqual(1);
    expect(controller!.queue.retries('shop')).toBe(0);
    expect(controller!.queue.scheduled).toBe(0);
  });

  it('takes a 403 on create as the namespace terminating: no error, no retry', async () => {
    await start(['going'], () =>
      bed.api.failNext('POST', '/api/v1/namespaces/going/configmaps', 403, 'namespace is being terminated'),
    );
    expect(creates().length).toBeGreaterThanOrEqual(1);
    expect(controller!.queue.retries('going')).toBe(0);
    expect(controller!.queue.scheduled).toBe(0);
  });

  it('refreshes every bundle when the CA bundle changes', async () => {
    await start(['a', 'b']);
    const secretPath = `/api/v1/namespaces/${CA_NAMESPACE}/secrets/${SELF_SIGNED_SECRET}`;
    const secret = bed.api.get(secretPath)!;
    const other = await generateRootData({
      trustDomain: 'cluster.local',
      keyAlgorithm: 'ECDSA_P256',
      ttlMs: 3_600_000,
      now: new Date(bed.clock.now()),
    });
    const current = Buffer.from(secret.data['ca-cert.pem'], 'base64').toString();
    await bed.api.request('PATCH', secretPath, {
      data: { 'root-cert.pem': Buffer.from(current + other['ca-cert.pem']).toString('base64') },
    });
    await bed.until('the new bundle', () => {
      const state = bed.caches.state.authority.current;
      return state.status === 'ready' && state.authority.roots.length === 2;
    });
    await bed.settle();
    await controller!.queue.whenIdle();
    for (const ns of ['a', 'b'])
      expect(bed.api.get(bundlePath(ns))?.data?.[TRUST_BUNDLE_KEY]).toContain(other['ca-cert.pem']!.trim());
    const patches = bed.api.writes.filter((w) => w.method === 'PATCH' && w.path.includes('/configmaps/'));
    expect(patches).toHaveLength(2);
  });
});
