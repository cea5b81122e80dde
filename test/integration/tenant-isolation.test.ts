// What a tenant can and cannot get out of alcazar, against the real control plane. Each test acts
// as a user with only the rights its row of docs/SECURITY.md names, by impersonation: a tenant with
// a namespace-scoped Role (ServiceAccounts, Secrets, reading Events), a member of the CA namespace
// who may create ServiceAccounts there, a namespace labeller allowed to patch one Namespace, and a
// holder of one workload key. The cluster admin is the test harness itself.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1PolicyRule,
  type V1Secret,
} from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { privateKeyToPem } from '../../src/pki/index.js';
import { createTestCa, issueTestLeaf } from '../../src/pki/testing.js';
import type { ControllerProcess } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { expectApiError } from './support/kube.js';
import { sample, scrape } from './support/metrics.js';
import { waitFor } from './support/wait.js';
import * as workloads from './support/workload.js';

const harness = useHarness({ certificateAuthority: true });
const { kc: admin, core, customObjects } = harness;
const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
const authorization = admin.makeApiClient(AuthorizationV1Api);
let caNamespace: string;
let controller: ControllerProcess;

// ---- identities ----

/** The admin's kubeconfig, impersonating `user` (who gets no groups but system:authenticated). */
function impersonating(user: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: admin.clusters,
    users: admin.users.map((u) =>
      u.name === admin.getCurrentUser()?.name ? { ...u, impersonateUser: user } : u,
    ),
    contexts: admin.contexts,
    currentContext: admin.currentContext,
  });
  return kc;
}

/** A Role with `rules` in `namespace`, bound to the user `user`. */
async function grant(namespace: string, user: string, rules: V1PolicyRule[]): Promise<void> {
  const name = `test-${user.replace(/[^a-z0-9-]/g, '-')}`;
  await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules } });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
    },
  });
  // The authorizer learns of a new binding through its own watch: wait until it applies.
  const [rule] = rules;
  await waitFor(`RBAC for ${user} in ${namespace} to take effect`, async () => {
    const review = await authorization.createSubjectAccessReview({
      body: {
        spec: {
          user,
          resourceAttributes: {
            namespace,
            group: rule?.apiGroups?.[0] ?? '',
            resource: rule?.resources?.[0] ?? '',
            verb: rule?.verbs?.[0] ?? 'get',
          },
        },
      },
    });
    return review.status?.allowed === true;
  });
}

/** What a namespace member typically holds (a subset of the `edit` ClusterRole). */
const TENANT_RULES: V1PolicyRule[] = [
  {
    apiGroups: [''],
    resources: ['serviceaccounts', 'secrets'],
    verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
  },
  { apiGroups: [''], resources: ['events'], verbs: ['get', 'list', 'watch'] },
];

interface Tenant {
  namespace: string;
  user: string;
  core: CoreV1Api;
  customObjects: CustomObjectsApi;
}

async function tenant(prefix: string, labels: Record<string, string> = {}): Promise<Tenant> {
  const namespace = await harness.namespace(prefix, labels);
  const user = `${namespace}-member`;
  await grant(namespace, user, TENANT_RULES);
  const kc = impersonating(user);
  return {
    namespace,
    user,
    core: kc.makeApiClient(CoreV1Api),
    customObjects: kc.makeApiClient(CustomObjectsApi),
  };
}

// ---- helpers ----

async function createServiceAccount(who: Tenant, name: string, dnsNames?: string) {
  return who.core.createNamespacedServiceAccount({
    namespace: who.namespace,
    body: { metadata: { name, ...(dnsNames && { annotations: { 'alcazar.dev/dns-names': dnsNames } }) } },
  });
}

/** Waits, as `who`, for an Event of `reason` on the ServiceAccount whose message satisfies `accept`. */
function eventAbout(
  who: Tenant,
  serviceAccount: string,
  reason: string,
  accept: (m: string) => boolean = () => true,
) {
  return waitFor(`a ${reason} Event on ServiceAccount ${who.namespace}/${serviceAccount}`, async () => {
    const { items } = await who.core.listNamespacedEvent({
      namespace: who.namespace,
      fieldSelector: `involvedObject.kind=ServiceAccount,involvedObject.name=${serviceAccount}`,
    });
    return items.find((e) => e.reason === reason && accept(e.message ?? ''));
  });
}

