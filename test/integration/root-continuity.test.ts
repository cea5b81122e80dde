// Root continuity (Istio #17739): a CA Secret that disappears while no
// controller runs must not silently become a new root. alcazar records the
// roots it used (ConfigMap alcazar-root-history, and the CertificateAuthority
// status), refuses to sign when the recorded root is gone, resumes when the
// Secret is restored, and makes a new root only when the operator accepts
// one — then as an overlapping rotation from the old root.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { privateKeyToPem } from '../../src/pki/keys.js';
import { decodeCertificatesPem } from '../../src/pki/pem.js';
import { createTestCa } from '../../src/pki/testing.js';
import type { ControllerProcess } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { readyz } from './support/metrics.js';
import { waitFor } from './support/wait.js';
import * as workloads from './support/workload.js';

const harness = useHarness({ cleanup: 'each', certificateAuthority: true });
const { core, customObjects } = harness;

const args = ['--root-rotation-check-interval=1s', '--root-rotation-propagation-delay=1s'];
const sha256 = (der: Buffer) => createHash('sha256').update(der).digest('hex');
const certsOf = (secret: V1Secret | undefined, key: string) =>
  decodeCertificatesPem(Buffer.from(secret?.data?.[key] ?? '', 'base64'));

async function namespaces() {
  const ca = await harness.namespace('ca');
  const ns = await harness.namespace('continuity');
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'one' } } });
  return { ca, ns };
}

const history = async (ca: string) =>
  core.readNamespacedConfigMap({ namespace: ca, name: 'alcazar-root-history' }).catch(() => undefined);

const rootMissingLine = (proc: ControllerProcess) =>
  proc.waitForLog('RootMissing', (l) => l.reason === 'RootMissing' && l.msg.startsWith('CA cannot sign'));

/** Runs a controller until the root is recorded, stops it, and deletes the CA Secret behind its back. */
async function loseRootWhileDown(ca: string, ns: string, secretName: string) {
  const controller = await harness.controller({ caNamespace: ca, args });
  const leaf = await workloads.waitForWorkloadSecret(core, ns, 'one');
  const backup = (await workloads.readSecret(core, ca, secretName))!;
  const activeRoot = sha256(certsOf(backup, secretName === 'cacerts' ? 'root-cert.pem' : 'ca-cert.pem')[0]!);
  await waitFor('the root to be recorded', async () =>
    (await history(ca))?.data?.fingerprints?.includes(activeRoot) ? true : undefined,
  );
  await controller.stop();
  await core.deleteNamespacedSecret({ namespace: ca, name: secretName });
  return { leaf, backup, activeRoot };
}

