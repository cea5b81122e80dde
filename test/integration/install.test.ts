// manifests/ against the real control plane: they apply with `kubectl apply -f` and `-k`, the
// controller does its whole job with nothing but the identity they create, and that identity is
// refused what the controller has no business doing.
//
// Runs in istio-system, the namespace the manifests install into, and with the CertificateAuthority
// `default` they apply; afterAll deletes all of it but the namespace, and every Secret and ConfigMap
// the controller wrote across the cluster, so later files find the cluster as they would without
// this one.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  RbacAuthorizationV1Api,
  type V1Deployment,
  type V1PolicyRule,
  type V1Secret,
} from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RawApi } from '../../src/kube/raw.js';
import { decodeCrlsPem, normalizeSerialHex, parseCrl } from '../../src/pki/crl.js';
import { buildTestCsrPem } from '../../src/pki/csr-testing.js';
import { IssuanceRecord } from '../../src/revocation/issuance-record.js';
import { repoRoot } from '../cluster/paths.js';
import { type ControllerProcess, type LogLine, startController } from './support/controller.js';
import { CsrClient, csrPort, requestToken } from './support/csr-client.js';
import {
  adminKubeConfig,
  createTestNamespace,
  expectApiError,
  serviceAccountKubeConfig,
  statusCodeOf,
} from './support/kube.js';
import { waitFor } from './support/wait.js';
import {
  getCertificateAuthority,
  leafOf,
  mergePatch,
  pemsOf,
  readSecret,
  waitForSecretGone,
  waitForWorkloadSecret,
} from './support/workload.js';

const CA_NAMESPACE = 'istio-system';
const SERVICE_ACCOUNT = 'alcazar';
const LEASE = 'alcazar-leader';
const manifestsDir = join(repoRoot, 'manifests');

const admin = adminKubeConfig();
const core = admin.makeApiClient(CoreV1Api);
const customObjects = admin.makeApiClient(CustomObjectsApi);
const cleanups: Array<() => Promise<void>> = [];
let workDir: string;

// ---- kubectl and the manifest files ----

const execFileAsync = promisify(execFile);

/** Runs kubectl against the test control plane as admin; fails with kubectl's stderr. */
async function kubectl(...args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('kubectl', ['--kubeconfig', inject('kubeconfig'), ...args], {
      cwd: repoRoot,
    });
    return stdout;
  } catch (err) {
    const { stderr, message } = err as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(' ')} failed: ${stderr || message}`);
  }
}

interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

const manifestFiles = () =>
  readdirSync(manifestsDir)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort();

function loadObjects(text: string): ManifestObject[] {
  return (yaml.loadAll(text) as Array<ManifestObject | null>).filter((o): o is ManifestObject => o !== null);
}

const manifestObjects = () =>
  manifestFiles().flatMap((f) => loadObjects(readFileSync(join(manifestsDir, f), 'utf8')));

const identity = (o: ManifestObject) =>
  `${o.apiVersion}/${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;

function manifest<T>(kind: string, name: string): T {
  const found = manifestObjects().find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`manifests/ has no ${kind} ${name}`);
  return found as T;
}

// ---- the controller's identity ----

/**
 * Log lines that report an API refusal. A 403 for writing into a namespace that is being deleted
 * (left over by an earlier file) is the namespace's doing, not RBAC's, and is not counted.
 */
const refusals = (lines: readonly LogLine[]) =>
  lines.filter((line) => {
    const text = JSON.stringify(line);
    return /\b403\b|forbidden/i.test(text) && !/being terminated/.test(text);
  });

// ---- setup ----

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'alcazar-install-'));
  // The CRD is installed by the global setup already; applying it again must change nothing.
  await kubectl('apply', '-f', 'crds/', '-f', 'manifests/');
});

afterAll(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
  // Everything applied but the Namespace: istio-system stays, so that deleting it (and waiting
  // for it to go) can neither take long nor surprise anyone. The CRD stays: the global setup
  // owns it.
  const withoutNamespace = manifestFiles().filter((f) =>
    loadObjects(readFileSync(join(manifestsDir, f), 'utf8')).every((o) => o.kind !== 'Namespace'),
  );
  await kubectl(
    'delete',
    '--ignore-not-found',
    '--wait=true',
    ...withoutNamespace.flatMap((f) => ['-f', `manifests/${f}`]),
  );
  await admin
    .makeApiClient(CoordinationV1Api)
    .deleteNamespacedLease({ namespace: CA_NAMESPACE, name: LEASE })
    .catch(() => undefined);
  // What the controller wrote: the CA Secret, and workload Secrets and trust bundles in every
  // namespace (all carry the managed-by label).
  const owned = 'app.kubernetes.io/managed-by=alcazar';
  for (const secret of (await core.listSecretForAllNamespaces({ labelSelector: owned })).items) {
    await core
      .deleteNamespacedSecret({ namespace: secret.metadata!.namespace!, name: secret.metadata!.name! })
      .catch(() => undefined);
  }
  for (const cm of (await core.listConfigMapForAllNamespaces({ labelSelector: owned })).items) {
    await core
      .deleteNamespacedConfigMap({ namespace: cm.metadata!.namespace!, name: cm.metadata!.name! })
      .catch(() => undefined);
  }
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}, 180_000);

