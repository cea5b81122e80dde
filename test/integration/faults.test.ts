// Faults the controller must ride out without losing or forking its CA: an
// apiserver restart mid-mint, a watch that resumes from a compacted
// resourceVersion (410 Gone), a watch that stays open but goes silent, a
// SIGKILL mid-mint and mid-rotation, and two controllers racing on an empty
// CA namespace. After each: every ServiceAccount has exactly one valid Secret
// chaining to the one root, and nothing is orphaned.
import { randomBytes } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { decodeCertificatesPem, inspectCertificate } from '../../src/pki/index.js';
import { type ClusterState, startComponent, stopComponent } from '../cluster/controlplane.js';
import { compactEtcd, etcdRevision, restartApiserver } from '../cluster/faults.js';
import { type Audit, auditNamespaces, type CaRoots, caRootsOf, describeAudit } from './support/audit.js';
import type { ControllerProcess, LogLine, StartOptions } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { recordKeyDigests } from './support/key-digests.js';
import { ensureServiceAccount, runPool } from './support/load.js';
import { watchRestarts } from './support/metrics.js';
import { waitFor } from './support/wait.js';
import * as workloads from './support/workload.js';

// Namespaces go after each test, not at the end: a later test's CA would otherwise reissue their Secrets.
const harness = useHarness({ cleanup: 'each', certificateAuthority: true });
const { core, customObjects, leases } = harness;
const CA_SECRET = 'istio-ca-secret';

/** Progress on stdout, so a slow or stuck run shows where it is. */
const step = (what: string) => console.log(`[faults ${new Date().toISOString().slice(11, 23)}] ${what}`);

const controller = (opts: StartOptions) => harness.controller(opts);
const proxy = () => harness.apiProxy();
const namespace = (prefix: string) => harness.namespace(prefix);

/**
 * Runs `change`, which stops kube-apiserver and starts it again (perhaps with etcd changed in
 * between); should it fail half-way, cleanup restarts kube-apiserver with its standard flags.
 */
async function apiserverOutage(cluster: ClusterState, change: () => Promise<void>): Promise<void> {
  let done = false;
  harness.defer(async () => {
    if (!done) await restartApiserver(cluster);
  });
  await change();
  done = true;
}

