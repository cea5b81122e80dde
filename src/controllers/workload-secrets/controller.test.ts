import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Metrics } from '../../telemetry/metrics.js';
import {
  bedWithReadyAuthority,
  type ControllerTestBed,
  controllerContext,
  growCaBundle,
} from '../testing.js';
import { WorkloadSecretsController } from './controller.js';
import { createForbiddenIsExpected } from './plan.js';

let bed: ControllerTestBed;
let controller: WorkloadSecretsController | undefined;

afterEach(() => bed.stop());

const secretPath = (ns: string, name: string) => `/api/v1/namespaces/${ns}/secrets/${name}`;
/** Single-object reads in the workload namespace (the CA's own Secrets are read elsewhere). */
const shopReads = () => bed.api.reads.filter((path) => path.startsWith('/api/v1/namespaces/shop/'));

async function start(setup: (bed: ControllerTestBed) => void = () => {}, metrics?: Metrics) {
  bed = await bedWithReadyAuthority((fresh) => {
    fresh.namespace('shop');
    fresh.api.seed('/api/v1/namespaces/shop/serviceaccounts/cart', { metadata: { name: 'cart' } });
    setup(fresh);
  });
  controller = bed.track(
    new WorkloadSecretsController({ ...controllerContext(bed), foreignRecheckMs: 600_000, metrics }),
  );
  controller.start(); // subscribing told it about every cached ServiceAccount already
  await controller.queue.whenIdle();
  await bed.settle();
  return controller;
}

