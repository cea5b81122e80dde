// The Helm chart with the real helm (built from helm.sh/helm/v3): lint, render, validate, and install
// onto the real control plane, where the controller then runs with nothing but the chart's RBAC
// identity; upgrade keeps the root and reissues nothing; uninstall leaves what it documents.
//
// Installs release "alcazar" into istio-system, as README.md says; install.test.ts (manifests/)
// removes its objects in afterAll, so the two never hold the same names at once. afterAll here
// removes the release, the Lease and everything the controller wrote.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type V1Deployment,
  type V1Secret,
} from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { prometheusOperatorCrdFiles } from '../../hack/manifest-schemas.js';
import { repoRoot } from '../cluster/paths.js';
import { type ControllerProcess, type LogLine, startController } from './support/controller.js';
import {
  adminKubeConfig,
  createTestNamespace,
  serviceAccountKubeConfig,
  statusCodeOf,
} from './support/kube.js';
import { sample, scrape } from './support/metrics.js';
import { goTool, manifestSchemas, run, runOk } from './support/tools.js';
import { waitFor } from './support/wait.js';
import {
  getCertificateAuthority,
  readSecret,
  waitForSecretGone,
  waitForWorkloadSecret,
} from './support/workload.js';

const CHART = 'charts/alcazar';
const ALL_ON = `${CHART}/ci/all-on-values.yaml`;
const RELEASE = 'alcazar';
const NAMESPACE = 'istio-system';
const CA_SECRET = 'istio-ca-secret';

const admin = adminKubeConfig();
const core = admin.makeApiClient(CoreV1Api);
const apps = admin.makeApiClient(AppsV1Api);
const customObjects = admin.makeApiClient(CustomObjectsApi);
const leases = admin.makeApiClient(CoordinationV1Api);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

let helmBinary: string;
let kubeconform: string;
let schemas: string;
let workDir: string;
let helmEnv: NodeJS.ProcessEnv;

const helm = (...args: string[]) => runOk(helmBinary, args, { env: helmEnv });
const loadObjects = (text: string) =>
  (yaml.loadAll(text) as Array<K8sObject | null>).filter((o): o is K8sObject => o !== null);
const template = async (...args: string[]) =>
  loadObjects(await helm('template', RELEASE, CHART, '--namespace', NAMESPACE, ...args));
const find = <T = K8sObject>(objects: K8sObject[], kind: string, name?: string): T => {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!found) throw new Error(`no ${kind} ${name ?? ''} among ${objects.map((o) => o.kind).join(', ')}`);
  return found as T;
};
const manifestObjects = () =>
  readdirSync(join(repoRoot, 'manifests'))
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => loadObjects(readFileSync(join(repoRoot, 'manifests', f), 'utf8')));

async function kubectl(...args: string[]): Promise<string> {
  return runOk('kubectl', ['--kubeconfig', inject('kubeconfig'), ...args]);
}

