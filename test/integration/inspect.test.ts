// `alcazar inspect` as a user runs it: a child process against the real control plane.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { InspectReport } from '../../src/cli/inspect/index.js';
import { repoRoot } from '../cluster/paths.js';
import { type ControllerProcess, startController } from './support/controller.js';
import { adminKubeConfig, createTestNamespace } from './support/kube.js';
import { mergePatch, waitForWorkloadSecret } from './support/workload.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
let caNamespace: Awaited<ReturnType<typeof createTestNamespace>>;
let workloadNamespace: Awaited<ReturnType<typeof createTestNamespace>>;
let controller: ControllerProcess;

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion; fails when it is killed (each start loads the Kubernetes client: seconds). */
function inspect(...args: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [
        '--import',
        'tsx',
        join(repoRoot, 'src', 'cli', 'main.ts'),
        'inspect',
        ...args,
        '--kubeconfig',
        inject('kubeconfig'),
        '--ca-namespace',
        caNamespace.name,
      ],
      { cwd: repoRoot, timeout: 100_000 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          reject(
            new Error(`alcazar inspect ${args.join(' ')} did not finish (${err.signal ?? err.message})`),
          );
          return;
        }
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
  });
}

function expectNoKeyMaterial(run: CliRun): void {
  expect(run.stdout).not.toContain('PRIVATE KEY');
  expect(run.stderr).not.toContain('PRIVATE KEY');
}

beforeAll(async () => {
  caNamespace = await createTestNamespace(core, 'ca');
  workloadNamespace = await createTestNamespace(core, 'insp');
  controller = await startController({ caNamespace: caNamespace.name });
  const ns = workloadNamespace.name;
  for (const name of ['cart', 'web']) {
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
  }
  await Promise.all([waitForWorkloadSecret(core, ns, 'cart'), waitForWorkloadSecret(core, ns, 'web')]);
});

afterAll(async () => {
  await controller?.stop();
  await workloadNamespace?.remove();
  await caNamespace?.remove();
});

describe('alcazar inspect', () => {
  it('-o json reports a freshly issued Secret as healthy: identity, both chains, key, renewal', async ({
    expect,
  }) => {
    const ns = workloadNamespace.name;
    const run = await inspect(`${ns}/cart`, '-o', 'json');

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expectNoKeyMaterial(run);
    const report = JSON.parse(run.stdout) as InspectReport;
    expect(report.spiffeId).toBe(`spiffe://cluster.local/ns/${ns}/sa/cart`);
    expect(report.spiffeIdMatches).toBe(true);
    expect(report.chain.secretRoot.verified).toBe(true);
    expect(report.chain.caBundle).toEqual({ verified: true, source: `${caNamespace.name}/istio-ca-secret` });
    expect(report.keyMatches).toBe(true);
    expect(report.contentDigest, 'what alcazar wrote verifies under its CA').toBe('verified');
    expect(report.secret).toMatchObject({
      namespace: ns,
      name: 'istio.cart',
      type: 'istio.io/key-and-cert',
      managedByAlcazar: true,
      owners: [expect.objectContaining({ kind: 'ServiceAccount', name: 'cart', controller: true })],
    });
    const renewAt = Date.parse(report.renewAt!);
    expect(renewAt).toBeGreaterThan(Date.parse(report.notBefore!));
    expect(renewAt).toBeLessThan(Date.parse(report.notAfter!));
    expect(report.renewalDue).toBe(false);
    expect(report.timeLeft).toMatch(/^(89d 23h|90d 0h)$/);
    expect(report.controller).toMatchObject({ action: 'none' });
    expect(report.problems).toEqual([]);
    expect(report.healthy).toBe(true);
  });

  it('the human report is a key: value block naming the SPIFFE ID', async () => {
    const ns = workloadNamespace.name;
    const run = await inspect(`${ns}/cart`);

    expect(run.code).toBe(0);
    expectNoKeyMaterial(run);
    expect(run.stdout).toMatch(
      new RegExp(`SPIFFE ID: +spiffe://cluster\\.local/ns/${ns}/sa/cart \\(as expected\\)`),
    );
    expect(run.stdout).toMatch(/Key matches cert: +yes/);
    expect(run.stdout).toMatch(/Problems: +none/);
  });

  it('--secret <namespace>/<name> inspects the named Secret', async () => {
    const ns = workloadNamespace.name;
    const run = await inspect('--secret', `${ns}/istio.web`, '-o', 'json');

    expect(run.code).toBe(0);
    expectNoKeyMaterial(run);
    const report = JSON.parse(run.stdout) as InspectReport;
    expect(report.secret.name).toBe('istio.web');
    expect(report.spiffeId).toBe(`spiffe://cluster.local/ns/${ns}/sa/web`);
    expect(report.healthy).toBe(true);
  });

  it('names a ServiceAccount asks for and may not have: listed in dnsNamesRefused and the text, the Secret still healthy', async () => {
    const ns = workloadNamespace.name;
    const wanted = `api.${ns}.svc`;
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: {
        metadata: {
          name: 'greedy',
          annotations: {
            'alcazar.dev/dns-names': `${wanted},istiod.${caNamespace.name}.svc,www.bank.example`,
          },
        },
      },
    });
    await waitForWorkloadSecret(core, ns, 'greedy');
    const run = await inspect(`${ns}/greedy`, '-o', 'json');

    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as InspectReport;
    expect(report.dnsNames).toEqual([wanted]);
    expect(report.dnsNamesRefused.map((r) => [r.name, r.reason])).toEqual([
      [`istiod.${caNamespace.name}.svc`, 'Reserved'],
      ['www.bank.example', 'OutsideNamespace'],
    ]);
    expect(report.warnings.map((w) => w.reason)).toEqual(['DNSNameRefused', 'DNSNameRefused']);
    const text = await inspect(`${ns}/greedy`);
    expect(text.stdout).toMatch(
      /DNS names refused: +istiod\.\S+ \(Reserved\), www\.bank\.example \(OutsideNamespace\)/,
    );
  });

  it('a Secret that does not exist exits 3 with its name on stderr', async () => {
    const ns = workloadNamespace.name;
    const run = await inspect(`${ns}/nobody`);

    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`Secret ${ns}/istio.nobody not found`);
  });

  it('a malformed argument exits 2 with the usage', async () => {
    const run = await inspect('no-slash');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('usage: alcazar inspect');
  });

  // Last: stops the controller, so the tampered Secret stays tampered.
  it('a key.pem taken from another Secret exits 1 with a problem about the key, and never prints it', async () => {
    const ns = workloadNamespace.name;
    await controller.stop();
    const web = await core.readNamespacedSecret({ namespace: ns, name: 'istio.web' });
    await core.patchNamespacedSecret(
      { namespace: ns, name: 'istio.cart', body: { data: { 'key.pem': web.data!['key.pem'] } } },
      mergePatch,
    );

    const run = await inspect(`${ns}/cart`, '-o', 'json');

    expect(run.code).toBe(1);
    expectNoKeyMaterial(run);
    const report = JSON.parse(run.stdout) as InspectReport;
    expect(report.keyMatches).toBe(false);
    expect(report.healthy).toBe(false);
    expect(report.problems).toEqual([
      expect.objectContaining({ reason: 'KeyMismatch', message: expect.stringContaining('key.pem') }),
    ]);

    const human = await inspect(`${ns}/cart`);
    expect(human.code).toBe(1);
    expectNoKeyMaterial(human);
    expect(human.stdout).toMatch(/- KeyMismatch: key\.pem does not match/);
  }, 240_000);
});