describe('root continuity', () => {
  it('refuses to sign when istio-ca-secret vanished while stopped, and resumes when it is restored', async () => {
    const { ca, ns } = await namespaces();
    const { leaf, backup, activeRoot } = await loseRootWhileDown(ca, ns, 'istio-ca-secret');

    const controller = await harness.controller({ caNamespace: ca, args });
    const line = await rootMissingLine(controller);
    expect(line.msg).toContain(activeRoot.slice(0, 16));
    expect(line.msg).toContain(`alcazar.dev/accept-new-root=${activeRoot}`);
    const ready = await readyz(controller);
    expect(ready.status).toBe(503);
    expect(ready.body).toContain('ca-loaded');
    // No new root, and the workload keeps the certificate it had.
    expect(await workloads.readSecret(core, ca, 'istio-ca-secret')).toBeUndefined();
    const unchanged = await workloads.readSecret(core, ns, 'istio.one');
    expect(unchanged?.data?.['cert-chain.pem']).toBe(leaf.data?.['cert-chain.pem']);

    // Restoring the Secret from the backup: alcazar resumes with it and reissues nothing.
    await core.createNamespacedSecret({
      namespace: ca,
      body: {
        metadata: { name: 'istio-ca-secret', labels: backup.metadata?.labels },
        type: backup.type,
        data: backup.data,
      },
    });
    await controller.waitForLog('the restored CA to load', (l) => l.msg === 'CA loaded');
    await waitFor('readyz', async () => ((await readyz(controller)).status === 200 ? true : undefined));
    expect((await workloads.readSecret(core, ns, 'istio.one'))?.data?.['cert-chain.pem']).toBe(
      leaf.data?.['cert-chain.pem'],
    );
  });

  it('reports RootMissing in the CertificateAuthority status and an Event, and accepts a new root on the annotation, overlapping with the old one', async () => {
    const { ca, ns } = await namespaces();
    await workloads.setCertificateAuthoritySpec(customObjects, {});
    const { leaf, activeRoot } = await loseRootWhileDown(ca, ns, 'istio-ca-secret');

    const controller = await harness.controller({ caNamespace: ca, args });
    await rootMissingLine(controller);
    const status = await waitFor('Ready=False RootMissing in the status', async () => {
      const cr = await workloads.getCertificateAuthority(customObjects);
      const ready = cr.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'False' && ready.reason === 'RootMissing' ? cr.status : undefined;
    });
    // The status keeps the record of the root in use, for this CA namespace.
    expect(status.caNamespace).toBe(ca);
    expect((status.roots as Array<{ fingerprintSha256: string }>).map((r) => r.fingerprintSha256)).toContain(
      activeRoot,
    );
    // Events about a cluster-scoped object live in namespace default.
    const event = await waitFor('a RootMissing Warning Event', async () => {
      const events = await core.listNamespacedEvent({ namespace: 'default' });
      return events.items.find(
        (e) =>
          e.reason === 'RootMissing' && e.type === 'Warning' && e.message?.includes(`${ca}/istio-ca-secret`),
      );
    });
    expect(event.involvedObject.kind).toBe('CertificateAuthority');

    await workloads.annotateCertificateAuthority(customObjects, {
      'alcazar.dev/accept-new-root': activeRoot,
    });
    const created = await waitFor('a new root', () => workloads.readSecret(core, ca, 'istio-ca-secret'), {
      timeoutMs: 30_000,
    });
    const newRoot = certsOf(created, 'ca-cert.pem')[0]!;
    expect(sha256(newRoot)).not.toBe(activeRoot);
    // Overlap: the old root is still trusted next to the new one while workloads are reissued.
    expect(certsOf(created, 'root-cert.pem').map(sha256)).toEqual([activeRoot, sha256(newRoot)]);
    expect(created.metadata?.annotations?.['alcazar.dev/rotation-phase']).toBe('Reissuing');
    const reissued = await workloads.waitForWorkloadSecret(
      core,
      ns,
      'one',
      (s) => s.data?.['cert-chain.pem'] !== leaf.data?.['cert-chain.pem'],
    );
    expect(certsOf(reissued, 'root-cert.pem').map(sha256)).toContain(activeRoot);
    // The rotation then retires the old root as usual, and the record holds both.
    const done = await waitFor(
      'the old root to be retired',
      async () => {
        const secret = await workloads.readSecret(core, ca, 'istio-ca-secret');
        return secret && !secret.metadata?.annotations?.['alcazar.dev/rotation-phase'] ? secret : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(certsOf(done, 'root-cert.pem').map(sha256)).toEqual([sha256(newRoot)]);
    const record = await waitFor('the record to name the new root active', async () => {
      const cm = await history(ca);
      return cm?.data?.active === sha256(newRoot) ? cm : undefined;
    });
    expect(record.data?.fingerprints?.trim().split('\n')).toEqual([activeRoot, sha256(newRoot)]);
    expect(record.data?.['accepted-request']).toBe(activeRoot);
  });

  it('refuses (RootMissing, not a silent MissingSecret) when cacerts vanished in plugged-in mode, and resumes on restore', async () => {
    const { ca, ns } = await namespaces();
    const plugged = await createTestCa({ notBefore: new Date(Date.now() - 60_000) });
    await core.createNamespacedSecret({
      namespace: ca,
      body: {
        metadata: { name: 'cacerts' },
        stringData: {
          'ca-cert.pem': plugged.root.pem,
          'ca-key.pem': privateKeyToPem(plugged.keys.privateKey),
          'root-cert.pem': plugged.root.pem,
          'cert-chain.pem': plugged.root.pem,
        },
      },
    });
    await workloads.setCertificateAuthoritySpec(customObjects, { rootCA: { mode: 'PluggedIn' } });
    const { backup } = await loseRootWhileDown(ca, ns, 'cacerts');

    const controller = await harness.controller({ caNamespace: ca, args });
    const line = await rootMissingLine(controller);
    expect(line.msg).toContain('cacerts is missing');
    expect((await readyz(controller)).status).toBe(503);

    await core.createNamespacedSecret({
      namespace: ca,
      body: { metadata: { name: 'cacerts' }, data: backup.data },
    });
    await controller.waitForLog('the restored cacerts to load', (l) => l.msg === 'CA loaded');
    expect(await workloads.readSecret(core, ca, 'istio-ca-secret')).toBeUndefined();
  });
});
