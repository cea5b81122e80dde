// Rotation without outages: scheduled workload renewal, and a complete root
// rotation while two workloads keep handshaking, with a controller killed
// half-way.
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { encodeCertificatesPem, privateKeyToPem } from '../../src/pki/index.js';
import { decodeCertificatesPem } from '../../src/pki/pem.js';
import { createTestCa, createTestIntermediate } from '../../src/pki/testing.js';
import { caAuthority, digestHolds } from './support/content-digest.js';
import type { ControllerProcess, StartOptions } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { sample, scrape } from './support/metrics.js';
import { startMeshPair } from './support/mtls.js';
import { waitFor } from './support/wait.js';
import * as workloads from './support/workload.js';

const harness = useHarness({ cleanup: 'each', certificateAuthority: true });
const { kc, core, customObjects } = harness;
let controller: ControllerProcess | undefined;

const namespace = (prefix: string) => harness.namespace(prefix);
const startController = (opts: StartOptions) => harness.controller(opts);

describe('workload renewal', () => {
  it('renews each Secret after notAfter − grace and before it expires, with a new key', async () => {
    await workloads.setCertificateAuthoritySpec(customObjects, {
      workloadCertificates: {
        ttl: '30s',
        minGracePeriod: '5s',
        gracePeriodRatio: 0.5,
        clockSkewAllowance: '0s',
      },
    });
    const ca = await namespace('ca');
    controller = await startController({ caNamespace: ca });
    const ns = await namespace('renew');
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'short' } } });
    const first = await workloads.waitForWorkloadSecret(
      core,
      ns,
      'short',
      (s) =>
        Boolean(s.data?.['cert-chain.pem']) &&
        workloads.leafOf(s).notAfter.getTime() - workloads.leafOf(s).notBefore.getTime() < 60_000,
    );
    const leaf = workloads.leafOf(first);
    // grace = 50% of 30 s; renewal is planned at notAfter − 15 s, minus at most 5% of grace as jitter.
    const plannedEarliest = leaf.notAfter.getTime() - 15_000 - 750;
    const renewed = await workloads.waitForWorkloadSecret(
      core,
      ns,
      'short',
      (s) => s.metadata?.resourceVersion !== first.metadata?.resourceVersion,
      40_000,
    );
    const observedAt = Date.now();
    const next = workloads.leafOf(renewed);
    expect(next.serialNumberHex).not.toBe(leaf.serialNumberHex);
    expect(renewed.data!['key.pem']).not.toBe(first.data!['key.pem']);
    expect(next.notBefore.getTime()).toBeGreaterThanOrEqual(plannedEarliest - 1_000);
    expect(observedAt).toBeLessThan(leaf.notAfter.getTime());
    // The Secret can be seen before the controller's log line about it: wait for the line.
    const logged = await controller.waitForLog(
      'the renewal',
      (l) =>
        l.msg === 'issued workload certificate' &&
        l.namespace === ns &&
        l.serviceAccount === 'short' &&
        BigInt(`0x${l.serial}`) === BigInt(`0x${next.serialNumberHex}`),
    );
    expect(logged.reason).toBe('RenewalDue');
  });

  it('renews Secrets found expired or due at start-up before anything else', async () => {
    await workloads.setCertificateAuthoritySpec(customObjects, {
      workloadCertificates: {
        ttl: '20s',
        minGracePeriod: '2s',
        gracePeriodRatio: 0.5,
        clockSkewAllowance: '0s',
      },
    });
    const ca = await namespace('ca');
    controller = await startController({ caNamespace: ca });
    const ns = await namespace('late');
    // Named to sort last: the API lists objects by name, so FIFO order alone would put them last.
    const due = ['z-due-1', 'z-due-2', 'z-due-3'];
    for (const sa of due)
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
    const short = (s: V1Secret) =>
      Boolean(s.data?.['cert-chain.pem']) && workloads.leafOf(s).notAfter.getTime() - Date.now() < 60_000;
    const secrets = await Promise.all(due.map((sa) => workloads.waitForWorkloadSecret(core, ns, sa, short)));
    await controller.stop();
    // While the controller is down: the certificates pass their renewal time and new ServiceAccounts arrive.
    for (let i = 0; i < 30; i++) {
      await core.createNamespacedServiceAccount({
        namespace: ns,
        body: { metadata: { name: `a-new-${i}` } },
      });
    }
    const latestRenewal = Math.max(...secrets.map((s) => workloads.leafOf(s).notAfter.getTime() - 10_000));
    await waitFor('the certificates to fall due', () => Date.now() > latestRenewal, {
      timeoutMs: 30_000,
      intervalMs: 200,
    });

    // One worker: with several, a later key can finish before an earlier one and the log order says nothing.
    controller = await startController({ caNamespace: ca, args: ['--workers=1'] });
    await controller.waitForLog(
      'the first pass',
      (l) => l.msg === 'initial reconcile finished' && l.controller === 'workload-secrets',
    );
    const order = controller.lines
      .filter((l) => l.msg === 'issued workload certificate' && l.namespace === ns)
      .map((l) => String(l.serviceAccount));
    // The namespace's default ServiceAccount got a short-lived certificate too: it is due as well.
    const dueNow = ['default', ...due];
    expect(order).toHaveLength(dueNow.length + 30);
    expect(order.slice(0, dueNow.length).sort()).toEqual(dueNow);
  });

  it('makes no writes while nothing is due, across several resyncs', async () => {
    const ca = await namespace('ca');
    controller = await startController({
      caNamespace: ca,
      args: ['--resync-period=2s', '--relist-period=2s'],
    });
    const ns = await namespace('idle');
    for (const sa of ['a', 'b', 'c']) {
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
    }
    const before = await Promise.all(
      ['a', 'b', 'c'].map((sa) => workloads.waitForWorkloadSecret(core, ns, sa)),
    );
    await controller.waitForLog(
      'initial reconcile',
      (l) => l.msg === 'initial reconcile finished' && l.controller === 'workload-secrets',
    );
    const proc = controller;
    const resyncs = async () =>
      sample(await scrape(proc), 'alcazar_watch_restarts_total', {
        informer: 'workload secrets',
        reason: 'resync',
      });
    const start = await resyncs();
    const writesBefore = controller.lines.filter((l) =>
      /issued|deleted|refreshed|published|updated/.test(l.msg),
    ).length;
    await waitFor('three relists of the workload Secrets', async () => (await resyncs()) >= start + 3, {
      timeoutMs: 30_000,
      intervalMs: 500,
    });
    const after = await Promise.all(
      ['a', 'b', 'c'].map((sa) => workloads.readSecret(core, ns, `istio.${sa}`)),
    );
    expect(after.map((s) => s?.metadata?.resourceVersion)).toEqual(
      before.map((s) => s.metadata?.resourceVersion),
    );
    expect(
      controller.lines.filter((l) => /issued|deleted|refreshed|published|updated/.test(l.msg)).length,
    ).toBe(writesBefore);
  });
});