const dnsNamesOf = (secret: V1Secret) => [...workloads.leafOf(secret).dnsNames].sort();
const serialOf = (secret: V1Secret) => workloads.leafOf(secret).serialNumberHex;
const b64 = (text: string) => Buffer.from(text).toString('base64');

beforeAll(async () => {
  caNamespace = await harness.namespace('ca');
  await workloads.deleteCertificateAuthority(customObjects);
  controller = await harness.controller({ caNamespace });
});

// ---- namespace members ----

describe('a namespace member (Role: ServiceAccounts, Secrets, Events in its namespace)', () => {
  it("asking for istiod.<ca-ns>.svc, kubernetes.default.svc and an outside host gets a certificate without them, and a Warning Event; its own namespace's names are issued", async () => {
    const t = await tenant('tenant');
    const before = await scrape(controller);
    const wanted = [`api.${t.namespace}.svc`, `*.${t.namespace}.svc.cluster.local`, `api.${t.namespace}`];
    const refused = [`istiod.${caNamespace}.svc`, 'kubernetes.default.svc', 'www.bank.example'];
    await createServiceAccount(t, 'web', [...refused, ...wanted].join(','));

    const secret = await workloads.waitForWorkloadSecret(t.core, t.namespace, 'web');
    expect(dnsNamesOf(secret)).toEqual([...wanted].sort());
    expect(workloads.leafOf(secret).uris).toEqual([`spiffe://cluster.local/ns/${t.namespace}/sa/web`]);
    expect(workloads.opensslVerify(secret)).toContain('OK');

    const warning = await eventAbout(t, 'web', 'DNSNameRefused');
    expect(warning.type).toBe('Warning');
    for (const name of refused) expect(warning.message).toContain(name);
    expect(warning.message).toContain("reserved for alcazar's own serving certificate");
    expect(warning.message).toContain('reserved for the Kubernetes API server');
    expect(warning.message).toContain(`outside namespace ${t.namespace}'s service domain`);

    const after = await scrape(controller);
    const delta = (reason: string) =>
      sample(after, 'alcazar_dns_names_refused_total', { reason }) -
      sample(before, 'alcazar_dns_names_refused_total', { reason });
    expect(delta('Reserved')).toBe(2);
    expect(delta('OutsideNamespace')).toBe(1);
  });

  it('adding a name of its own namespace to the annotation reissues with it; adding an outside one does not reissue', async () => {
    const t = await tenant('tenant');
    await createServiceAccount(t, 'api', `api.${t.namespace}.svc`);
    const first = await workloads.waitForWorkloadSecret(t.core, t.namespace, 'api');
    await t.core.patchNamespacedServiceAccount(
      {
        namespace: t.namespace,
        name: 'api',
        body: {
          metadata: { annotations: { 'alcazar.dev/dns-names': `api.${t.namespace}.svc,www.bank.example` } },
        },
      },
      workloads.mergePatch,
    );
    await eventAbout(t, 'api', 'DNSNameRefused', (m) => m.includes('www.bank.example'));
    expect(serialOf((await workloads.readSecret(t.core, t.namespace, 'istio.api'))!)).toBe(serialOf(first));

    await t.core.patchNamespacedServiceAccount(
      {
        namespace: t.namespace,
        name: 'api',
        body: {
          metadata: {
            annotations: {
              'alcazar.dev/dns-names': `api.${t.namespace}.svc,www.bank.example,v2.api.${t.namespace}.svc`,
            },
          },
        },
      },
      workloads.mergePatch,
    );
    const second = await workloads.waitForWorkloadSecret(
      t.core,
      t.namespace,
      'api',
      (s) => serialOf(s) !== serialOf(first),
    );
    expect(dnsNamesOf(second)).toEqual([`api.${t.namespace}.svc`, `v2.api.${t.namespace}.svc`]);
  });

  it('cannot edit, create or delete the CertificateAuthority (403)', async () => {
    const t = await tenant('tenant');
    const resource = { group: 'alcazar.dev', version: 'v1alpha1', plural: 'certificateauthorities' };
    const allowAll = {
      spec: {
        workloadCertificates: {
          dnsNames: { allow: [{ namespaceSelector: {}, patterns: ['*.example.com'] }] },
        },
      },
    };
    await workloads.setCertificateAuthoritySpec(customObjects, {});
    expect(
      await expectApiError(
        t.customObjects.patchClusterCustomObject(
          { ...resource, name: 'default', body: allowAll },
          workloads.mergePatch,
        ),
      ),
    ).toBe(403);
    expect(
      await expectApiError(t.customObjects.deleteClusterCustomObject({ ...resource, name: 'default' })),
    ).toBe(403);
    await workloads.deleteCertificateAuthority(customObjects);
    expect(
      await expectApiError(
        t.customObjects.createClusterCustomObject({
          ...resource,
          body: {
            apiVersion: 'alcazar.dev/v1alpha1',
            kind: 'CertificateAuthority',
            metadata: { name: 'default' },
            ...allowAll,
          },
        }),
      ),
    ).toBe(403);
  });

  it("tampering with its own istio.<sa> Secret gets it healed, not honoured: a forged certificate, another ServiceAccount's data", async () => {
    const t = await tenant('tenant');
    await createServiceAccount(t, 'web');
    await createServiceAccount(t, 'db');
    const web = await workloads.waitForWorkloadSecret(t.core, t.namespace, 'web');
    const db = await workloads.waitForWorkloadSecret(t.core, t.namespace, 'db');

    // A certificate it made itself, claiming the CSR API's name, with a key that matches.
    const forger = await createTestCa({ notBefore: new Date(Date.now() - 60_000) });
    const forged = await issueTestLeaf(forger.issuer, {
      notBefore: new Date(Date.now() - 60_000),
      namespace: t.namespace,
      serviceAccount: 'web',
      dnsNames: [`istiod.${caNamespace}.svc`],
    });
    await t.core.patchNamespacedSecret(
      {
        namespace: t.namespace,
        name: 'istio.web',
        body: {
          data: {
            'cert-chain.pem': b64(forged.certificate.pem),
            'key.pem': b64(privateKeyToPem(forged.keys.privateKey)),
            'root-cert.pem': b64(forger.root.pem),
          },
        },
      },
      workloads.mergePatch,
    );
    const healed = await workloads.waitForWorkloadSecret(
      t.core,
      t.namespace,
      'web',
      (s) => s.data?.['cert-chain.pem'] !== b64(forged.certificate.pem) && serialOf(s) !== serialOf(web),
    );
    expect(dnsNamesOf(healed)).toEqual([]);
    expect(workloads.pemsOf(healed).root).toBe(workloads.pemsOf(web).root);
    expect(workloads.opensslVerify(healed)).toContain('OK');

    // db's key and certificate copied into web: the identity is db's, so web's Secret is reissued.
    await t.core.patchNamespacedSecret(
      { namespace: t.namespace, name: 'istio.web', body: { data: db.data } },
      workloads.mergePatch,
    );
    const reissued = await workloads.waitForWorkloadSecret(
      t.core,
      t.namespace,
      'web',
      (s) => serialOf(s) !== serialOf(db) && serialOf(s) !== serialOf(healed),
    );
    expect(workloads.leafOf(reissued).uris).toEqual([`spiffe://cluster.local/ns/${t.namespace}/sa/web`]);
  });

  it('cannot read istio-ca-secret, nor any Secret outside its namespace', async () => {
    const t = await tenant('tenant');
    await waitFor('istio-ca-secret', () => workloads.readSecret(core, caNamespace, 'istio-ca-secret'));
    expect(
      await expectApiError(t.core.readNamespacedSecret({ namespace: caNamespace, name: 'istio-ca-secret' })),
    ).toBe(403);
    expect(await expectApiError(t.core.listNamespacedSecret({ namespace: caNamespace }))).toBe(403);
    expect(await expectApiError(t.core.listSecretForAllNamespaces())).toBe(403);
  });

  it("cannot label its own Namespace: opting in or out, or matching an allow rule's selector, is not a tenant's right", async () => {
    const t = await tenant('tenant');
    expect(
      await expectApiError(
        t.core.patchNamespace(
          { name: t.namespace, body: { metadata: { labels: { 'ca.istio.io/override': 'false' } } } },
          workloads.mergePatch,
        ),
      ),
    ).toBe(403);
  });
});

