// The counts the status reports are kept up to date from cache events; here
// they are held, after every step of a random history, to a walk over the
// caches (what they were computed by before).
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { issueWorkload } from '../../ca/issue.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, workloadSecretName } from '../../model/names.js';
import { isManagedNamespace, OVERRIDE_LABEL } from '../../model/targeting.js';
import { CA_NAMESPACE, type ControllerTestBed, controllerTestBed, readyAuthority } from '../testing.js';
import { WorkloadQueries } from './queries.js';

let bed: ControllerTestBed;
afterEach(async () => {
  await bed?.stop();
});

/** The counts as a walk over every cached ServiceAccount finds them. */
function walked(b: ControllerTestBed) {
  const { caches } = b;
  const config = caches.state.config.current;
  let managed = 0;
  let issued = 0;
  for (const [key] of caches.serviceAccounts.entries()) {
    const [namespace, name] = key.split('/') as [string, string];
    const ns = caches.namespaces.get(namespace);
    if (!ns || !isManagedNamespace(namespace, ns.labels, config.namespaces, CA_NAMESPACE)) continue;
    managed++;
    if (caches.workloadSecrets.get(`${namespace}/${workloadSecretName(name)}`)?.certificate) issued++;
  }
  return { managedServiceAccounts: managed, issuedCertificates: issued };
}

const NAMESPACES = ['a', 'b', 'c'];
const ACCOUNTS = ['x', 'y', 'z'];
type Step =
  | { op: 'sa' | 'secret' | 'brokenSecret' | 'deleteSa' | 'deleteSecret'; ns: string; sa: string }
  | { op: 'label'; ns: string; managed: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    op: fc.constantFrom('sa', 'secret', 'brokenSecret', 'deleteSa', 'deleteSecret') as fc.Arbitrary<
      'sa' | 'secret' | 'brokenSecret' | 'deleteSa' | 'deleteSecret'
    >,
    ns: fc.constantFrom(...NAMESPACES),
    sa: fc.constantFrom(...ACCOUNTS),
  }),
  fc.record({ op: fc.constant('label' as const), ns: fc.constantFrom(...NAMESPACES), managed: fc.boolean() }),
);

describe('WorkloadQueries.counts', () => {
  it('matches a walk over the caches after every change, whenever it was created', async () => {
    bed = controllerTestBed();
    for (const ns of NAMESPACES) bed.namespace(ns, { labels: { [OVERRIDE_LABEL]: 'true' } });
    await bed.start();
    await readyAuthority(bed);
    const state = bed.caches.state.authority.current;
    if (state.status !== 'ready') throw new Error('no CA');
    const material = await issueWorkload(state.authority, {
      spiffeId: 'spiffe://cluster.local/ns/a/sa/x',
      dnsNames: [],
      keyAlgorithm: 'ECDSA_P256',
      ttlMs: 3_600_000,
      backdateMs: 0,
      now: new Date(bed.clock.now()),
    });
    const validData = Object.fromEntries(
      Object.entries(material.data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    );
    const early = new WorkloadQueries(bed.caches, CA_NAMESPACE);
    const counts = (q: WorkloadQueries) => {
      const { managedServiceAccounts, issuedCertificates } = q.counts();
      return { managedServiceAccounts, issuedCertificates };
    };
    const apply = async (s: Step) => {
      const secretPath = (ns: string, sa: string) =>
        `/api/v1/namespaces/${ns}/secrets/${workloadSecretName(sa)}`;
      const del = (path: string) => bed.api.request('DELETE', path).catch(() => undefined);
      switch (s.op) {
        case 'sa':
          await bed.api
            .request('POST', `/api/v1/namespaces/${s.ns}/serviceaccounts`, {
              metadata: { name: s.sa, namespace: s.ns, uid: `${s.ns}-${s.sa}` },
            })
            .catch(() => undefined);
          break;
        case 'secret':
        case 'brokenSecret': {
          await del(secretPath(s.ns, s.sa));
          await bed.api.request('POST', `/api/v1/namespaces/${s.ns}/secrets`, {
            metadata: {
              name: workloadSecretName(s.sa),
              namespace: s.ns,
              labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
            },
            type: 'istio.io/key-and-cert',
            data: s.op === 'secret' ? validData : { 'cert-chain.pem': 'bm90IGEgY2VydA==' },
          });
          break;
        }
        case 'deleteSa':
          await del(`/api/v1/namespaces/${s.ns}/serviceaccounts/${s.sa}`);
          break;
        case 'deleteSecret':
          await del(secretPath(s.ns, s.sa));
          break;
        case 'label':
          await bed.api.request('PATCH', `/api/v1/namespaces/${s.ns}`, {
            metadata: { labels: { [OVERRIDE_LABEL]: String(s.managed) } },
          });
          break;
      }
      await bed.settle();
    };
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 30 }), async (steps) => {
        for (const s of steps) {
          await apply(s);
          expect(counts(early)).toEqual(walked(bed));
        }
        // Created over caches that already hold objects: the same answers.
        expect(counts(new WorkloadQueries(bed.caches, CA_NAMESPACE))).toEqual(walked(bed));
      }),
      { numRuns: 25 },
    );
    // The valid data does count as a certificate (the property above is not vacuous).
    await apply({ op: 'label', ns: 'c', managed: true });
    await apply({ op: 'sa', ns: 'c', sa: 'z' });
    await apply({ op: 'secret', ns: 'c', sa: 'z' });
    expect(counts(early).issuedCertificates).toBeGreaterThanOrEqual(1);
    expect(counts(early)).toEqual(walked(bed));
  });
});