describe('root rotation', () => {
  it('rotates the root with zero failed handshakes, surviving a controller kill mid-rotation', async () => {
    const ca = await namespace('ca');
    const args = ['--root-rotation-check-interval=500ms', '--root-rotation-propagation-delay=2s'];
    await workloads.setCertificateAuthoritySpec(customObjects, {});
    controller = await startController({ caNamespace: ca, args });
    const ns = await namespace('mesh');
    for (const sa of ['client', 'server', 'bystander']) {
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
    }
    const before = await Promise.all(
      ['client', 'server', 'bystander'].map((sa) => workloads.waitForWorkloadSecret(core, ns, sa)),
    );
    const caSecret = async () => (await workloads.readSecret(core, ca, 'istio-ca-secret')) as V1Secret;
    const oldRoot = Buffer.from((await caSecret()).data!['ca-cert.pem']!, 'base64').toString();
    const mesh = await startMeshPair(kc, ns, 'client', 'server');
    await waitFor('handshakes before the rotation', () => mesh.stats.ok >= 20);

    const phaseOf = async () =>
      (await caSecret()).metadata?.annotations?.['alcazar.dev/rotation-phase'] ?? 'Idle';
    const started = Date.now();
    const timeline: Record<string, number> = {};
    await workloads.annotateCertificateAuthority(customObjects, { 'alcazar.dev/rotate-root': 'test-1' });
    await waitFor('phase Publishing', async () => (await phaseOf()) === 'Publishing', { timeoutMs: 30_000 });
    timeline.publishing = Date.now() - started;

    // Kill the controller in the middle of the rotation; a new one must resume, not restart or fork.
    await controller.kill();
    controller = await startController({ caNamespace: ca, args });
    await waitFor('phase Reissuing', async () => (await phaseOf()) === 'Reissuing', { timeoutMs: 60_000 });
    timeline.reissuing = Date.now() - started;
    await waitFor('the rotation to finish', async () => (await phaseOf()) === 'Idle', { timeoutMs: 60_000 });
    timeline.finished = Date.now() - started;
    // Keep handshaking a little past the end, with the old root gone from every bundle.
    const okAtEnd = mesh.stats.ok;
    await waitFor('handshakes after the rotation', () => mesh.stats.ok >= okAtEnd + 20);
    const stats = await mesh.stop();

    const final = await caSecret();
    const newRoot = Buffer.from(final.data!['ca-cert.pem']!, 'base64').toString();
    expect(newRoot).not.toBe(oldRoot);
    expect(decodeCertificatesPem(Buffer.from(final.data!['root-cert.pem']!, 'base64'))).toHaveLength(1);
    expect(final.metadata?.annotations?.['alcazar.dev/rotation-request']).toBe('test-1');
    // Idle is written before the last bundle refresh reaches every Secret: wait for each to carry only the new root.
    const onlyNewRoot = (s: V1Secret) =>
      Buffer.from(s.data?.['root-cert.pem'] ?? '', 'base64').toString() === newRoot;
    const after = await Promise.all(
      ['client', 'server', 'bystander'].map((sa) =>
        workloads.waitForWorkloadSecret(core, ns, sa, onlyNewRoot),
      ),
    );
    // The retiring bundle refresh kept each content digest: a restart now checks none of them in full.
    const authority = await caAuthority(core, ca);
    expect(after.filter((s) => !digestHolds(authority, s)).map((s) => s.metadata?.name)).toEqual([]);
    for (const [i, secret] of after.entries()) {
      expect(Buffer.from(secret.data!['root-cert.pem']!, 'base64').toString()).toBe(newRoot);
      expect(workloads.opensslVerify(secret)).toContain('OK');
      expect(workloads.leafOf(secret).issuer).toBe(workloads.leafOf(before[i]!).issuer); // Issuer name stable (Istio #19644)
    }
    console.log(
      `[rotation] handshakes ok=${stats.ok} failed=${stats.failed} reloads=${JSON.stringify(stats.reloads)} ` +
        `phases(ms since request)=${JSON.stringify(timeline)}`,
    );
    expect(stats.failures).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.reloads.client).toBeGreaterThanOrEqual(3); // bundle, reissue, retire
  });
});