describe('a member of the CA namespace (Role: create ServiceAccounts there)', () => {
  it("is refused the CSR API's serving names in every form, and wildcards over them; other names of the namespace are issued", async () => {
    const user = `${caNamespace}-member`;
    await grant(caNamespace, user, [
      { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['create', 'get'] },
    ]);
    const member = impersonating(user).makeApiClient(CoreV1Api);
    const reserved = [
      `istiod.${caNamespace}.svc`,
      `alcazar.${caNamespace}.svc`,
      `istiod.${caNamespace}`,
      `istiod.${caNamespace}.svc.cluster.local`,
      `*.${caNamespace}.svc`,
    ];
    await member.createNamespacedServiceAccount({
      namespace: caNamespace,
      body: {
        metadata: {
          name: 'impostor',
          annotations: { 'alcazar.dev/dns-names': [...reserved, `grafana.${caNamespace}.svc`].join(',') },
        },
      },
    });
    // The member cannot read Secrets there (they sit next to istio-ca-secret); the admin looks.
    expect(
      await expectApiError(member.readNamespacedSecret({ namespace: caNamespace, name: 'istio.impostor' })),
    ).toBe(403);
    const secret = await workloads.waitForWorkloadSecret(core, caNamespace, 'impostor');
    expect(dnsNamesOf(secret)).toEqual([`grafana.${caNamespace}.svc`]);
    const warning = await waitFor('a DNSNameRefused Event', async () => {
      const { items } = await core.listNamespacedEvent({
        namespace: caNamespace,
        fieldSelector: 'involvedObject.name=impostor',
      });
      return items.find((e) => e.reason === 'DNSNameRefused');
    });
    for (const name of reserved) expect(warning.message).toContain(name);
  });
});