describe('WorkloadSecretsController', () => {
  it('creates istio.<sa> owned by its ServiceAccount, and reports the issue', async () => {
    await start();
    const secret = bed.api.get(secretPath('shop', 'istio.cart'));
    expect(secret?.type).toBe('istio.io/key-and-cert');
    expect(Object.keys(secret?.data ?? {}).sort()).toEqual(['cert-chain.pem', 'key.pem', 'root-cert.pem']);
    expect(secret?.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'ServiceAccount', name: 'cart' });
    expect(bed.events.reasons()).toEqual(['CertificateIssued']);
    // Its watch event brings it back: nothing more to do.
    await controller!.queue.whenIdle();
    expect(bed.api.writes.filter((w) => w.path.startsWith('/api/v1/namespaces/shop/'))).toHaveLength(1);
  });

  it('forgets a ServiceAccount once it and its Secret are gone: churn does not grow what enqueueAll walks', async () => {
    const c = await start((b) =>
      b.api.seed('/api/v1/namespaces/shop/serviceaccounts/db', { metadata: { name: 'db' } }),
    );
    expect(bed.api.get(secretPath('shop', 'istio.db'))).toBeDefined();
    // cart: the controller deletes the Secret of the deleted ServiceAccount itself.
    await bed.api.request('DELETE', '/api/v1/namespaces/shop/serviceaccounts/cart');
    // db: both go before the controller hears of either (the garbage collector, a namespace going away).
    const release = bed.api.holdWatchEvents();
    await bed.api.request('DELETE', '/api/v1/namespaces/shop/serviceaccounts/db');
    await bed.api.request('DELETE', secretPath('shop', 'istio.db'));
    release();
    await c.queue.whenIdle();
    await bed.settle();
    expect(bed.api.get(secretPath('shop', 'istio.cart'))).toBeUndefined();
    const looked: string[] = [];
    const reconcile = c.reconcile.bind(c);
    c.reconcile = (key) => {
      looked.push(key);
      return reconcile(key);
    };
    c.enqueueAll();
    await c.queue.whenIdle();
    expect(looked).toEqual([]);
  });

  it('leaves a foreign Secret at the name alone and reports it (409 on create)', async () => {
    const c = await start((b) =>
      b.api.seed(secretPath('shop', 'istio.cart'), { metadata: { name: 'istio.cart' }, data: { x: 'eA==' } }),
    );
    expect(bed.api.get(secretPath('shop', 'istio.cart'))?.data).toEqual({ x: 'eA==' });
    expect(bed.events.reasons()).toEqual(['ForeignSecret']);
    expect(c.queue.scheduledAt('shop/cart')).toBe(bed.clock.now() + 600_000);
  });

  it('retries a 403 on create when the namespace is not going away; expects it when it is', async () => {
    const c = await start((b) => b.api.failNext('POST', '/api/v1/namespaces/shop/secrets', 403, 'forbidden'));
    expect(c.queue.retries('shop/cart')).toBe(1);
    expect(bed.caches.state.failingWorkloads.has('shop/cart')).toBe(true);
    await bed.clock.advance(1_000);
    await c.queue.whenIdle();
    expect(bed.api.get(secretPath('shop', 'istio.cart'))).toBeDefined();
    expect(createForbiddenIsExpected({ labels: {}, terminating: true })).toBe(true);
    expect(createForbiddenIsExpected(undefined)).toBe(true);
    expect(createForbiddenIsExpected({ labels: {}, terminating: false })).toBe(false);
  });

  it('refreshes the bundle of a Secret when the CA bundle grows, keeping key and leaf', async () => {
    const c = await start();
    const before = bed.api.get(secretPath('shop', 'istio.cart'))!;
    const newRoot = await growCaBundle(bed);
    await bed.until('the bundle refresh', () => {
      const s = bed.api.get(secretPath('shop', 'istio.cart'))!;
      return s.metadata?.resourceVersion !== before.metadata?.resourceVersion;
    });
    await c.queue.whenIdle();
    const after = bed.api.get(secretPath('shop', 'istio.cart'))!;
    expect(after.data['key.pem']).toBe(before.data['key.pem']);
    expect(Buffer.from(after.data['root-cert.pem'], 'base64').toString()).toContain(newRoot);
    expect(bed.events.reasons()).toEqual(['CertificateIssued']); // no new certificate
  });

  it('issues only the DNS names the policy allows, and reports the refused ones once', async () => {
    const c = await start((b) =>
      b.api.seed('/api/v1/namespaces/shop/serviceaccounts/web', {
        metadata: { name: 'web', annotations: { 'alcazar.dev/dns-names': 'web.shop.svc,api.bank.svc' } },
      }),
    );
    const secret = bed.api.get(secretPath('shop', 'istio.web'))!;
    const leaf = new X509Certificate(
      Buffer.from(secret.data['cert-chain.pem'], 'base64').toString().split('-----END CERTIFICATE-----')[0] +
        '-----END CERTIFICATE-----\n',
    );
    expect(leaf.subjectAltName).toContain('DNS:web.shop.svc');
    expect(leaf.subjectAltName).not.toContain('api.bank.svc');
    expect(bed.events.reasons()).toContain('DNSNameRefused');
    // Looking again changes nothing: the certificate already has exactly the allowed names.
    c.enqueueAll();
    await c.queue.whenIdle();
    expect(bed.api.get(secretPath('shop', 'istio.web'))!.metadata?.resourceVersion).toBe(
      secret.metadata?.resourceVersion,
    );
  });

  it('counts only a deletion of someone else as a deleted Secret, not its own delete', async () => {
    const created: string[] = [];
    const metrics = new Proxy(
      {},
      {
        get: (_, name) =>
          name === 'timeReconcile'
            ? (fn: () => Promise<void>) => fn()
            : name === 'workloadSecretCreated'
              ? (why: string) => created.push(why)
              : () => {},
      },
    ) as Metrics;
    const c = await start(() => {}, metrics);
    expect(created).toEqual(['serviceAccount']);
    // The ServiceAccount goes: alcazar deletes the Secret itself.
    await bed.api.request('DELETE', '/api/v1/namespaces/shop/serviceaccounts/cart');
    await bed.until('the Secret deleted', () => bed.api.get(secretPath('shop', 'istio.cart')) === undefined);
    await c.queue.whenIdle();
    // A new ServiceAccount of the same name is a new one served, not a deleted Secret healed.
    bed.api.seed('/api/v1/namespaces/shop/serviceaccounts/cart', { metadata: { name: 'cart' } });
    await bed.until('the Secret again', () => bed.api.get(secretPath('shop', 'istio.cart')) !== undefined);
    expect(created).toEqual(['serviceAccount', 'serviceAccount']);
    // Someone else deleting it is: the Secret is healed and counted as such.
    await bed.api.request('DELETE', secretPath('shop', 'istio.cart'));
    await bed.until('the Secret healed', () => created.length === 3);
    expect(created[2]).toBe('secretDeleted');
  });

  for (const [dataKey, tamper] of [
    ['key.pem', 'another key'],
    ['cert-chain.pem', 'a chain that is not ours'],
    ['root-cert.pem', 'a root nobody trusts'],
  ] as const) {
    it(`a hand-edited ${dataKey} arrives as a metadata event, is read once and healed; our own writes are never read back`, async () => {
      const c = await start();
      expect(shopReads(), 'the Secret alcazar created was not read back').toEqual([]);
      const before = bed.api.get(secretPath('shop', 'istio.cart'))!;
      await bed.api.request(
        'PATCH',
        secretPath('shop', 'istio.cart'),
        { data: { [dataKey]: Buffer.from(tamper).toString('base64') } },
        'application/merge-patch+json',
      );
      await bed.until('the Secret healed', () => {
        const s = bed.api.get(secretPath('shop', 'istio.cart'))!;
        return s.data[dataKey] !== Buffer.from(tamper).toString('base64');
      });
      await c.queue.whenIdle();
      await bed.settle();
      expect(shopReads()).toEqual([secretPath('shop', 'istio.cart')]);
      const after = bed.api.get(secretPath('shop', 'istio.cart'))!;
      if (dataKey === 'root-cert.pem') expect(after.data['key.pem']).toBe(before.data['key.pem']);
      else expect(after.data['key.pem']).not.toBe(before.data['key.pem']);
      expect(after.data['root-cert.pem']).toBe(before.data['root-cert.pem']);
    });
  }

  it('at the resync period every key is reconciled again, from the cache', async () => {
    const c = await start();
    const added: string[] = [];
    const add = c.queue.add.bind(c.queue);
    c.queue.add = (key: string) => {
      added.push(key);
      add(key);
    };
    // Bookmarks keep the watches alive, so what ends them is the resync period (1 h in the bed, +20%).
    for (let minutes = 0; minutes < 75; minutes += 5) {
      bed.api.bookmark();
      await bed.clock.advance(5 * 60_000);
    }
    await c.queue.whenIdle();
    // Once: the ServiceAccounts' resync looks at it; the Secrets' resync only at keys without one.
    expect(added.filter((key) => key === 'shop/cart')).toEqual(['shop/cart']);
    expect(shopReads(), 'nothing changed: nothing was read').toEqual([]);
    expect(bed.api.writes.filter((w) => w.path.startsWith('/api/v1/namespaces/shop/'))).toHaveLength(1);
  });
});
