// Smoke tests: the control plane the suite runs against is a real one, with
// the behaviours alcazar relies on (controller-manager, optimistic
// concurrency, watches).
import { execFileSync } from 'node:child_process';
import { CoreV1Api, type V1Secret, VersionApi, Watch } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { KUBERNETES_VERSION } from '../cluster/binaries.js';
import { adminKubeConfig, createTestNamespace, expectApiError } from './support/kube.js';
import { waitFor } from './support/wait.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
let ns: Awaited<ReturnType<typeof createTestNamespace>>;

beforeAll(async () => {
  ns = await createTestNamespace(core, 'smoke');
});
afterAll(async () => {
  await ns?.remove();
});

describe('the local control plane', () => {
  it('reports the pinned Kubernetes version, to client-node and to kubectl', async () => {
    const info = await kc.makeApiClient(VersionApi).getCode();
    expect(info.gitVersion).toBe(KUBERNETES_VERSION);
    const out = execFileSync('kubectl', ['--kubeconfig', inject('kubeconfig'), 'version', '-o', 'json'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(JSON.parse(out).serverVersion.gitVersion).toBe(KUBERNETES_VERSION);
  });

  it('gives a new namespace its default ServiceAccount (the controller-manager runs)', async () => {
    const sa = await waitFor('ServiceAccount default in a new namespace', async () => {
      const list = await core.listNamespacedServiceAccount({ namespace: ns.name });
      return list.items.find((item) => item.metadata?.name === 'default');
    });
    expect(sa.metadata?.namespace).toBe(ns.name);
  });

  it('creates, reads, rejects a stale update with 409, and deletes a Secret', async () => {
    const created = await core.createNamespacedSecret({
      namespace: ns.name,
      body: { metadata: { name: 'crud' }, type: 'Opaque', stringData: { a: '1' } },
    });
    const read = await core.readNamespacedSecret({ namespace: ns.name, name: 'crud' });
    expect(Buffer.from(read.data?.a ?? '', 'base64').toString()).toBe('1');

    const updated = await core.replaceNamespacedSecret({
      namespace: ns.name,
      name: 'crud',
      body: { ...read, data: { a: Buffer.from('2').toString('base64') } },
    });
    expect(updated.metadata?.resourceVersion).not.toBe(created.metadata?.resourceVersion);

    // `read` still carries the old resourceVersion: optimistic concurrency must refuse it.
    const stale: V1Secret = { ...read, data: { a: Buffer.from('3').toString('base64') } };
    expect(
      await expectApiError(core.replaceNamespacedSecret({ namespace: ns.name, name: 'crud', body: stale })),
    ).toBe(409);

    await core.deleteNamespacedSecret({ namespace: ns.name, name: 'crud' });
    expect(await expectApiError(core.readNamespacedSecret({ namespace: ns.name, name: 'crud' }))).toBe(404);
  });

  it('delivers ADDED, MODIFIED and DELETED watch events for a Secret', async () => {
    const events: string[] = [];
    const list = await core.listNamespacedSecret({ namespace: ns.name });
    const watch = await new Watch(kc).watch(
      `/api/v1/namespaces/${ns.name}/secrets`,
      { resourceVersion: list.metadata?.resourceVersion, fieldSelector: 'metadata.name=watched' },
      (phase, obj: V1Secret) => events.push(`${phase} ${obj.metadata?.name}`),
      () => {},
    );
    try {
      await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'watched' } } });
      await core.patchNamespacedSecret({
        namespace: ns.name,
        name: 'watched',
        body: [{ op: 'add', path: '/data', value: { k: 'dg==' } }],
      });
      await core.deleteNamespacedSecret({ namespace: ns.name, name: 'watched' });
      await waitFor('three watch events', () => events.length >= 3);
      expect(events).toEqual(['ADDED watched', 'MODIFIED watched', 'DELETED watched']);
    } finally {
      watch.abort();
    }
  });
});