// ---- the cluster admin's allow rules ----

describe('allow rules in the CertificateAuthority (cluster admin)', () => {
  it('give a chosen namespace a chosen outside name, by name or by label, and no other namespace; removing the rule reissues without it', async () => {
    const chosen = await tenant('chosen');
    const labelled = await tenant('edge', { 'alcazar.dev/test-edge': 'true' });
    const other = await tenant('other');
    for (const t of [chosen, labelled, other])
      await createServiceAccount(t, 'web', 'api.bank.example,edge.bank.example');
    const initial = await Promise.all(
      [chosen, labelled, other].map((t) => workloads.waitForWorkloadSecret(t.core, t.namespace, 'web')),
    );
    for (const secret of initial) expect(dnsNamesOf(secret)).toEqual([]);

    await workloads.setCertificateAuthoritySpec(customObjects, {
      workloadCertificates: {
        dnsNames: {
          allow: [
            { namespaces: [chosen.namespace], patterns: ['api.bank.example'] },
            {
              namespaceSelector: { matchLabels: { 'alcazar.dev/test-edge': 'true' } },
              patterns: ['*.bank.example'],
            },
          ],
        },
      },
    });
    const granted = await workloads.waitForWorkloadSecret(
      chosen.core,
      chosen.namespace,
      'web',
      (s) => dnsNamesOf(s).length > 0,
    );
    expect(dnsNamesOf(granted)).toEqual(['api.bank.example']);
    const bySelector = await workloads.waitForWorkloadSecret(
      labelled.core,
      labelled.namespace,
      'web',
      (s) => dnsNamesOf(s).length > 0,
    );
    expect(dnsNamesOf(bySelector)).toEqual(['api.bank.example', 'edge.bank.example']);
    // The namespace no rule selects keeps its certificate, without the names.
    const untouched = (await workloads.readSecret(other.core, other.namespace, 'istio.web'))!;
    expect(serialOf(untouched)).toBe(serialOf(initial[2]!));
    expect(dnsNamesOf(untouched)).toEqual([]);

    await workloads.deleteCertificateAuthority(customObjects);
    const revoked = await workloads.waitForWorkloadSecret(
      chosen.core,
      chosen.namespace,
      'web',
      (s) => dnsNamesOf(s).length === 0,
    );
    expect(serialOf(revoked)).not.toBe(serialOf(granted));
    const removed = await eventAbout(chosen, 'web', 'DNSNameRemoved');
    expect(removed.type).toBe('Warning');
    expect(removed.message).toContain('api.bank.example');
    await workloads.waitForWorkloadSecret(
      labelled.core,
      labelled.namespace,
      'web',
      (s) => dnsNamesOf(s).length === 0,
    );
  });

  it('the CRD refuses a rule that selects no namespace, and a pattern that is not a DNS name', async () => {
    for (const rule of [{ patterns: ['api.bank.example'] }, { namespaces: ['a'], patterns: ['*'] }]) {
      const code = await expectApiError(
        workloads.setCertificateAuthoritySpec(customObjects, {
          workloadCertificates: { dnsNames: { allow: [rule] } },
        }),
      );
      expect(code).toBe(422);
    }
  });
});