async function kubeconformOk(objects: string): Promise<string> {
  const file = join(workDir, `rendered-${Date.now()}.yaml`);
  writeFileSync(file, objects);
  return runOk(kubeconform, [
    '-strict',
    '-summary',
    '-schema-location',
    `${schemas}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
    file,
  ]);
}

beforeAll(() => {
  helmBinary = goTool('helm');
  kubeconform = goTool('kubeconform');
  schemas = manifestSchemas();
  workDir = mkdtempSync(join(tmpdir(), 'alcazar-helm-'));
  for (const dir of ['cache', 'config', 'data']) mkdirSync(join(workDir, dir));
  // helm's own state in a directory of this run; the cluster is the test control plane.
  helmEnv = {
    ...process.env,
    KUBECONFIG: inject('kubeconfig'),
    HELM_CACHE_HOME: join(workDir, 'cache'),
    HELM_CONFIG_HOME: join(workDir, 'config'),
    HELM_DATA_HOME: join(workDir, 'data'),
  };
}, 1_800_000);

afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe('the chart', () => {
  it("crds/ is byte for byte the repository's crds/ (every file, no more, no less)", () => {
    const listing = (dir: string) => readdirSync(join(repoRoot, dir)).sort();
    expect(listing(`${CHART}/crds`)).toEqual(listing('crds'));
    for (const file of listing('crds')) {
      expect(
        readFileSync(join(repoRoot, CHART, 'crds', file)).equals(readFileSync(join(repoRoot, 'crds', file))),
        file,
      ).toBe(true);
    }
  });

  it('helm lint --strict passes with the default values and with every option on', async () => {
    expect(await helm('lint', '--strict', CHART)).toContain('0 chart(s) failed');
    expect(await helm('lint', '--strict', CHART, '--values', ALL_ON)).toContain('0 chart(s) failed');
  });

  it('values.schema.json rejects values the templates cannot use, naming them', async () => {
    for (const [set, field] of [
      ['replicaCount=0', 'replicaCount'],
      ['certificateAuthority.spec.workloadCertificates.keyAlgorithm=DSA', 'keyAlgorithm'],
      ['csr.port=70000', 'port'],
      ['monitoring.serviceMonitor.enabled=yes', 'enabled'],
      ['imageTag=0.2.0', 'imageTag'],
      ['monitoring.prometheusRule.runbookUrl=docs/runbooks.md#x', 'runbookUrl'],
    ] as const) {
      const result = await run(helmBinary, ['template', RELEASE, CHART, '--set', set], { env: helmEnv });
      expect(result.code, set).not.toBe(0);
      expect(result.stderr, set).toContain(field);
    }
  });

  it('renders no PodDisruptionBudget that would allow no eviction (one replica): drains would hang', async () => {
    const kinds = async (...set: string[]) =>
      loadObjects(await helm('template', RELEASE, CHART, ...set.flatMap((v) => ['--set', v]))).map(
        (o) => o.kind,
      );
    expect(await kinds('replicaCount=1')).not.toContain('PodDisruptionBudget');
    expect(await kinds('replicaCount=3', 'podDisruptionBudget.minAvailable=3')).not.toContain(
      'PodDisruptionBudget',
    );
    expect(await kinds('replicaCount=1', 'podDisruptionBudget.minAvailable=50%')).not.toContain(
      'PodDisruptionBudget',
    );
    expect(await kinds('replicaCount=3', 'podDisruptionBudget.minAvailable=50%')).toContain(
      'PodDisruptionBudget',
    );
    expect(await kinds('replicaCount=2')).toContain('PodDisruptionBudget');
  });

  it('helm template with the default values passes kubeconform (strict), the CRD included', async () => {
    const rendered = await helm('template', RELEASE, CHART, '--namespace', NAMESPACE, '--include-crds');
    const summary = await kubeconformOk(rendered);
    expect(summary).toMatch(/Invalid: 0, Errors: 0, Skipped: 0/);
    expect(
      loadObjects(rendered)
        .map((o) => o.kind)
        .sort(),
    ).toEqual(
      [
        'CertificateAuthority',
        'ClusterRole',
        'ClusterRoleBinding',
        // CertificateAuthority and CertificateRevocation
        'CustomResourceDefinition',
        'CustomResourceDefinition',
        'Deployment',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'Role',
        'RoleBinding',
        // metrics, and the CSR API
        'Service',
        'Service',
        'ServiceAccount',
      ].sort(),
    );
  });

  it('helm template with every option on passes kubeconform, and each option shows', async () => {
    const rendered = await helm(
      'template',
      RELEASE,
      CHART,
      '--namespace',
      NAMESPACE,
      '--include-crds',
      '--values',
      ALL_ON,
    );
    expect(await kubeconformOk(rendered)).toMatch(/Invalid: 0, Errors: 0, Skipped: 0/);
    const objects = loadObjects(rendered);
    const deployment = find<V1Deployment>(objects, 'Deployment');
    const pod = deployment.spec!.template.spec!;
    const container = pod.containers[0]!;
    expect(deployment.metadata?.namespace).toBe('alcazar-ca');
    expect(deployment.metadata?.name).toBe('platform-ca');
    expect(deployment.spec!.replicas).toBe(3);
    expect(container.image).toBe(
      'registry.example.com/platform/alcazar@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    );
    expect(container.args).toEqual([
      'controller',
      '--ca-namespace=alcazar-ca',
      '--lease-name=platform-ca-leader',
      '--http-port=9500',
      '--log-level=debug',
      '--csr-port=15012',
      '--csr-dns-names=platform-ca-ca.alcazar-ca.svc,istiod.alcazar-ca.svc',
      '--workers=32',
      '--event-qps=20',
    ]);
    expect(container.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ['http-metrics', 9500],
      ['grpc-csr', 15012],
    ]);
    expect(container.env?.map((e) => e.name)).toEqual(['NODE_OPTIONS', 'ALCAZAR_RESYNC_PERIOD']);
    expect(pod.tolerations).toHaveLength(1);
    expect(pod.topologySpreadConstraints).toHaveLength(1);
    expect(pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toHaveLength(1);
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    expect(pod.imagePullSecrets).toEqual([{ name: 'registry-credentials' }]);
    const csrService = find<{ spec: { ports: Array<{ name: string; port: number }> } }>(
      objects,
      'Service',
      'platform-ca-ca',
    );
    expect(csrService.spec.ports).toEqual([
      { name: 'grpc-csr', port: 15012, targetPort: 'grpc-csr', protocol: 'TCP', appProtocol: 'grpc' },
    ]);
    const policy = find<{ spec: { ingress: Array<{ ports: Array<{ port: string }> }> } }>(
      objects,
      'NetworkPolicy',
    );
    expect(policy.spec.ingress.map((i) => i.ports[0]!.port)).toEqual(['http-metrics', 'grpc-csr']);
    const clusterRole = find<{ rules: Array<{ resources: string[] }> }>(objects, 'ClusterRole');
    expect(clusterRole.rules.flatMap((r) => r.resources)).toContain('tokenreviews');
    expect(find<{ spec: { minAvailable: number } }>(objects, 'PodDisruptionBudget').spec.minAvailable).toBe(
      2,
    );
    const ca = find<{ spec: { trustDomain: string; workloadCertificates: { dnsNames?: unknown } } }>(
      objects,
      'CertificateAuthority',
    );
    expect(ca.spec.trustDomain).toBe('example.org');
    expect(ca.spec.workloadCertificates.dnsNames, 'the documented allow rules pass the schema').toEqual({
      allow: [{ namespaces: ['payments'], patterns: ['api.example.com', '*.internal.example.com'] }],
    });
    const rule = find<{
      metadata: { labels: Record<string, string> };
      spec: { groups: Array<{ rules: Array<{ alert?: string; annotations?: { runbook_url?: string } }> }> };
    }>(objects, 'PrometheusRule');
    expect(rule.metadata.labels.release).toBe('kube-prometheus-stack');
    const alerts = rule.spec.groups.flatMap((g) => g.rules).filter((r) => r.alert);
    expect(alerts.length).toBeGreaterThan(5);
    for (const alert of alerts) {
      expect(alert.annotations?.runbook_url, 'runbookUrl makes each runbook link absolute').toBe(
        `https://git.example.com/platform/alcazar/blob/v1/docs/runbooks.md#${alert.alert!.toLowerCase()}`,
      );
    }
    expect(find<K8sObject>(objects, 'ServiceMonitor').metadata.namespace).toBe('alcazar-ca');
    expect(find<K8sObject>(objects, 'ConfigMap', 'platform-ca-dashboard').metadata.namespace).toBe(
      'monitoring',
    );
  });

  it('Helm 4 (helm.sh/helm/v4) lints it strictly and renders exactly what Helm 3 renders', async () => {
    const helm4 = goTool('helm4');
    const helm4Env = {
      ...helmEnv,
      HELM_CONFIG_HOME: join(workDir, 'config4'),
      HELM_CACHE_HOME: join(workDir, 'cache4'),
    };
    expect(await runOk(helm4, ['version', '--short'], { env: helm4Env })).toMatch(/^v4\./);
    for (const values of [[], ['--values', ALL_ON]]) {
      expect(await runOk(helm4, ['lint', '--strict', CHART, ...values], { env: helm4Env })).toContain(
        '0 chart(s) failed',
      );
      const args = ['template', RELEASE, CHART, '--namespace', NAMESPACE, '--include-crds', ...values];
      const rendered4 = await runOk(helm4, args, { env: helm4Env });
      expect(await kubeconformOk(rendered4)).toMatch(/Invalid: 0, Errors: 0, Skipped: 0/);
      expect(loadObjects(rendered4)).toEqual(loadObjects(await helm(...args)));
    }
  }, 1_800_000);

  it('optional objects go away when turned off', async () => {
    const objects = await template(
      '--set',
      'podDisruptionBudget.enabled=false,networkPolicy.enabled=false,certificateAuthority.create=false',
    );
    const kinds = objects.map((o) => o.kind);
    for (const kind of ['PodDisruptionBudget', 'NetworkPolicy', 'CertificateAuthority'])
      expect(kinds).not.toContain(kind);
  });

  it('renders the same RBAC as manifests/ (release alcazar in istio-system)', async () => {
    const chart = await template();
    const manifests = manifestObjects();
    for (const kind of ['ClusterRole', 'Role']) {
      expect(find<{ rules: unknown }>(chart, kind, 'alcazar').rules, kind).toEqual(
        find<{ rules: unknown }>(manifests, kind, 'alcazar').rules,
      );
    }
    for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
      const pick = (o: { roleRef: unknown; subjects: unknown }) => ({
        roleRef: o.roleRef,
        subjects: o.subjects,
      });
      expect(pick(find(chart, kind, 'alcazar')), kind).toEqual(pick(find(manifests, kind, 'alcazar')));
    }
  });

  it("the default values carry the manifests' choices: pod, container, PDB, Service, NetworkPolicy, CA spec", async () => {
    const chart = await template();
    const manifests = manifestObjects();
    const chartPod = find<V1Deployment>(chart, 'Deployment').spec!.template.spec!;
    const manifestPod = find<V1Deployment>(manifests, 'Deployment').spec!.template.spec!;
    const withoutArgs = ({ args: _args, ...rest }: (typeof chartPod.containers)[0]) => rest;
    expect(withoutArgs(chartPod.containers[0]!)).toEqual(withoutArgs(manifestPod.containers[0]!));
    // The chart spells out the defaults the manifests leave implicit; the manifests' own are all there.
    expect(chartPod.containers[0]!.args).toEqual(expect.arrayContaining(manifestPod.containers[0]!.args!));
    for (const field of [
      'serviceAccountName',
      'enableServiceLinks',
      'terminationGracePeriodSeconds',
      'nodeSelector',
      'securityContext',
    ] as const) {
      expect(chartPod[field], field).toEqual(manifestPod[field]);
    }
    const spec = (o: K8sObject) => o.spec;
    const chartPdb = spec(find(chart, 'PodDisruptionBudget')) as { minAvailable: number };
    expect(chartPdb.minAvailable).toBe(
      (spec(find(manifests, 'PodDisruptionBudget')) as { minAvailable: number }).minAvailable,
    );
    const ports = (o: K8sObject) => (spec(o) as { ports: unknown }).ports;
    expect(ports(find(chart, 'Service'))).toEqual(ports(find(manifests, 'Service')));
    const ingress = (o: K8sObject) => (spec(o) as { ingress: unknown }).ingress;
    expect(ingress(find(chart, 'NetworkPolicy'))).toEqual(ingress(find(manifests, 'NetworkPolicy')));
    expect(spec(find(chart, 'CertificateAuthority'))).toEqual(spec(find(manifests, 'CertificateAuthority')));
  });

  it('ships the same alerts and dashboard as manifests/monitoring/', async () => {
    const chart = await template(
      '--set',
      'monitoring.prometheusRule.enabled=true,monitoring.serviceMonitor.enabled=true,monitoring.dashboard.enabled=true',
    );
    const monitoring = readdirSync(join(repoRoot, 'manifests', 'monitoring')).flatMap((f) =>
      loadObjects(readFileSync(join(repoRoot, 'manifests', 'monitoring', f), 'utf8')),
    );
    const spec = (o: K8sObject) => o.spec;
    expect(spec(find(chart, 'PrometheusRule'))).toEqual(spec(find(monitoring, 'PrometheusRule')));
    const data = (o: K8sObject) => (o.data as Record<string, string>)['alcazar.json'];
    expect(JSON.parse(data(find(chart, 'ConfigMap'))!)).toEqual(
      JSON.parse(data(find(monitoring, 'ConfigMap'))!),
    );
    const endpoints = (o: K8sObject) => (spec(o) as { endpoints: unknown }).endpoints;
    expect(endpoints(find(chart, 'ServiceMonitor'))).toEqual(endpoints(find(monitoring, 'ServiceMonitor')));
  });

  it('with the Prometheus Operator CRDs installed, the API server accepts every object of the all-on rendering', async () => {
    const created: string[] = [];
    try {
      for (const file of prometheusOperatorCrdFiles()) {
        const crd = loadObjects(readFileSync(file, 'utf8'))[0]!;
        const exists = await run('kubectl', [
          '--kubeconfig',
          inject('kubeconfig'),
          'get',
          'crd',
          crd.metadata.name,
        ]);
        if (exists.code === 0) continue; // someone else's: leave it
        // Server-side: these CRDs exceed the size of the last-applied annotation.
        await kubectl('apply', '--server-side', '-f', file);
        created.push(crd.metadata.name);
      }
      if (created.length > 0) {
        await kubectl(
          'wait',
          '--for=condition=Established',
          '--timeout=60s',
          ...created.map((n) => `crd/${n}`),
        );
      }
      // The namespaces the all-on values name must exist for a dry run of namespaced objects.
      const namespaces: string[] = [];
      for (const name of ['alcazar-ca', 'monitoring']) {
        try {
          await core.createNamespace({
            body: { metadata: { name, labels: { 'alcazar.dev/test': 'true' } } },
          });
          namespaces.push(name);
        } catch (err) {
          if (statusCodeOf(err) !== 409) throw err;
        }
      }
      try {
        const rendered = join(workDir, 'all-on.yaml');
        writeFileSync(rendered, await helm('template', RELEASE, CHART, '--values', ALL_ON));
        const out = await kubectl('apply', '--dry-run=server', '-f', rendered);
        expect(out).toContain('prometheusrule.monitoring.coreos.com/platform-ca created (server dry run)');
        expect(out).toContain('servicemonitor.monitoring.coreos.com/platform-ca created (server dry run)');
      } finally {
        for (const name of namespaces) await core.deleteNamespace({ name }).catch(() => undefined);
      }
    } finally {
      for (const name of created) await kubectl('delete', 'crd', name, '--ignore-not-found');
    }
  });
});

