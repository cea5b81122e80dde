// The content digest of workload Secrets (alcazar.dev/content-digest) against the real apiserver:
// what alcazar writes verifies under the CA's own key after the apiserver's round trip, a data
// value edited by hand with the digest kept is still found and healed, and a restart over Secrets
// it wrote writes nothing.
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { CONTENT_DIGEST_ANNOTATION } from '../../src/model/names.js';
import { caAuthority, digestHolds } from './support/content-digest.js';
import { useHarness } from './support/harness.js';
import { leafOf, mergePatch, readSecret, waitForWorkloadSecret } from './support/workload.js';

const harness = useHarness({ cleanup: 'each' });
const { core } = harness;
const N = 30;

describe('the content digest of workload Secrets', () => {
  it('verifies under the CA key; a restart over the Secrets writes nothing; a hand edit under a kept digest is healed', async () => {
    const caNamespace = await harness.namespace('ca');
    const first = await harness.controller({ caNamespace });
    const ns = await harness.namespace('digest');
    const names = Array.from({ length: N }, (_, i) => `sa-${i}`);
    for (const name of names)
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
    const written = await Promise.all(names.map((sa) => waitForWorkloadSecret(core, ns, sa)));
    const authority = await caAuthority(core, caNamespace);
    expect(written.filter((s) => !digestHolds(authority, s)).map((s) => s.metadata?.name)).toEqual([]);
    await first.stop();

    // A restart lists every Secret, judges each by its digest, and finds nothing to do.
    const proxy = await harness.apiProxy();
    const second = await harness.controller({ caNamespace, kubeconfig: proxy.kubeconfig });
    await second.waitForLog(
      'the first pass',
      (l) => l.msg === 'initial reconcile finished' && l.controller === 'workload-secrets',
    );
    const writes = proxy.records.filter(
      (r) => r.method !== 'GET' && r.path.startsWith(`/api/v1/namespaces/${ns}/`),
    );
    expect(writes.map((r) => `${r.method} ${r.path}`)).toEqual([]);
    const after = await Promise.all(names.map((sa) => readSecret(core, ns, `istio.${sa}`)));
    expect(after.map((s) => s?.metadata?.resourceVersion)).toEqual(
      written.map((s) => s.metadata?.resourceVersion),
    );

    // key.pem swapped for another Secret's, the digest left as it was: healed with a new key.
    const [victim, donor] = written as [V1Secret, V1Secret];
    const edited = await core.patchNamespacedSecret(
      { namespace: ns, name: 'istio.sa-0', body: { data: { 'key.pem': donor.data!['key.pem'] } } },
      mergePatch,
    );
    expect(edited.metadata?.annotations?.[CONTENT_DIGEST_ANNOTATION]).toBe(
      victim.metadata?.annotations?.[CONTENT_DIGEST_ANNOTATION],
    );
    await second.waitForLog(
      'the reissue',
      (l) =>
        l.msg === 'issued workload certificate' &&
        l.namespace === ns &&
        l.serviceAccount === 'sa-0' &&
        l.reason === 'InvalidData',
    );
    const healed = await waitForWorkloadSecret(
      core,
      ns,
      'sa-0',
      (s) => s.metadata?.resourceVersion !== edited.metadata?.resourceVersion,
    );
    expect(leafOf(healed).serialNumberHex).not.toBe(leafOf(victim).serialNumberHex);
    expect(healed.data!['key.pem']).not.toBe(donor.data!['key.pem']);
    expect(digestHolds(authority, healed)).toBe(true);
  });
});