// ---- a namespace labeller ----

describe('a namespace labeller (may patch one Namespace)', () => {
  it('opting its namespace out removes only its own Secrets; it cannot label another namespace', async () => {
    const mine = await tenant('mine');
    const theirs = await tenant('theirs');
    await createServiceAccount(mine, 'app');
    await createServiceAccount(theirs, 'app');
    await workloads.waitForWorkloadSecret(core, mine.namespace, 'app');
    const theirsBefore = await workloads.waitForWorkloadSecret(core, theirs.namespace, 'app');

    const user = `${mine.namespace}-labeller`;
    const name = `test-${user}`;
    await rbac.createClusterRole({
      body: {
        metadata: { name },
        rules: [
          {
            apiGroups: [''],
            resources: ['namespaces'],
            resourceNames: [mine.namespace],
            verbs: ['get', 'patch'],
          },
        ],
      },
    });
    harness.defer(async () => {
      await rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
      await rbac.deleteClusterRole({ name }).catch(() => undefined);
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
      },
    });
    const labeller = impersonating(user).makeApiClient(CoreV1Api);
    const optOut = { metadata: { labels: { 'ca.istio.io/override': 'false' } } };
    expect(
      await expectApiError(
        labeller.patchNamespace({ name: theirs.namespace, body: optOut }, workloads.mergePatch),
      ),
    ).toBe(403);
    await labeller.patchNamespace({ name: mine.namespace, body: optOut }, workloads.mergePatch);
    await waitFor(
      'istio.app gone from the opted-out namespace',
      async () => !(await workloads.readSecret(core, mine.namespace, 'istio.app')),
    );
    const theirsAfter = (await workloads.readSecret(core, theirs.namespace, 'istio.app'))!;
    expect(theirsAfter.metadata?.uid).toBe(theirsBefore.metadata?.uid);
    expect(serialOf(theirsAfter)).toBe(serialOf(theirsBefore));
  });
});

// ---- a holder of a workload key ----

describe('a holder of a workload key (key.pem and cert-chain.pem of one Secret)', () => {
  it('cannot sign a certificate the mesh root accepts: the leaf is not a CA', async () => {
    const t = await tenant('holder');
    await createServiceAccount(t, 'web');
    const secret = await workloads.waitForWorkloadSecret(t.core, t.namespace, 'web');
    const { certChain, key, root } = workloads.pemsOf(secret);
    expect(workloads.leafOf(secret).isCA).toBe(false);
    const dir = mkdtempSync(join(tmpdir(), 'alcazar-holder-'));
    const openssl = (...args: string[]) =>
      execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      writeFileSync(join(dir, 'root.pem'), root);
      writeFileSync(join(dir, 'chain.pem'), certChain);
      writeFileSync(join(dir, 'leaf-key.pem'), key, { mode: 0o600 });
      writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=DNS:istiod.${caNamespace}.svc\n`);
      // What the holder would do with OpenSSL: sign a certificate for the CSR API's name with the leaf.
      openssl(
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'minted-key.pem',
        '-subj',
        '/CN=istiod',
        '-out',
        'minted.csr',
      );
      openssl(
        'x509',
        '-req',
        '-in',
        'minted.csr',
        '-CA',
        'chain.pem',
        '-CAkey',
        'leaf-key.pem',
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        'ext.cnf',
        '-out',
        'minted.pem',
      );
      expect(() => openssl('verify', '-CAfile', 'root.pem', '-untrusted', 'chain.pem', 'minted.pem')).toThrow(
        /invalid CA certificate/,
      );
      // The leaf itself verifies: the failure is the leaf acting as a CA, not a broken setup.
      expect(openssl('verify', '-CAfile', 'root.pem', 'chain.pem')).toContain('OK');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