// ---- installed ----

/** Log lines that report an API refusal (a namespace being deleted by an earlier file does not count). */
const refusals = (lines: readonly LogLine[]) =>
  lines.filter((line) => {
    const text = JSON.stringify(line);
    return /\b403\b|forbidden/i.test(text) && !/being terminated/.test(text);
  });

/** The installed Deployment's arguments, minus those the test harness sets itself (port, log level). */
async function deploymentArgs(): Promise<string[]> {
  const deployment = await apps.readNamespacedDeployment({ namespace: NAMESPACE, name: 'alcazar' });
  const args = deployment.spec!.template.spec!.containers[0]!.args!;
  expect(args[0]).toBe('controller');
  expect(args).toContain(`--ca-namespace=${NAMESPACE}`);
  return args.slice(1).filter((a) => !a.startsWith('--http-port=') && !a.startsWith('--log-level='));
}

async function startAsChartIdentity(): Promise<ControllerProcess> {
  const { path } = await serviceAccountKubeConfig(admin, NAMESPACE, 'alcazar', workDir);
  return startController({
    caNamespace: NAMESPACE,
    kubeconfig: path,
    // Leader election on, as the Deployment runs it, with the Deployment's own flags.
    args: ['--leader-elect', ...(await deploymentArgs())],
  });
}