async function namespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const ns = await createTestNamespace(core, prefix, labels);
  cleanups.push(ns.remove);
  return ns.name;
}

// ---- the manifests themselves ----

describe('manifests/', () => {
  it('the Kustomization lists every manifest file, and renders the same objects as the files', async () => {
    const kustomization = yaml.load(readFileSync(join(manifestsDir, 'Kustomization'), 'utf8')) as {
      resources: string[];
    };
    expect([...kustomization.resources].sort()).toEqual(manifestFiles());
    const rendered = loadObjects(await kubectl('kustomize', 'manifests/'));
    expect(rendered.map(identity).sort()).toEqual(manifestObjects().map(identity).sort());
  });

  it('kubectl apply -f crds/ -f manifests/ created every object, and applying again changes nothing', async () => {
    const names = (await kubectl('get', '-f', 'manifests/', '-o', 'name')).trim().split('\n');
    expect(names).toHaveLength(manifestObjects().length);
    // `kubectl diff` exits 1 (and the helper throws) when the live objects differ from the files.
    expect(await kubectl('diff', '-f', 'crds/', '-f', 'manifests/')).toBe('');
  });

  it('kubectl apply -k manifests/ is accepted by the server and matches what -f applied', async () => {
    const out = await kubectl('apply', '--dry-run=server', '-k', 'manifests/');
    expect(out.trim().split('\n')).toHaveLength(manifestObjects().length);
    expect(await kubectl('diff', '-k', 'manifests/')).toBe('');
  });

  it('RBAC names every API group, resource and verb: no wildcards, nothing that grants more RBAC', () => {
    const rules = manifestObjects()
      .filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')
      .flatMap((o) => (o as unknown as { rules: V1PolicyRule[] }).rules);
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      for (const value of [...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs]) {
        expect(value).not.toContain('*');
      }
      expect(rule.verbs.filter((verb) => ['escalate', 'bind', 'impersonate'].includes(verb))).toEqual([]);
      expect(rule.nonResourceURLs ?? []).toEqual([]);
    }
  });

  it("the controller's pod meets the restricted Pod Security Standard", async () => {
    const ns = await namespace('psa', { 'pod-security.kubernetes.io/enforce': 'restricted' });
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: SERVICE_ACCOUNT } },
    });
    const template = manifest<V1Deployment>('Deployment', 'alcazar').spec!.template;
    const pod = (spec: typeof template.spec) => ({
      namespace: ns,
      dryRun: 'All',
      body: { metadata: { name: 'alcazar', labels: template.metadata?.labels }, spec: spec! },
    });
    await core.createNamespacedPod(pod(template.spec));

    // The namespace really enforces: the same pod allowed to escalate is refused.
    const escalating = structuredClone(template.spec!);
    escalating.containers[0]!.securityContext!.allowPrivilegeEscalation = true;
    expect(await expectApiError(core.createNamespacedPod(pod(escalating)))).toBe(403);
  });
});

// ---- the controller, with the identity from the manifests ----

