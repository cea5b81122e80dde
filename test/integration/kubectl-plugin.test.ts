// `kubectl alcazar` as users run it: the real kubectl finds kubectl-alcazar on PATH and hands it
// the command line; `status` reads the real control plane while a controller runs: healthy, a
// ServiceAccount whose Secret is not alcazar's, the CA not ready, a root rotation in progress.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StatusReport } from '../../src/cli/status/report.js';
import { repoRoot } from '../cluster/paths.js';
import { type ControllerProcess, startController } from './support/controller.js';
import { adminKubeConfig, createTestNamespace } from './support/kube.js';
import { run, type ToolRun } from './support/tools.js';
import { waitFor } from './support/wait.js';
import { annotateCertificateAuthority, mergePatch, waitForWorkloadSecret } from './support/workload.js';

const admin = adminKubeConfig();
const core = admin.makeApiClient(CoreV1Api);
const customObjects = admin.makeApiClient(CustomObjectsApi);
const CA = { group: 'alcazar.dev', version: 'v1alpha1', plural: 'certificateauthorities', name: 'default' };
const LEASE = 'plugin-test-leader';

let pluginDir: string;
let caNamespace: Awaited<ReturnType<typeof createTestNamespace>>;
let workloads: Awaited<ReturnType<typeof createTestNamespace>>;
let controller: ControllerProcess;

/** `kubectl alcazar <args>` through kubectl's plugin lookup, against the test control plane. */
function kubectlAlcazar(...args: string[]): Promise<ToolRun> {
  return run(
    'kubectl',
    ['alcazar', ...args, '--kubeconfig', inject('kubeconfig'), '--ca-namespace', caNamespace.name],
    { env: { ...process.env, PATH: `${pluginDir}:${process.env.PATH ?? ''}` }, timeoutMs: 100_000 },
  );
}

const status = (...args: string[]) => kubectlAlcazar('status', '--lease-name', LEASE, ...args);

async function statusJson(): Promise<{ code: number; report: StatusReport }> {
  const result = await status('-o', 'json');
  return { code: result.code, report: JSON.parse(result.stdout) as StatusReport };
}

/** Waits until `status` exits with `code` and its report satisfies `accept`; returns the text run. */
async function waitForStatus(
  description: string,
  code: number,
  accept: (report: StatusReport) => boolean,
): Promise<ToolRun> {
  await waitFor(
    description,
    async () => {
      const json = await statusJson();
      return json.code === code && accept(json.report);
    },
    { timeoutMs: 240_000, intervalMs: 1000 },
  );
  return status();
}

beforeAll(async () => {
  pluginDir = mkdtempSync(join(tmpdir(), 'alcazar-plugin-'));
  // What `npm i -g` installs, pointing at the sources instead of dist/.
  const plugin = join(pluginDir, 'kubectl-alcazar');
  writeFileSync(
    plugin,
    `#!/bin/sh\nexec "${process.execPath}" --import tsx "${join(repoRoot, 'src', 'cli', 'kubectl-alcazar.ts')}" "$@"\n`,
  );
  chmodSync(plugin, 0o755);
  caNamespace = await createTestNamespace(core, 'ca');
  workloads = await createTestNamespace(core, 'plug');
  await customObjects.createClusterCustomObject({
    ...CA,
    body: {
      apiVersion: 'alcazar.dev/v1alpha1',
      kind: 'CertificateAuthority',
      metadata: { name: 'default' },
      spec: {},
    },
  });
  controller = await startController({
    caNamespace: caNamespace.name,
    args: [
      '--leader-elect',
      `--lease-name=${LEASE}`,
      '--root-rotation-check-interval=500ms',
      // Long enough that a rotation stays in Publishing while the test looks.
      '--root-rotation-propagation-delay=1h',
    ],
  });
  for (const name of ['web', 'cart']) {
    await core.createNamespacedServiceAccount({ namespace: workloads.name, body: { metadata: { name } } });
  }
  await Promise.all(['web', 'cart'].map((sa) => waitForWorkloadSecret(core, workloads.name, sa)));
});

afterAll(async () => {
  await controller?.stop();
  await customObjects.deleteClusterCustomObject(CA).catch(() => undefined);
  await workloads?.remove();
  await caNamespace?.remove();
  if (pluginDir) rmSync(pluginDir, { recursive: true, force: true });
});

