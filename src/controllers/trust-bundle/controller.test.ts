import { afterEach, describe, expect, it } from 'vitest';
import { TRUST_BUNDLE_KEY, TRUST_BUNDLE_NAME } from '../../model/names.js';
import {
  bedWithReadyAuthority,
  type ControllerTestBed,
  controllerContext,
  growCaBundle,
} from '../testing.js';
import { TrustBundleController } from './controller.js';

let bed: ControllerTestBed;
let controller: TrustBundleController | undefined;
afterEach(() => bed.stop());

async function start(namespaces: string[], seed: (bed: ControllerTestBed) => void = () => {}) {
  bed = await bedWithReadyAuthority((fresh) => {
    for (const ns of namespaces) fresh.namespace(ns);
    seed(fresh);
  });
  controller = bed.track(new TrustBundleController(controllerContext(bed)));
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
    await start(['shop'], (fresh) =>
      fresh.api.failNext('POST', '/api/v1/namespaces/shop/configmaps', 409, 'already exists'),
    );
    expect(creates().length).toBeGreaterThanOrEqual(1);
    expect(controller!.queue.retries('shop')).toBe(0);
    expect(controller!.queue.scheduled).toBe(0);
  });

  it('retries a 403 on create while the cache shows the namespace active (a quota, RBAC, admission)', async () => {
    await start(['a']);
    // Refused for as long as the namespace's own events make it look again, then allowed.
    for (let i = 0; i < 3; i++)
      bed.api.failNext('POST', '/api/v1/namespaces/shop/configmaps', 403, 'exceeded quota: configmaps');
    await bed.api.request('POST', '/api/v1/namespaces', { metadata: { name: 'shop' } });
    await bed.settle();
    await bed.clock.advance(10_000);
    await controller!.queue.whenIdle();
    expect(bed.api.get(bundlePath('shop')), 'published once allowed').toBeDefined();
    expect(creates().filter((w) => w.path.includes('/shop/')).length).toBeGreaterThanOrEqual(4);
  });

  it('counts only its own bundles toward a rotation: someone else’s cannot hold it up', async () => {
    await start(['a', 'legacy'], (fresh) =>
      fresh.api.seed(bundlePath('legacy'), {
        metadata: { name: TRUST_BUNDLE_NAME, namespace: 'legacy' },
        data: { [TRUST_BUNDLE_KEY]: 'istiod’s bundle' },
      }),
    );
    const state = bed.caches.state.authority.current;
    if (state.status !== 'ready') throw new Error('the CA is not ready');
    expect(controller!.progress(state.authority.rootBundleHash)).toEqual({ current: 1, total: 1 });
    expect(bed.api.get(bundlePath('legacy'))?.data?.[TRUST_BUNDLE_KEY]).toBe('istiod’s bundle');
  });

  it('refreshes every bundle when the CA bundle changes', async () => {
    await start(['a', 'b']);
    const newRoot = await growCaBundle(bed);
    await bed.until('the new bundle', () => {
      const state = bed.caches.state.authority.current;
      return state.status === 'ready' && state.authority.roots.length === 2;
    });
    await bed.settle();
    await controller!.queue.whenIdle();
    for (const ns of ['a', 'b'])
      expect(bed.api.get(bundlePath(ns))?.data?.[TRUST_BUNDLE_KEY]).toContain(newRoot);
    const patches = bed.api.writes.filter((w) => w.method === 'PATCH' && w.path.includes('/configmaps/'));
    expect(patches).toHaveLength(2);
  });
});