describe('root rotation on demand (issue #11)', () => {
  it('starts at once, the status follows every phase, phaseSince goes with Idle, writes as alcazar', async () => {
    const ca = await namespace('ca');
    // A check interval of an hour: anything that happens within the waits below was not the periodic check.
    const args = ['--root-rotation-check-interval=1h', '--root-rotation-propagation-delay=4s'];
    await workloads.setCertificateAuthoritySpec(customObjects, {});
    controller = await startController({ caNamespace: ca, args });
    const ns = await namespace('ondemand');
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'w' } } });
    await workloads.waitForWorkloadSecret(core, ns, 'w');
    // Every read of the status records the phase it shows; the waits below read it every 100 ms, one
    // read at a time, from before the request until the rotation is over.
    const seen: string[] = [];
    const rotationStatus = async () => {
      const { status } = await workloads.getCertificateAuthority(customObjects);
      const rotation = (status?.rotation ?? {}) as Record<string, unknown>;
      if (seen.at(-1) !== String(rotation.phase)) seen.push(String(rotation.phase));
      return rotation;
    };
    await waitFor('the status to show Idle first', async () => (await rotationStatus()).phase === 'Idle');
    seen.splice(0, seen.length - 1);
    const phaseShown = (phase: string) => async () => {
      const rotation = await rotationStatus();
      return rotation.phase === phase ? rotation : undefined;
    };
    await workloads.annotateCertificateAuthority(customObjects, { 'alcazar.dev/rotate-root': 'on-demand-1' });
    const followed = { timeoutMs: 10_000, intervalMs: 100 };
    const publishing = await waitFor('the status to show Publishing', phaseShown('Publishing'), followed);
    expect(publishing.startedAt).toBeDefined();
    expect(publishing.phaseSince).toBeDefined();
    const reissuing = await waitFor('the status to show Reissuing', phaseShown('Reissuing'), {
      ...followed,
      timeoutMs: 30_000,
    });
    expect(Date.parse(String(reissuing.phaseSince))).toBeGreaterThan(
      Date.parse(String(publishing.phaseSince)),
    );
    const idle = await waitFor('the status to show Idle again', phaseShown('Idle'), {
      ...followed,
      timeoutMs: 30_000,
    });
    expect(idle).not.toHaveProperty('phaseSince');
    expect(idle).not.toHaveProperty('startedAt');
    expect(seen).toEqual(['Idle', 'Publishing', 'Reissuing', 'Idle']);

    const cr = (await customObjects.getClusterCustomObject({
      group: 'alcazar.dev',
      version: 'v1alpha1',
      plural: 'certificateauthorities',
      name: 'default',
    })) as { metadata: { managedFields?: Array<{ manager: string; subresource?: string }> } };
    const statusManagers = (cr.metadata.managedFields ?? [])
      .filter((f) => f.subresource === 'status')
      .map((f) => f.manager);
    expect(statusManagers).toEqual(['alcazar']);
  });
});

