// ConfigMap istio-ca-root-cert in every managed namespace.
import type { V1ConfigMap } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { useHarness } from './support/harness.js';
import { statusCodeOf } from './support/kube.js';
import { waitFor } from './support/wait.js';
import { mergePatch, pemsOf, readSecret } from './support/workload.js';

const harness = useHarness();
const { core } = harness;
const NAME = 'istio-ca-root-cert';
let caNamespace: string;
let rootPem: string;

const namespace = (labels: Record<string, string> = {}) => harness.namespace('tb', labels);

async function readConfigMap(namespace: string): Promise<V1ConfigMap | undefined> {
  try {
    return await core.readNamespacedConfigMap({ namespace, name: NAME });
  } catch (err) {
    if (statusCodeOf(err) === 404) return undefined;
    throw err;
  }
}

function waitForBundle(namespace: string, accept: (cm: V1ConfigMap) => boolean = () => true) {
  return waitFor(`ConfigMap ${namespace}/${NAME}`, async () => {
    const cm = await readConfigMap(namespace);
    return cm && accept(cm) ? cm : undefined;
  });
}

beforeAll(async () => {
  caNamespace = await harness.namespace('ca');
  await harness.controller({ caNamespace });
  const caSecret = await waitFor('istio-ca-secret', () => readSecret(core, caNamespace, 'istio-ca-secret'));
  rootPem = pemsOf(caSecret).secret.data?.['ca-cert.pem']
    ? Buffer.from(caSecret.data!['ca-cert.pem']!, 'base64').toString()
    : '';
});

describe('trust bundle ConfigMaps', () => {
  it('a managed namespace gets istio-ca-root-cert with the root, labelled istio.io/config=true', async () => {
    const ns = await namespace();
    const cm = await waitForBundle(ns);
    expect(cm.data).toEqual({ 'root-cert.pem': rootPem });
    expect(cm.metadata?.labels?.['istio.io/config']).toBe('true');
    expect(cm.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('alcazar');
    // Workload Secrets carry the same bundle.
    const secret = await waitFor('istio.default', () => readSecret(core, ns, 'istio.default'));
    expect(pemsOf(secret).root).toBe(rootPem);
  });

  it('edits are reverted and extra keys removed', async () => {
    const ns = await namespace();
    await waitForBundle(ns);
    const edited = await core.patchNamespacedConfigMap(
      { namespace: ns, name: NAME, body: { data: { 'root-cert.pem': 'tampered', extra: 'x' } } },
      mergePatch,
    );
    const reverted = await waitForBundle(
      ns,
      (cm) => cm.metadata?.resourceVersion !== edited.metadata?.resourceVersion,
    );
    expect(reverted.data).toEqual({ 'root-cert.pem': rootPem });
  });

  it('a deleted bundle is re-created', async () => {
    const ns = await namespace();
    const first = await waitForBundle(ns);
    await core.deleteNamespacedConfigMap({ namespace: ns, name: NAME });
    const second = await waitForBundle(ns, (cm) => cm.metadata?.uid !== first.metadata?.uid);
    expect(second.data).toEqual({ 'root-cert.pem': rootPem });
  });

  it('someone else’s istio-ca-root-cert is never touched, and is reported', async () => {
    const ns = await namespace({ 'ca.istio.io/override': 'false' });
    const foreign = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: NAME }, data: { 'root-cert.pem': 'istiod wrote this' } },
    });
    await core.patchNamespace(
      { name: ns, body: { metadata: { labels: { 'ca.istio.io/override': 'true' } } } },
      mergePatch,
    );
    const warning = await waitFor('a ForeignConfigMap warning', async () => {
      const events = await core.listNamespacedEvent({
        namespace: ns,
        fieldSelector: `involvedObject.name=${NAME}`,
      });
      return events.items.find((e) => e.reason === 'ForeignConfigMap');
    });
    expect(warning.type).toBe('Warning');
    expect((await readConfigMap(ns))?.metadata?.resourceVersion).toBe(foreign.metadata?.resourceVersion);
  });

  it('a namespace that stops being managed loses our bundle', async () => {
    const ns = await namespace();
    await waitForBundle(ns);
    await core.patchNamespace(
      { name: ns, body: { metadata: { labels: { 'ca.istio.io/override': 'false' } } } },
      mergePatch,
    );
    await waitFor('the bundle to be deleted', async () => (await readConfigMap(ns)) === undefined);
  });
});