// Each run of the plugin starts node with tsx: seconds on a quiet machine, far more on a busy one.
describe('kubectl alcazar', { timeout: 400_000 }, () => {
  it('--help lists the commands; each command has its own --help', async () => {
    const help = await run('kubectl', ['alcazar', '--help'], {
      env: { ...process.env, PATH: `${pluginDir}:${process.env.PATH ?? ''}` },
    });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/status\s+CA health/);
    expect(help.stdout).toMatch(/inspect\s+one workload Secret/);
    const statusHelp = await status('--help');
    expect(statusHelp.code).toBe(0);
    expect(statusHelp.stdout).toContain('usage: kubectl alcazar status');
    const inspectHelp = await kubectlAlcazar('inspect', '--help');
    expect(inspectHelp.code).toBe(0);
    expect(inspectHelp.stdout).toContain('--secret NS/NAME');
  });

  it('inspect reports on a workload Secret', async () => {
    const result = await kubectlAlcazar('inspect', `${workloads.name}/web`, '-o', 'json');
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      spiffeId: `spiffe://cluster.local/ns/${workloads.name}/sa/web`,
      keyMatches: true,
    });
  });

  it('status: healthy — CA Ready, one active root, the leader, every ServiceAccount certified (exit 0)', async () => {
    const text = await waitForStatus('a healthy status', 0, (r) => r.problems.length === 0);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('CA:           Ready');
    expect(text.stdout).toContain('trust domain: cluster.local');
    expect(text.stdout).toMatch(/roots:\n {2}active {2}[0-9a-f]{16}… {2}expires \S+ \(\d+d \d+h\)/);
    expect(text.stdout).toContain('rotation:     Idle');
    expect(text.stdout).toMatch(/leader: {7}\S+, renewed \d+s ago\n/);
    expect(text.stdout).toContain('failing ServiceAccounts: 0');
    expect(text.stdout).toMatch(/\nhealthy$/m);
    expect(text.stdout + text.stderr).not.toContain('PRIVATE KEY');
    const { report } = await statusJson();
    expect(report.roots).toHaveLength(1);
    expect(report.counts.managedServiceAccounts).toBeGreaterThanOrEqual(2);
    expect(report.counts.issuedCertificates).toBe(report.counts.managedServiceAccounts);
    // The same controller seen as one run with --leader-elect=false: no Lease is looked for.
    const noLease = await kubectlAlcazar('status', '--no-lease');
    expect(noLease.code, noLease.stderr).toBe(0);
    expect(noLease.stdout).toContain('leader:       not checked (--no-lease)');
    // A Lease that does not exist is a problem that says what to pass.
    const missing = await kubectlAlcazar('status', '--lease-name', 'no-such-lease');
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('pass --no-lease');
  });

  it('status names a ServiceAccount whose Secret alcazar did not create (exit 1)', async () => {
    await core.createNamespacedSecret({
      namespace: workloads.name,
      body: {
        metadata: { name: 'istio.legacy' },
        type: 'istio.io/key-and-cert',
        stringData: { 'cert-chain.pem': '' },
      },
    });
    await core.createNamespacedServiceAccount({
      namespace: workloads.name,
      body: { metadata: { name: 'legacy' } },
    });
    const text = await waitForStatus('the foreign Secret reported', 1, (r) =>
      'listed' in r.failing ? r.failing.listed.some((f) => f.serviceAccount === 'legacy') : false,
    );
    expect(text.code).toBe(1);
    expect(text.stdout).toContain(
      `  ${workloads.name}/legacy: ForeignSecret: istio.legacy was not created by alcazar`,
    );
    expect(text.stdout).toContain('1 ServiceAccount(s) without a valid certificate');
    await core.deleteNamespacedServiceAccount({ namespace: workloads.name, name: 'legacy' });
    await core.deleteNamespacedSecret({ namespace: workloads.name, name: 'istio.legacy' });
    await waitForStatus('healthy again', 0, (r) => r.problems.length === 0);
  });

  it('status: CA not ready — switched to plugged-in mode without cacerts (exit 1, with the reason)', async () => {
    await customObjects.patchClusterCustomObject(
      { ...CA, body: { spec: { rootCA: { mode: 'PluggedIn' } } } },
      mergePatch,
    );
    try {
      const text = await waitForStatus(
        'the CA not ready',
        1,
        (r) => r.certificateAuthority.ready === 'False',
      );
      expect(text.code).toBe(1);
      // This CA namespace has signed with a self-signed root: a missing cacerts is a vanished root.
      expect(text.stdout).toMatch(/^CA: {11}NOT READY \(RootMissing\): .*cacerts is missing/m);
      expect(text.stdout).toContain('root mode:    PluggedIn');
      expect(text.stdout).toMatch(/ {2}- CA not ready: RootMissing: /);
    } finally {
      await customObjects.patchClusterCustomObject(
        { ...CA, body: { spec: { rootCA: { mode: 'SelfSigned' } } } },
        mergePatch,
      );
    }
    await waitForStatus('healthy again', 0, (r) => r.problems.length === 0);
  });

  it('status: a root rotation in progress — the phase, and both roots, the old one still active', async () => {
    const before = (await statusJson()).report.roots;
    await annotateCertificateAuthority(customObjects, { 'alcazar.dev/rotate-root': 'plugin-test' });
    const text = await waitForStatus(
      'rotation in Publishing with two roots',
      0,
      (r) => r.rotation.phase === 'Publishing' && r.roots.length === 2,
    );
    expect(text.stdout).toMatch(/^rotation: {5}Publishing since \S+/m);
    expect(text.stdout).toMatch(/ {2}active {2}[0-9a-f]{16}…/);
    expect(text.stdout).toMatch(/ {2}trusted [0-9a-f]{16}…/);
    const { report } = await statusJson();
    expect(report.roots.find((r) => r.active)?.fingerprintSha256).toBe(before[0]!.fingerprintSha256);
  });
});