describe('plugged-in CA rotation', () => {
  it('follows the operator through the three-step overlap with zero failed handshakes', async () => {
    const ca = await namespace('ca');
    const day = 86_400_000;
    const notBefore = new Date(Date.now() - 60_000);
    const [oldRoot, newRoot] = await Promise.all([
      createTestCa({ notBefore, notAfter: new Date(Date.now() + 3650 * day) }),
      createTestCa({ notBefore, notAfter: new Date(Date.now() + 3650 * day) }),
    ]);
    const [oldMid, newMid] = await Promise.all([
      createTestIntermediate(oldRoot.issuer, { notBefore }),
      createTestIntermediate(newRoot.issuer, { notBefore }),
    ]);
    const cacerts = (mid: typeof oldMid, roots: Buffer[], chainRoot: Buffer) => ({
      'ca-cert.pem': Buffer.from(mid.certificate.pem).toString('base64'),
      'ca-key.pem': Buffer.from(privateKeyToPem(mid.keys.privateKey)).toString('base64'),
      'root-cert.pem': Buffer.from(encodeCertificatesPem(roots)).toString('base64'),
      'cert-chain.pem': Buffer.from(encodeCertificatesPem([mid.certificate.der, chainRoot])).toString(
        'base64',
      ),
    });
    const writeCacerts = async (data: Record<string, string>) => {
      const existing = await workloads.readSecret(core, ca, 'cacerts');
      if (!existing)
        await core.createNamespacedSecret({ namespace: ca, body: { metadata: { name: 'cacerts' }, data } });
      else
        await core.replaceNamespacedSecret({ namespace: ca, name: 'cacerts', body: { ...existing, data } });
    };
    await writeCacerts(cacerts(oldMid, [oldRoot.root.der], oldRoot.root.der));
    await workloads.setCertificateAuthoritySpec(customObjects, { rootCA: { mode: 'PluggedIn' } });
    controller = await startController({ caNamespace: ca });
    const ns = await namespace('plug');
    for (const sa of ['client', 'server']) {
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
    }
    const bundleOf = (s: V1Secret) =>
      decodeCertificatesPem(Buffer.from(s.data?.['root-cert.pem'] ?? '', 'base64'));
    const signedBy = (mid: typeof oldMid) => (s: V1Secret) =>
      Boolean(s.data?.['cert-chain.pem']) &&
      decodeCertificatesPem(Buffer.from(s.data!['cert-chain.pem']!, 'base64'))[1]?.equals(
        mid.certificate.der,
      ) === true;
    const all = (accept: (s: V1Secret) => boolean) =>
      Promise.all(['client', 'server'].map((sa) => workloads.waitForWorkloadSecret(core, ns, sa, accept)));
    await all(signedBy(oldMid));
    const mesh = await startMeshPair(kc, ns, 'client', 'server');
    await waitFor('handshakes before the rotation', () => mesh.stats.ok >= 20);

    // 1. Trust the new root next to the old one; the old intermediate keeps signing.
    const before = await all(signedBy(oldMid));
    await writeCacerts(cacerts(oldMid, [oldRoot.root.der, newRoot.root.der], oldRoot.root.der));
    const published = await all((s) => bundleOf(s).length === 2);
    expect(published.map((s) => s.data?.['key.pem'])).toEqual(before.map((s) => s.data?.['key.pem'])); // no new keys
    let mark = mesh.stats.ok;
    await waitFor('handshakes with both roots trusted', () => mesh.stats.ok >= mark + 20);

    // 2. Sign with the new intermediate: every leaf is reissued, both roots still trusted.
    await writeCacerts(cacerts(newMid, [oldRoot.root.der, newRoot.root.der], newRoot.root.der));
    await all((s) => signedBy(newMid)(s) && bundleOf(s).length === 2);
    mark = mesh.stats.ok;
    await waitFor('handshakes on the new leaves', () => mesh.stats.ok >= mark + 20);

    // 3. Drop the old root.
    await writeCacerts(cacerts(newMid, [newRoot.root.der], newRoot.root.der));
    const final = await all((s) => bundleOf(s).length === 1 && bundleOf(s)[0]!.equals(newRoot.root.der));
    mark = mesh.stats.ok;
    await waitFor('handshakes after the old root is gone', () => mesh.stats.ok >= mark + 20);
    const stats = await mesh.stop();
    for (const secret of final) expect(workloads.opensslVerify(secret)).toContain('OK');
    console.log(`[plugged-in rotation] handshakes ok=${stats.ok} failed=${stats.failed}`);
    expect(stats.failures).toEqual([]);
  });
});
