// The metadata-only watch of workload Secrets (issue #18), against the real
// apiserver through the test proxy, which records every request: alcazar
// never reads back a Secret it wrote, reads a Secret someone else edited once
// and heals it, and an edit whose watch event was lost is found by the
// metadata-only relist at the resync period.
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { ApiProxy } from './support/api-proxy.js';
import { useHarness } from './support/harness.js';
import { watchRestarts } from './support/metrics.js';
import { waitFor } from './support/wait.js';
import { leafOf, mergePatch, opensslVerify, waitForWorkloadSecret } from './support/workload.js';

const harness = useHarness({ cleanup: 'each' });
const { core } = harness;

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** Single-Secret GETs in `namespace` the controller made through the proxy (not lists, not watches). */
const secretReads = (proxy: ApiProxy, namespace: string) =>
  proxy.records.filter(
    (r) => r.method === 'GET' && r.path.startsWith(`/api/v1/namespaces/${namespace}/secrets/`),
  );

async function serviceAccountWithSecret(ns: string, name: string): Promise<V1Secret> {
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
  return waitForWorkloadSecret(core, ns, name);
}

async function edit(ns: string, sa: string, data: Record<string, string>): Promise<V1Secret> {
  return core.patchNamespacedSecret({ namespace: ns, name: `istio.${sa}`, body: { data } }, mergePatch);
}

function healed(ns: string, sa: string, edited: V1Secret): Promise<V1Secret> {
  return waitForWorkloadSecret(
    core,
    ns,
    sa,
    (s) => s.metadata?.resourceVersion !== edited.metadata?.resourceVersion,
  );
}

describe('the metadata-only Secret watch', () => {
  it('heals a hand-edited cert-chain.pem, key.pem and root-cert.pem, reading each edited Secret; its own writes are never read back', async () => {
    const caNamespace = await harness.namespace('ca');
    const proxy = await harness.apiProxy();
    await harness.controller({ caNamespace, kubeconfig: proxy.kubeconfig });
    const ns = await harness.namespace('mw');
    const sas = ['chain', 'key', 'root', 'donor'];
    const before = Object.fromEntries(
      await Promise.all(sas.map(async (sa) => [sa, await serviceAccountWithSecret(ns, sa)] as const)),
    );
    expect(secretReads(proxy, ns), 'Secrets alcazar created were not read back').toEqual([]);

    const edits = {
      chain: await edit(ns, 'chain', { 'cert-chain.pem': before.donor!.data!['cert-chain.pem']! }),
      key: await edit(ns, 'key', { 'key.pem': before.donor!.data!['key.pem']! }),
      root: await edit(ns, 'root', { 'root-cert.pem': b64('a root nobody trusts') }),
    };
    const after = {
      chain: await healed(ns, 'chain', edits.chain),
      key: await healed(ns, 'key', edits.key),
      root: await healed(ns, 'root', edits.root),
    };
    expect(leafOf(after.chain).uris).toEqual([`spiffe://cluster.local/ns/${ns}/sa/chain`]);
    expect(opensslVerify(after.chain)).toContain('OK');
    expect(leafOf(after.key).serialNumberHex).not.toBe(leafOf(before.key!).serialNumberHex);
    expect(after.key.data!['key.pem']).not.toBe(before.donor!.data!['key.pem']);
    expect(after.root.data!['root-cert.pem']).toBe(before.root!.data!['root-cert.pem']);
    expect(after.root.data!['key.pem'], 'a refreshed bundle keeps the key').toBe(
      before.root!.data!['key.pem'],
    );

    // Each edited Secret was read (at least once: an event may arrive while a read is under way);
    // the donor, never edited, and the healing writes themselves were not.
    const read = new Set(secretReads(proxy, ns).map((r) => r.path.split('/').pop()));
    expect([...read].sort()).toEqual(['istio.chain', 'istio.key', 'istio.root']);
  });

  it('reads a Secret that is gone by the time of its read once, not in a loop', async () => {
    const caNamespace = await harness.namespace('ca');
    const proxy = await harness.apiProxy();
    await harness.controller({ caNamespace, kubeconfig: proxy.kubeconfig });
    const ns = await harness.namespace('gone');
    await serviceAccountWithSecret(ns, 'brief');
    const path = `/api/v1/namespaces/${ns}/secrets/istio.brief`;

    // The read an edit causes finds the Secret and its ServiceAccount deleted just before it arrives:
    // the answer is a 404 and nothing will bring the Secret back.
    let deleted = false;
    proxy.beforeForward(async (method, requested) => {
      if (deleted || method !== 'GET' || requested !== path) return;
      deleted = true;
      await core.deleteNamespacedServiceAccount({ namespace: ns, name: 'brief' });
      await core.deleteNamespacedSecret({ namespace: ns, name: 'istio.brief' });
    });
    await edit(ns, 'brief', { 'key.pem': b64('not the key') });
    await waitFor('the read to find the Secret gone', () =>
      proxy.records.some((r) => r.path === path && r.status === 404) ? true : undefined,
    );
    proxy.beforeForward(undefined);

    // The controller has moved on (it issued for a ServiceAccount created afterwards): the gone
    // Secret was read once (twice at most, were an event to ask for it again meanwhile).
    await serviceAccountWithSecret(ns, 'later');
    const reads = proxy.records.filter((r) => r.method === 'GET' && r.path === path);
    expect(reads.length, `reads of ${path}: ${reads.map((r) => r.status).join(', ')}`).toBeLessThanOrEqual(2);
  });

  it('an edit whose watch event is lost is healed by the metadata-only relist at the resync period', async () => {
    const caNamespace = await harness.namespace('ca');
    const proxy = await harness.apiProxy();
    const proc = await harness.controller({
      caNamespace,
      kubeconfig: proxy.kubeconfig,
      args: ['--resync-period=8s', '--relist-period=8s', '--watch-stall-timeout=5m'],
    });
    const ns = await harness.namespace('lost');
    const before = await serviceAccountWithSecret(ns, 'quiet');
    const resyncsBefore = await watchRestarts(proc, 'workload secrets', 'resync');

    // Every watch stream stays open and silent, dropping what happens meanwhile: the edit's event is lost.
    proxy.freezeWatches({ drop: true });
    const withheld = proxy.stats.eventsWithheld;
    const from = proxy.records.length;
    const edited = await edit(ns, 'quiet', { 'key.pem': b64('not the key') });
    const after = await healed(ns, 'quiet', edited);
    expect(proxy.stats.eventsWithheld, 'the edit was never delivered by a watch').toBeGreaterThan(withheld);
    expect(leafOf(after).serialNumberHex).not.toBe(leafOf(before).serialNumberHex);
    expect(opensslVerify(after)).toContain('OK');

    // What found it: a relist of the Secrets' metadata, then a read of the one that changed.
    const since = proxy.records.slice(from);
    expect(
      since.some(
        (r) => r.method === 'GET' && r.path.startsWith('/api/v1/secrets?') && !r.path.includes('watch='),
      ),
    ).toBe(true);
    expect(
      since.some((r) => r.method === 'GET' && r.path === `/api/v1/namespaces/${ns}/secrets/istio.quiet`),
    ).toBe(true);
    await waitFor('the resync to be counted', async () =>
      (await watchRestarts(proc, 'workload secrets', 'resync')) > resyncsBefore ? true : undefined,
    );
    expect(await watchRestarts(proc, 'workload secrets', 'stalled')).toBe(0);
    proxy.thawWatches();
  });
});