describe('the controller running as istio-system/alcazar', () => {
  let controller: ControllerProcess;
  let token: KubeConfig;

  beforeAll(async () => {
    // A CA Secret or Lease left by an interrupted run would hide whether this one can create them.
    await admin
      .makeApiClient(CoordinationV1Api)
      .deleteNamespacedLease({ namespace: CA_NAMESPACE, name: LEASE })
      .catch(() => undefined);
    await core
      .deleteNamespacedSecret({ namespace: CA_NAMESPACE, name: 'istio-ca-secret' })
      .catch(() => undefined);
    // ... and a record of its root would make this run refuse to create one (RootMissing).
    await core
      .deleteNamespacedConfigMap({ namespace: CA_NAMESPACE, name: 'alcazar-root-history' })
      .catch(() => undefined);
    const sa = await serviceAccountKubeConfig(admin, CA_NAMESPACE, SERVICE_ACCOUNT, workDir);
    token = sa.kubeConfig;
    // With leader election, as the Deployment runs it: the Lease rules are exercised for real.
    controller = await startController({
      caNamespace: CA_NAMESPACE,
      kubeconfig: sa.path,
      args: ['--leader-elect'],
    });
  });

  afterAll(async () => {
    await controller?.stop();
  });

  it('creates the CA Secret in istio-system and reports Ready on the CertificateAuthority', async () => {
    const caSecret = await waitFor('Secret istio-system/istio-ca-secret', () =>
      readSecret(core, CA_NAMESPACE, 'istio-ca-secret'),
    );
    expect(caSecret.type).toBe('istio.io/ca-root');
    const ca = await waitFor('CertificateAuthority default Ready', async () => {
      const current = await getCertificateAuthority(customObjects);
      const ready = current.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'True' && current.status?.observedGeneration === current.metadata.generation
        ? current
        : undefined;
    });
    expect(ca.status?.trustDomain).toBe('cluster.local');
  });

  it('issues istio.<sa> for a new ServiceAccount, writes an Event, publishes the trust bundle, and deletes the Secret with the ServiceAccount', async () => {
    const ns = await namespace('inst');
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'checkout' } } });
    const secret = await waitForWorkloadSecret(core, ns, 'checkout');
    expect(leafOf(secret).uris).toEqual([`spiffe://cluster.local/ns/${ns}/sa/checkout`]);
    const caSecret = (await readSecret(core, CA_NAMESPACE, 'istio-ca-secret')) as V1Secret;
    const caCert = Buffer.from(caSecret.data!['ca-cert.pem']!, 'base64').toString('utf8');
    expect(pemsOf(secret).root).toBe(caCert);

    await waitFor('a CertificateIssued Event for checkout', async () => {
      const events = await core.listNamespacedEvent({
        namespace: ns,
        fieldSelector: 'involvedObject.name=checkout',
      });
      return events.items.some((e) => e.reason === 'CertificateIssued');
    });
    const bundle = await waitFor('ConfigMap istio-ca-root-cert', () =>
      core.readNamespacedConfigMap({ namespace: ns, name: 'istio-ca-root-cert' }),
    );
    expect(bundle.data?.['root-cert.pem']).toBe(caCert);

    await core.deleteNamespacedServiceAccount({ namespace: ns, name: 'checkout' });
    await waitForSecretGone(core, ns, 'istio.checkout');
  });

  it('serves the CSR API with this identity: its TokenReviews are allowed', async () => {
    const ns = await namespace('inst-csr');
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'agent' } } });
    const roots = await waitFor(
      'the trust bundle',
      async () =>
        (
          await core
            .readNamespacedConfigMap({ namespace: ns, name: 'istio-ca-root-cert' })
            .catch(() => undefined)
        )?.data?.['root-cert.pem'],
    );
    const client = new CsrClient({
      port: await csrPort(controller),
      roots,
      serverName: `alcazar.${CA_NAMESPACE}.svc`,
    });
    try {
      const outcome = await client.call(
        { csr: buildTestCsrPem({ uris: [`spiffe://cluster.local/ns/${ns}/sa/agent`] }) },
        await requestToken(core, ns, 'agent'),
      );
      expect(outcome).toMatchObject({ ok: true });
    } finally {
      client.close();
    }
  });

  it('applies a CertificateRevocation: status written, Secret reissued, istio-ca-crl published here and in istio-system', async () => {
    const ns = await namespace('revk');
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'pay' } } });
    const before = leafOf(await waitForWorkloadSecret(core, ns, 'pay'));
    await customObjects.createNamespacedCustomObject({
      group: 'alcazar.dev',
      version: 'v1alpha1',
      namespace: ns,
      plural: 'certificaterevocations',
      body: {
        apiVersion: 'alcazar.dev/v1alpha1',
        kind: 'CertificateRevocation',
        metadata: { name: 'pay' },
        spec: { serviceAccountName: 'pay', reason: 'keyCompromise' },
      },
    });
    await waitForWorkloadSecret(core, ns, 'pay', (s) => leafOf(s).serialNumberHex !== before.serialNumberHex);
    for (const where of [ns, CA_NAMESPACE]) {
      const crl = await waitFor(`istio-ca-crl in ${where} listing the old serial`, async () => {
        const cm = await core.readNamespacedConfigMap({ namespace: where, name: 'istio-ca-crl' });
        const serials = decodeCrlsPem(cm.data?.['ca-crl.pem'] ?? '').flatMap((der) =>
          parseCrl(der).entries.map((e) => e.serial),
        );
        return serials.includes(normalizeSerialHex(before.serialNumberHex)!) ? cm : undefined;
      });
      expect(crl.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('alcazar');
    }
  });

  describe('what the same token is refused', () => {
    let ns: string;
    beforeAll(async () => {
      ns = await namespace('deny');
    });

    it('changing a ServiceAccount, deleting a Namespace, creating a Pod or a ClusterRole', async () => {
      const coreAsSa = token.makeApiClient(CoreV1Api);
      const sa = await core.createNamespacedServiceAccount({
        namespace: ns,
        body: { metadata: { name: 'web' } },
      });
      sa.metadata!.labels = { changed: 'true' };
      expect(
        await expectApiError(
          coreAsSa.replaceNamespacedServiceAccount({ namespace: ns, name: 'web', body: sa }),
        ),
      ).toBe(403);
      expect(await expectApiError(coreAsSa.deleteNamespace({ name: ns }))).toBe(403);
      expect(
        await expectApiError(
          coreAsSa.createNamespacedPod({
            namespace: ns,
            body: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } },
          }),
        ),
      ).toBe(403);
      const rbacAsSa = token.makeApiClient(RbacAuthorizationV1Api);
      expect(
        await expectApiError(
          rbacAsSa.createClusterRole({ body: { metadata: { name: 'alcazar-escalated' }, rules: [] } }),
        ),
      ).toBe(403);
    });

    it('Secrets: it can read every one (listing its own by label needs list on all), but replace only istio-ca-secret', async () => {
      // RBAC cannot restrict list/watch by label, so the controller's informer over the Secrets
      // labelled managed-by=alcazar needs list/watch on every Secret: a Secret that is not ours
      // is readable too. This is the price of watching cluster-wide, documented in the ClusterRole.
      await core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: 'unrelated' }, stringData: { password: 'not-alcazars' } },
      });
      const coreAsSa = token.makeApiClient(CoreV1Api);
      const unrelated = await coreAsSa.readNamespacedSecret({ namespace: ns, name: 'unrelated' });
      expect(unrelated.metadata?.name).toBe('unrelated');
      const all = await coreAsSa.listSecretForAllNamespaces({ limit: 1 });
      expect(all.items).toHaveLength(1);
      // Workload Secrets are patched; the one full update it may send is root rotation's, of
      // istio-ca-secret (a no-op PUT here: the same object back).
      const caSecret = await coreAsSa.readNamespacedSecret({
        namespace: CA_NAMESPACE,
        name: 'istio-ca-secret',
      });
      await coreAsSa.replaceNamespacedSecret({
        namespace: CA_NAMESPACE,
        name: 'istio-ca-secret',
        body: caSecret,
      });
      expect(
        await expectApiError(
          coreAsSa.replaceNamespacedSecret({ namespace: ns, name: 'unrelated', body: unrelated }),
        ),
      ).toBe(403);
    });

    it('ConfigMaps other than istio-ca-root-cert, and listing ConfigMaps without naming it', async () => {
      const coreAsSa = token.makeApiClient(CoreV1Api);
      expect(
        await expectApiError(coreAsSa.readNamespacedConfigMap({ namespace: ns, name: 'kube-root-ca.crt' })),
      ).toBe(403);
      expect(await expectApiError(coreAsSa.listConfigMapForAllNamespaces({}))).toBe(403);
      const named = await coreAsSa.listConfigMapForAllNamespaces({
        fieldSelector: 'metadata.name=istio-ca-root-cert',
      });
      expect(named.items.length, 'the controller has published trust bundles by now').toBeGreaterThan(0);
      expect(named.items.every((cm) => cm.metadata?.name === 'istio-ca-root-cert')).toBe(true);
      // In istio-system it lists the ConfigMaps (the issuance record's shards have random names),
      // but gets only the earlier versions' shards by name.
      expect(
        await expectApiError(
          coreAsSa.readNamespacedConfigMap({ namespace: CA_NAMESPACE, name: 'kube-root-ca.crt' }),
        ),
      ).toBe(403);
      expect(await expectApiError(coreAsSa.listNamespacedConfigMap({ namespace: ns }))).toBe(403);
      await coreAsSa.listNamespacedConfigMap({ namespace: CA_NAMESPACE });
    });

    it('the issuance record under this identity sweeps a shard with nothing valid, and keeps one written after it was listed', async () => {
      const s = (ms: number) => Math.floor(ms / 1000);
      const now = Date.now();
      const shard = (name: string) =>
        core.createNamespacedConfigMap({
          namespace: CA_NAMESPACE,
          body: {
            metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'alcazar' } },
            data: { shop_cart_0c: `${s(now - 60_000)} ${s(now - 3_600_000)}` }, // expired
          },
        });
      const suffix = now.toString(16);
      const stale = `alcazar-issued-stale${suffix}`;
      const raced = `alcazar-issued-raced${suffix}`;
      await shard(stale);
      await shard(raced);
      // Just before the sweep's DELETE of `raced`, another replica appends a valid certificate to it:
      // the DELETE's resourceVersion precondition must make the real API server refuse it (409).
      const asSa = new RawApi(token);
      const answers = new Map<string, number | 'ok'>();
      const raw = {
        request: async <T>(...args: Parameters<RawApi['request']>): Promise<T> => {
          const name = args[0] === 'DELETE' ? args[1].split('/').pop()! : undefined;
          if (name === raced)
            await core.patchNamespacedConfigMap(
              {
                namespace: CA_NAMESPACE,
                name: raced,
                body: { data: { shop_web_0d: `${s(now + 3_600_000)} ${s(now)}` } },
              },
              mergePatch,
            );
          try {
            const answer = await asSa.request<T>(...args);
            if (name) answers.set(name, 'ok');
            return answer;
          } catch (err) {
            if (name) answers.set(name, statusCodeOf(err) ?? -1);
            throw err;
          }
        },
      };
      const errors: unknown[] = [];
      const record = new IssuanceRecord({
        raw,
        namespace: CA_NAMESPACE,
        onSweepError: (e) => errors.push(e),
      });
      // Its first write opens a shard and starts a sweep.
      await record.record({
        namespace: 'shop',
        serviceAccount: 'web',
        serial: `0e${suffix}`,
        notAfter: new Date(now + 3_600_000),
        issuedAt: new Date(now),
      });
      await waitFor('the sweep to try both shards', () => answers.has(stale) && answers.has(raced));
      expect(answers.get(stale), 'deleted under the installed Role').toBe('ok');
      expect(answers.get(raced), 'refused: written since it was listed').toBe(409);
      expect(
        await expectApiError(core.readNamespacedConfigMap({ namespace: CA_NAMESPACE, name: stale })),
      ).toBe(404);
      const kept = await core.readNamespacedConfigMap({ namespace: CA_NAMESPACE, name: raced });
      expect(kept.data).toHaveProperty('shop_web_0d');
      expect(errors).toEqual([]);
      await core.deleteNamespacedConfigMap({ namespace: CA_NAMESPACE, name: raced });
    });

    it('Leases: only alcazar-leader in istio-system, and never deleting it', async () => {
      const leases = token.makeApiClient(CoordinationV1Api);
      expect(await expectApiError(leases.listNamespacedLease({ namespace: 'kube-system' }))).toBe(403);
      expect(await expectApiError(leases.listLeaseForAllNamespaces({}))).toBe(403);
      expect(
        await expectApiError(leases.readNamespacedLease({ namespace: 'kube-system', name: LEASE })),
      ).toBe(403);
      expect(
        await expectApiError(leases.readNamespacedLease({ namespace: CA_NAMESPACE, name: 'other' })),
      ).toBe(403);

      // The controller took the Lease with this token (created it, reads and renews it).
      const lease = await leases.readNamespacedLease({ namespace: CA_NAMESPACE, name: LEASE });
      expect(lease.spec?.holderIdentity).toBeTruthy();
      expect(
        await expectApiError(leases.deleteNamespacedLease({ namespace: CA_NAMESPACE, name: LEASE })),
      ).toBe(403);
    });

    it('the CertificateAuthority: it reports status, but cannot change its spec', async () => {
      const asSa = token.makeApiClient(CustomObjectsApi);
      const target = {
        group: 'alcazar.dev',
        version: 'v1alpha1',
        plural: 'certificateauthorities',
        name: 'default',
      };
      expect(
        await expectApiError(
          asSa.patchClusterCustomObject(
            { ...target, body: { spec: { trustDomain: 'evil.example' } } },
            mergePatch,
          ),
        ),
      ).toBe(403);
    });
  });

  it('was refused nothing from start to stop: no 403 in its log, and it released the Lease', async () => {
    await controller.stop();
    expect(refusals(controller.lines)).toEqual([]);
    expect(controller.lines.some((l) => l.msg === 'became leader')).toBe(true);
    expect(controller.lines.some((l) => l.msg === 'released the lease')).toBe(true);
    const lease = await admin
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ namespace: CA_NAMESPACE, name: LEASE });
    expect(lease.spec?.holderIdentity ?? '').toBe('');
  });
});