/** Polls the audit of `namespaces` until it finds nothing wrong; fails with what is still wrong. */
async function converged(
  namespaces: string[],
  ca: () => Promise<CaRoots>,
  { timeoutMs = 90_000, serviceAccounts = 1 } = {},
): Promise<Audit> {
  let last: Audit | undefined;
  try {
    const audit = await waitFor(
      'every ServiceAccount to have exactly one valid Secret',
      async () => {
        last = await auditNamespaces(core, namespaces, await ca());
        return last.problems.length === 0 && last.serviceAccounts >= serviceAccounts ? last : undefined;
      },
      { timeoutMs, intervalMs: 1_000 },
    );
    recordKeyDigests(audit.keyDigests);
    return audit;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${last ? describeAudit(last) : 'no audit completed'}`);
  }
}

const issuedIn = (proc: Pick<ControllerProcess, 'lines'>, namespaces: string[]) =>
  proc.lines.filter(
    (l) => l.msg === 'issued workload certificate' && namespaces.includes(l.namespace as string),
  );

const caSecretsIn = async (ns: string) =>
  (await core.listNamespacedSecret({ namespace: ns, fieldSelector: 'type=istio.io/ca-root' })).items;

const decoded = (secret: V1Secret, key: string) => Buffer.from(secret.data?.[key] ?? '', 'base64');
const fingerprintOf = (pem: Buffer) => inspectCertificate(decodeCertificatesPem(pem)[0]!).fingerprintSha256;

const relisted = (reason: string) => (l: LogLine) =>
  l.msg === 'watch ended; relisting' && l.reason === reason;

describe('the apiserver goes away', () => {
  it('restarting kube-apiserver while 500 ServiceAccounts are created: the controller reconnects, every one gets exactly one valid Secret', async () => {
    const cluster = harness.controlPlane();
    const ca = await namespace('ca');
    const proc = await controller({ caNamespace: ca });
    const caBefore = await waitFor('istio-ca-secret', () => workloads.readSecret(core, ca, CA_SECRET));
    const spaces = await Promise.all(Array.from({ length: 5 }, () => namespace('mint')));
    const work = Array.from({ length: 500 }, (_, i) => ({ ns: spaces[i % spaces.length]!, name: `sa-${i}` }));

    let created = 0;
    let outage: Promise<void> | undefined;
    const started = Date.now();
    const timeline: Record<string, number> = {};
    await runPool(work, 16, async ({ ns, name }) => {
      await ensureServiceAccount(core, ns, name);
      if (++created === 150) {
        outage = apiserverOutage(cluster, async () => {
          timeline.stopping = Date.now() - started;
          await stopComponent(cluster, 'kube-apiserver', 3_000);
          timeline.stopped = Date.now() - started;
          await startComponent(cluster, 'kube-apiserver');
          timeline.restarted = Date.now() - started;
        });
      }
    });
    timeline.allCreated = Date.now() - started;
    await outage;

    const audit = await converged(spaces, () => caRootsOf(core, ca), {
      timeoutMs: 180_000,
      serviceAccounts: 505, // 500 + a default ServiceAccount per namespace
    });
    timeline.converged = Date.now() - started;
    console.log(
      `[faults] 500 SAs across an apiserver restart: ${JSON.stringify(timeline)} (ms); ` +
        `${audit.serviceAccounts} ServiceAccounts, ${audit.secrets} Secrets`,
    );
    expect(audit.serviceAccounts).toBe(505);
    expect(audit.secrets).toBe(505);
    // The same process rode it out: it saw the outage, and never restarted or made a second root.
    expect(proc.lines.some((l) => l.msg === 'list/watch failed; retrying')).toBe(true);
    expect(proc.lines.filter((l) => l.msg === 'controller started')).toHaveLength(1);
    expect(
      proc.lines.filter((l) => String(l.msg).startsWith('generated a new self-signed root')),
    ).toHaveLength(1);
    const caAfter = await workloads.readSecret(core, ca, CA_SECRET);
    expect(caAfter?.metadata?.uid).toBe(caBefore.metadata?.uid);
    expect(caAfter?.metadata?.resourceVersion).toBe(caBefore.metadata?.resourceVersion);
    for (const i of [0, 149, 499]) {
      const secret = await workloads.waitForWorkloadSecret(core, work[i]!.ns, work[i]!.name);
      expect(workloads.opensslVerify(secret)).toContain('OK');
    }
  }, 300_000);

  it('a watch resumed from a compacted resourceVersion gets 410 Gone, relists, and converges on what changed in the gap', async () => {
    const cluster = harness.controlPlane();
    const ca = await namespace('ca');
    const api = await proxy();
    const proc = await controller({ caNamespace: ca, kubeconfig: api.kubeconfig });
    const ns = await namespace('gap');
    for (const sa of ['keep', 'drop', 'heal']) await ensureServiceAccount(core, ns, sa);
    await converged([ns], () => caRootsOf(core, ca), { serviceAccounts: 4 });
    const healed = await workloads.waitForWorkloadSecret(core, ns, 'heal');
    const expiredBefore = await watchRestarts(proc, 'serviceaccounts', 'expired');
    const from = proc.lines.length;

    // The controller hears nothing from here on; meanwhile the cluster changes.
    step("holding the controller's traffic; changing the cluster");
    api.hold();
    await ensureServiceAccount(core, ns, 'born-in-gap');
    await core.deleteNamespacedServiceAccount({ namespace: ns, name: 'drop' });
    await core.deleteNamespacedSecret({ namespace: ns, name: 'istio.heal' });
    const late = await namespace('gap');
    // History up to now is compacted away, and the restarted apiserver's watch cache starts at
    // the current revision: a watch resumed from the controller's last resourceVersion can only
    // be refused, whether the cache or etcd answers it.
    const revision = await etcdRevision(cluster);
    step(`restarting kube-apiserver; compacting etcd at revision ${revision}`);
    await apiserverOutage(cluster, async () => {
      await stopComponent(cluster, 'kube-apiserver', 3_000);
      await compactEtcd(cluster, revision);
      await startComponent(cluster, 'kube-apiserver');
    });
    step("releasing the controller's traffic");
    api.release(); // the open watches end cleanly: the controller resumes them from where it was

    const error = await proc.waitForLog('a watch ERROR event', (l) => l.msg === 'watch error', 30_000);
    expect(error.code).toBe(410);
    await proc.waitForLog('a relist after the expired watch', relisted('expired'), 30_000);
    await waitFor(
      'the expired-watch metric',
      async () => (await watchRestarts(proc, 'serviceaccounts', 'expired')) > expiredBefore,
    );
    expect(proc.lines.slice(from).filter((l) => l.msg === 'watch error' && l.code !== 410)).toEqual([]);

    step('waiting for convergence');
    const audit = await converged([ns, late], () => caRootsOf(core, ca), { serviceAccounts: 5 });
    const names = await core.listNamespacedSecret({
      namespace: ns,
      labelSelector: 'app.kubernetes.io/managed-by=alcazar',
    });
    expect(names.items.map((s) => s.metadata?.name).sort()).toEqual([
      'istio.born-in-gap',
      'istio.default',
      'istio.heal',
      'istio.keep',
    ]);
    expect((await workloads.readSecret(core, ns, 'istio.heal'))?.metadata?.uid).not.toBe(
      healed.metadata?.uid,
    );
    expect(audit.problems).toEqual([]);
  });

  it('a watch that stays open but delivers nothing is restarted by the watchdog, and what changed meanwhile converges', async () => {
    const ca = await namespace('ca');
    const api = await proxy();
    const proc = await controller({
      caNamespace: ca,
      kubeconfig: api.kubeconfig,
      args: ['--watch-stall-timeout=3s'],
    });
    const ns = await namespace('stall');
    await ensureServiceAccount(core, ns, 'before');
    await converged([ns], () => caRootsOf(core, ca), { serviceAccounts: 2 });
    const stalledBefore = await watchRestarts(proc, 'serviceaccounts', 'stalled');
    const from = proc.lines.length;

    // Every watch stream, open or new, stays connected and silent; lists still pass.
    step('freezing every watch stream');
    api.freezeWatches();
    const withheldAt = api.stats.eventsWithheld;
    for (const sa of ['during-1', 'during-2', 'during-3']) await ensureServiceAccount(core, ns, sa);
    await converged([ns], () => caRootsOf(core, ca), { timeoutMs: 60_000, serviceAccounts: 5 });
    expect(api.stats.eventsWithheld, 'the frozen watches withheld the events').toBeGreaterThan(withheldAt);
    expect(api.openWatches).toBeGreaterThan(0);
    expect(proc.lines.slice(from).some(relisted('stalled'))).toBe(true);
    expect(await watchRestarts(proc, 'serviceaccounts', 'stalled')).toBeGreaterThan(stalledBefore);

    step('thawing the watch streams');
    api.thawWatches();
    await ensureServiceAccount(core, ns, 'after');
    const audit = await converged([ns], () => caRootsOf(core, ca), { serviceAccounts: 6 });
    expect(audit.serviceAccounts).toBe(6);
  });
});

describe('the controller is killed', () => {
  it('SIGKILL while a batch is being minted: the next process converges with the same root, no duplicates, no orphans', async () => {
    const ca = await namespace('ca');
    const ns = await namespace('kill');
    const names = Array.from({ length: 120 }, (_, i) => `batch-${i}`);
    await runPool(names, 16, (name) => ensureServiceAccount(core, ns, name));
    step('starting the controller to be killed');
    const first = await controller({ caNamespace: ca });
    await waitFor('a first part of the batch to be issued', () => issuedIn(first, [ns]).length >= 20, {
      timeoutMs: 60_000,
      intervalMs: 20,
    });
    await first.kill();
    const issuedByFirst = issuedIn(first, [ns]).length;
    const caSecret = (await workloads.readSecret(core, ca, CA_SECRET))!;
    const atKill = new Map(
      (
        await core.listNamespacedSecret({
          namespace: ns,
          labelSelector: 'app.kubernetes.io/managed-by=alcazar',
        })
      ).items.map((s) => [s.metadata!.name!, s.metadata!.resourceVersion!]),
    );

    step('killed; starting the next controller');
    const second = await controller({ caNamespace: ca });
    const audit = await converged([ns], () => caRootsOf(core, ca), { serviceAccounts: names.length + 1 });
    console.log(
      `[faults] killed after ${issuedByFirst} issues, ${atKill.size} Secrets existed; ${audit.secrets} at the end`,
    );
    expect(atKill.size, 'the kill came before the batch was done').toBeLessThan(names.length + 1);
    expect(audit.secrets).toBe(names.length + 1);
    // What the first process wrote stands: nothing it issued is issued again.
    const after = await core.listNamespacedSecret({
      namespace: ns,
      labelSelector: 'app.kubernetes.io/managed-by=alcazar',
    });
    for (const s of after.items) {
      const before = atKill.get(s.metadata!.name!);
      if (before) expect(s.metadata?.resourceVersion, `${s.metadata?.name} rewritten`).toBe(before);
    }
    // A create in flight at the kill may land after the listing above: at most the rest is issued.
    expect(issuedIn(second, [ns]).length).toBeLessThanOrEqual(names.length + 1 - atKill.size);
    // One root lineage.
    expect(second.lines.some((l) => String(l.msg).startsWith('generated a new self-signed root'))).toBe(
      false,
    );
    const caSecrets = await caSecretsIn(ca);
    expect(caSecrets.map((s) => s.metadata?.uid)).toEqual([caSecret.metadata?.uid]);
    expect(caSecrets[0]?.metadata?.resourceVersion).toBe(caSecret.metadata?.resourceVersion);
  });

  it('SIGKILL while Reissuing during a root rotation: the next process resumes it, one root lineage, every Secret on the new root', async () => {
    const ca = await namespace('ca');
    const ns = await namespace('rot');
    const names = Array.from({ length: 40 }, (_, i) => `w-${i}`);
    await runPool(names, 16, (name) => ensureServiceAccount(core, ns, name));
    await workloads.setCertificateAuthoritySpec(customObjects, {});
    const args = ['--root-rotation-check-interval=300ms', '--root-rotation-propagation-delay=2s'];
    const first = await controller({ caNamespace: ca, args });
    await converged([ns], () => caRootsOf(core, ca), { serviceAccounts: names.length + 1 });
    const original = (await workloads.readSecret(core, ca, CA_SECRET))!;
    const oldRoot = fingerprintOf(decoded(original, 'ca-cert.pem'));

    const request = `faults-${randomBytes(3).toString('hex')}`;
    await workloads.annotateCertificateAuthority(customObjects, { 'alcazar.dev/rotate-root': request });
    await first.waitForLog('the new root activated', (l) => l.step === 'activate', 60_000);
    const activated = first.lines.length;
    await waitFor(
      'the first reissues under the new root',
      () => issuedIn({ lines: first.lines.slice(activated) }, [ns]).length >= 5,
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    await first.kill();

    const atKill = (await workloads.readSecret(core, ca, CA_SECRET))!;
    expect(atKill.metadata?.annotations?.['alcazar.dev/rotation-phase']).toBe('Reissuing');
    const newRoot = fingerprintOf(decoded(atKill, 'ca-cert.pem'));
    expect(newRoot).not.toBe(oldRoot);
    const reissuedAtKill = issuedIn(first, [ns]).filter((l) => l.reason === 'NotSignedByCurrentCA').length;

    const second = await controller({ caNamespace: ca, args });
    await second.waitForLog('the rotation to finish', (l) => l.step === 'retire', 60_000);
    const final = (await workloads.readSecret(core, ca, CA_SECRET))!;
    expect(final.metadata?.uid).toBe(original.metadata?.uid);
    expect(final.metadata?.annotations?.['alcazar.dev/rotation-phase']).toBeUndefined();
    expect(final.metadata?.annotations?.['alcazar.dev/rotation-request']).toBe(request);
    expect(fingerprintOf(decoded(final, 'ca-cert.pem'))).toBe(newRoot);
    const bundle = decodeCertificatesPem(decoded(final, 'root-cert.pem'));
    expect(bundle.map((der) => inspectCertificate(der).fingerprintSha256)).toEqual([newRoot]);
    expect((await caSecretsIn(ca)).map((s) => s.metadata?.uid)).toEqual([original.metadata?.uid]);
    expect(second.lines.some((l) => String(l.msg).startsWith('generated a new self-signed root'))).toBe(
      false,
    );
    expect(second.lines.some((l) => l.step === 'start')).toBe(false); // resumed, not started again

    const audit = await converged([ns], () => caRootsOf(core, ca), { serviceAccounts: names.length + 1 });
    console.log(
      `[faults] rotation killed in Reissuing with ${reissuedAtKill}/${names.length + 1} reissued; ` +
        `the next process reissued ${issuedIn(second, [ns]).length}`,
    );
    expect(audit.secrets).toBe(names.length + 1);
  });
});

describe('two controllers start at once on an empty CA namespace', () => {
  async function race(leaderElect: boolean) {
    const ca = await namespace('ca');
    const ns = await namespace('race');
    await runPool(
      Array.from({ length: 20 }, (_, i) => `app-${i}`),
      10,
      (name) => ensureServiceAccount(core, ns, name),
    );
    const id = randomBytes(3).toString('hex');
    const args = (who: string) => (leaderElect ? [`--identity=faults-${who}-${id}`, '--leader-elect'] : []);
    const procs = await Promise.all(
      ['a', 'b'].map((who) => controller({ caNamespace: ca, args: args(who) })),
    );
    const audit = await converged([ns], () => caRootsOf(core, ca), { serviceAccounts: 21 });
    expect(audit.secrets).toBe(21);
    const caSecrets = await caSecretsIn(ca);
    expect(caSecrets).toHaveLength(1);
    const generated = procs.flatMap((p) =>
      p.lines.filter((l) => String(l.msg).startsWith('generated a new self-signed root')),
    );
    expect(generated).toHaveLength(1);
    return { ca, ns, procs, id };
  }

  it('with leader election: one root, and only the leader issues', async () => {
    const { ca, ns, procs, id } = await race(true);
    const issuers = procs.filter((p) => issuedIn(p, [ns]).length > 0);
    expect(issuers).toHaveLength(1);
    expect(procs.filter((p) => p.lines.some((l) => l.msg === 'issued workload certificate'))).toHaveLength(1);
    const leader = issuers[0]!;
    const lease = await leases.readNamespacedLease({ namespace: ca, name: 'alcazar-leader' });
    const leaderId = `faults-${procs.indexOf(leader) === 0 ? 'a' : 'b'}-${id}`;
    expect(lease.spec?.holderIdentity).toBe(leaderId);
    expect(leader.lines.some((l) => l.msg === 'became leader')).toBe(true);
  });

  it('without leader election: still exactly one root, and every Secret chains to it', async () => {
    const { procs } = await race(false);
    const signers = await Promise.all(
      procs.map(async (p) => (await p.waitForLog('CA loaded', (l) => l.msg === 'CA loaded')).signer),
    );
    expect(signers[0]).toBe(signers[1]);
  });
});