async function waitForReady(): Promise<void> {
  await waitFor('CertificateAuthority default Ready', async () => {
    const ca = await getCertificateAuthority(customObjects);
    const ready = ca.status?.conditions?.find((c) => c.type === 'Ready');
    return ready?.status === 'True' && ca.status?.observedGeneration === ca.metadata.generation;
  });
}

/**
 * Until the controller has nothing left to do: every managed ServiceAccount in the cluster (other
 * files leave namespaces behind) has its certificate and the queue is empty.
 */
async function waitForSettled(proc: ControllerProcess): Promise<void> {
  await waitFor(
    'every managed ServiceAccount certified and the queue empty',
    async () => {
      const ca = await getCertificateAuthority(customObjects);
      const counts = ca.status;
      if (typeof counts?.managedServiceAccounts !== 'number') return false;
      if (counts.issuedCertificates !== counts.managedServiceAccounts) return false;
      return sample(await scrape(proc), 'alcazar_workqueue_depth') === 0;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

async function cleanUpCluster(): Promise<void> {
  await run(helmBinary, ['uninstall', RELEASE, '--namespace', NAMESPACE, '--wait'], { env: helmEnv });
  await leases.deleteNamespacedLease({ namespace: NAMESPACE, name: 'alcazar-leader' }).catch(() => undefined);
  const owned = 'app.kubernetes.io/managed-by=alcazar';
  for (const s of (await core.listSecretForAllNamespaces({ labelSelector: owned })).items) {
    await core
      .deleteNamespacedSecret({ namespace: s.metadata!.namespace!, name: s.metadata!.name! })
      .catch(() => undefined);
  }
  for (const cm of (await core.listConfigMapForAllNamespaces({ labelSelector: owned })).items) {
    await core
      .deleteNamespacedConfigMap({ namespace: cm.metadata!.namespace!, name: cm.metadata!.name! })
      .catch(() => undefined);
  }
}

describe('helm install, upgrade and uninstall on the control plane', () => {
  let controller: ControllerProcess | undefined;
  let workloads: Awaited<ReturnType<typeof createTestNamespace>>;
  const allLines: LogLine[] = [];

  beforeAll(async () => {
    // A CA Secret, Lease or CertificateAuthority left by an earlier file would hide whether the
    // chart's identity can create them, and helm refuses to take over objects it did not create.
    await core.deleteNamespacedSecret({ namespace: NAMESPACE, name: CA_SECRET }).catch(() => undefined);
    await leases
      .deleteNamespacedLease({ namespace: NAMESPACE, name: 'alcazar-leader' })
      .catch(() => undefined);
    await kubectl('delete', 'certificateauthorities', '--all', '--ignore-not-found');
    workloads = await createTestNamespace(core, 'helm');
  });

  afterAll(async () => {
    await controller?.stop();
    await workloads?.remove();
    await cleanUpCluster();
  }, 180_000);

  it('helm install creates every object of the chart; the CRD already there is left alone', async () => {
    const out = await helm('install', RELEASE, CHART, '--namespace', NAMESPACE, '--create-namespace');
    expect(out).toContain('STATUS: deployed');
    expect(out).toContain('kubectl get certificateauthority default'); // NOTES.txt
    const manifest = await helm('get', 'manifest', RELEASE, '--namespace', NAMESPACE);
    const objects = loadObjects(manifest);
    const file = join(workDir, 'installed.yaml');
    writeFileSync(file, manifest);
    const names = (await kubectl('get', '-f', file, '-o', 'name')).trim().split('\n');
    expect(names).toHaveLength(objects.length);
  });

  it("the controller, with the chart's ServiceAccount token and flags, creates the root and issues certificates", async () => {
    controller = await startAsChartIdentity();
    await waitForReady();
    const caSecret = (await readSecret(core, NAMESPACE, CA_SECRET)) as V1Secret;
    expect(caSecret.type).toBe('istio.io/ca-root');
    await core.createNamespacedServiceAccount({
      namespace: workloads.name,
      body: { metadata: { name: 'checkout' } },
    });
    const secret = await waitForWorkloadSecret(core, workloads.name, 'checkout');
    expect(Buffer.from(secret.data!['root-cert.pem']!, 'base64').toString()).toBe(
      Buffer.from(caSecret.data!['ca-cert.pem']!, 'base64').toString(),
    );
    await waitFor('ConfigMap istio-ca-root-cert', () =>
      core.readNamespacedConfigMap({ namespace: workloads.name, name: 'istio-ca-root-cert' }),
    );
    const lease = await leases.readNamespacedLease({ namespace: NAMESPACE, name: 'alcazar-leader' });
    expect(lease.spec?.holderIdentity).toBeTruthy();
    await core.deleteNamespacedServiceAccount({ namespace: workloads.name, name: 'checkout' });
    await waitForSecretGone(core, workloads.name, 'istio.checkout');
  });

  it('helm upgrade (the pods restart) keeps the root and reissues nothing', async () => {
    await core.createNamespacedServiceAccount({
      namespace: workloads.name,
      body: { metadata: { name: 'web' } },
    });
    const before = await waitForWorkloadSecret(core, workloads.name, 'web');
    await waitForSettled(controller!);
    const rootBefore = (await readSecret(core, NAMESPACE, CA_SECRET)) as V1Secret;
    const caBefore = await getCertificateAuthority(customObjects);

    await controller!.stop();
    allLines.push(...controller!.lines);
    const out = await helm(
      'upgrade',
      RELEASE,
      CHART,
      '--namespace',
      NAMESPACE,
      '--reuse-values',
      '--set',
      'replicaCount=3,podAnnotations.upgraded=yes,extraArgs[0]=--workers=8',
    );
    expect(out).toContain('STATUS: deployed');
    const deployment = await apps.readNamespacedDeployment({ namespace: NAMESPACE, name: 'alcazar' });
    expect(deployment.spec?.replicas).toBe(3);
    expect(deployment.spec?.template.spec?.containers[0]?.args).toContain('--workers=8');

    controller = await startAsChartIdentity();
    await waitForReady();
    // A barrier: a ServiceAccount created after the restart gets its Secret once the new process
    // has synced its caches and worked its queue; anything it meant to reissue was queued before.
    await core.createNamespacedServiceAccount({
      namespace: workloads.name,
      body: { metadata: { name: 'after' } },
    });
    await waitForWorkloadSecret(core, workloads.name, 'after');
    await waitForSettled(controller!);
    const text = await scrape(controller!);
    const issued = text
      .split('\n')
      .filter((l) => l.startsWith('alcazar_certificates_issued_total{'))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    expect(issued).toBe(1); // "after", and nothing else

    const rootAfter = (await readSecret(core, NAMESPACE, CA_SECRET)) as V1Secret;
    expect(rootAfter.metadata?.resourceVersion).toBe(rootBefore.metadata?.resourceVersion);
    expect(rootAfter.data).toEqual(rootBefore.data);
    const after = (await readSecret(core, workloads.name, 'istio.web')) as V1Secret;
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    const caAfter = await getCertificateAuthority(customObjects);
    expect(caAfter.metadata.generation).toBe(caBefore.metadata.generation);
    expect(caAfter.status?.roots).toEqual(caBefore.status?.roots);
  });

  it("was refused nothing under the chart's identity, and released the Lease on stop", async () => {
    await controller!.stop();
    allLines.push(...controller!.lines);
    controller = undefined;
    expect(refusals(allLines)).toEqual([]);
    expect(allLines.filter((l) => l.msg === 'became leader')).toHaveLength(2);
    expect(allLines.filter((l) => l.msg === 'released the lease')).toHaveLength(2);
  });

  it('helm uninstall removes the release; the CRD, the root and the workload Secrets stay', async () => {
    const rootBefore = (await readSecret(core, NAMESPACE, CA_SECRET)) as V1Secret;
    await helm('uninstall', RELEASE, '--namespace', NAMESPACE, '--wait');
    for (const [kind, name] of [
      ['deployment', 'alcazar'],
      ['serviceaccount', 'alcazar'],
      ['role', 'alcazar'],
      ['service', 'alcazar-metrics'],
      ['clusterrole', 'alcazar'],
      ['certificateauthority', 'default'],
    ] as const) {
      const result = await run('kubectl', [
        '--kubeconfig',
        inject('kubeconfig'),
        '-n',
        NAMESPACE,
        'get',
        kind,
        name,
      ]);
      expect(result.code, `${kind} ${name} is gone`).not.toBe(0);
      expect(result.stderr).toContain('NotFound');
    }
    await kubectl('get', 'crd', 'certificateauthorities.alcazar.dev');
    const rootAfter = (await readSecret(core, NAMESPACE, CA_SECRET)) as V1Secret;
    expect(rootAfter.data).toEqual(rootBefore.data);
    expect(await readSecret(core, workloads.name, 'istio.web')).toBeDefined();
  });
});
