// A leader cut off from the API server while it keeps running: its requests
// first hang (black-holed), then fail (connections reset), while the other
// replica still reaches the API server directly. The follower takes over once
// the lease has expired by its clock; the proxy's record of what reached the
// API server shows no write by the old leader after its renew deadline, not
// even the writes it had in flight when the partition began (TCP would
// deliver those when the path comes back, so the old leader must have
// abandoned them); once the partition heals it rejoins as a follower and
// writes nothing.
import type { V1Lease } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { ProxyRecord } from './support/api-proxy.js';
import { auditNamespaces, caRootsOf, describeAudit } from './support/audit.js';
import { leaderElectionArgs, shortElection as timing } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { runPool } from './support/load.js';
import { waitFor } from './support/wait.js';

const harness = useHarness();
const { core, leases } = harness;
const SERVICE_ACCOUNTS = 300;
/** The partition begins when the leader sends this many Secret creations. */
const PARTITION_AFTER_CREATES = 20;

const isLeasePath = (path: string) => path.includes('/apis/coordination.k8s.io/v1/');
const isWrite = (r: ProxyRecord) => r.method !== 'GET';
const wallClock = (t: unknown) => Date.parse(String(t));

describe('a partitioned leader', () => {
  it('stops writing by its renew deadline, is replaced after the lease expires, and rejoins as a follower', async () => {
    const ca = await harness.namespace('ca');
    const ns = await harness.namespace('partition');
    const p = await harness.apiProxy();

    // replica-a reaches the API server only through the proxy; it leads.
    const a = await harness.controller({
      caNamespace: ca,
      kubeconfig: p.kubeconfig,
      args: leaderElectionArgs('replica-a'),
    });
    await a.waitForLog('replica-a to lead', (l) => l.msg === 'became leader');
    await waitFor('the root CA Secret', () => caRootsOf(core, ca).catch(() => undefined));
    const b = await harness.controller({ caNamespace: ca, args: leaderElectionArgs('replica-b') });

    // Partition in the middle of a burst, so the leader has writes queued and in flight.
    let creates = 0;
    let partitionAt = 0;
    /** Records from here on arrived after the partition began (the request that began it is forwarded). */
    let partitionIndex = 0;
    const secretsPath = `/api/v1/namespaces/${ns}/secrets`;
    p.beforeForward((method, path) => {
      if (method === 'POST' && path.startsWith(secretsPath) && ++creates === PARTITION_AFTER_CREATES) {
        p.partition('hang');
        partitionAt = Date.now();
        partitionIndex = p.records.length;
      }
    });
    const names = Array.from({ length: SERVICE_ACCOUNTS }, (_, i) => `sa-${i}`);
    await runPool(names, 10, async (name) => {
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
    });
    await waitFor('the partition to begin', () => partitionAt > 0);

    // The follower takes over once the lease has expired by its clock.
    await b.waitForLog('replica-b to take over', (l) => l.msg === 'became leader', 30_000);
    await a.waitForLog('replica-a to step down', (l) => l.msg === 'stopped leading', 10_000);
    // Now the partition refuses connections; the old leader keeps trying.
    p.partition('refuse');
    const refuseAt = Date.now();
    await waitFor('the old leader to be refused twice', () =>
      p.records.filter((r) => r.receivedAt >= refuseAt && r.outcome === 'reset').length >= 2
        ? true
        : undefined,
    );
    const healAt = Date.now();
    p.heal();

    // Everything converges on the new leader's work.
    const audit = await waitFor(
      'every ServiceAccount to have a valid Secret',
      async () => {
        const result = await auditNamespaces(core, [ns], await caRootsOf(core, ca));
        return result.problems.length === 0 ? result : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    ).catch(async (err) => {
      const last = await auditNamespaces(core, [ns], await caRootsOf(core, ca));
      throw new Error(`${(err as Error).message}\n${describeAudit(last)}`);
    });
    expect(audit.serviceAccounts).toBe(SERVICE_ACCOUNTS + 1);
    expect(audit.secrets).toBe(SERVICE_ACCOUNTS + 1);
    // The old leader is back on the network and sees who leads now, for a few rounds.
    await waitFor(
      'the old leader to read the Lease again after the heal',
      () =>
        p.records.filter((r) => r.forwardedAt! >= healAt && isLeasePath(r.path) && r.status === 200).length >=
        3
          ? true
          : undefined,
      { timeoutMs: 20_000 },
    );

    const records = [...p.records];
    // The old leader's last successful renewal, and the read that began that round: its renew
    // deadline is at most renewDeadline after that read arrived here.
    const lastRenewal = records.findLast(
      (r) => isLeasePath(r.path) && r.method === 'PUT' && r.status === 200,
    );
    const roundStart = records.findLast(
      (r) => isLeasePath(r.path) && r.method === 'GET' && r.receivedAt <= (lastRenewal?.receivedAt ?? 0),
    );
    expect(lastRenewal).toBeDefined();
    expect(roundStart).toBeDefined();
    const renewDeadline = roundStart!.receivedAt + timing.renewDeadlineMs;
    const delivered = records.filter((r) => isWrite(r) && r.forwardedAt !== undefined);
    const late = delivered.filter((r) => r.forwardedAt! > renewDeadline);
    expect(late.map((r) => `${r.method} ${r.path} at deadline+${r.forwardedAt! - renewDeadline} ms`)).toEqual(
      [],
    );
    // Not vacuous: writes were on their way when the partition began, and none of them arrived.
    const cutOff = records.slice(partitionIndex).filter((r) => isWrite(r) && !isLeasePath(r.path));
    expect(cutOff.length).toBeGreaterThan(0);
    expect(cutOff.filter((r) => r.forwardedAt !== undefined)).toEqual([]);
    expect(records.filter((r) => r.forwardedAt! >= healAt && isWrite(r))).toEqual([]);

    // The new leader took over only after the old lease expired, and after the old leader's last write.
    const lease: V1Lease = await leases.readNamespacedLease({ namespace: ca, name: 'alcazar-leader' });
    expect(lease.spec?.holderIdentity).toBe('replica-b');
    const acquiredAt = wallClock(lease.spec?.acquireTime);
    expect(Math.max(...delivered.map((r) => r.forwardedAt!))).toBeLessThan(acquiredAt);
    expect(acquiredAt - lastRenewal!.forwardedAt!).toBeGreaterThanOrEqual(timing.leaseDurationMs - 10);

    // The old leader led once, stepped down once, and stays a follower.
    expect(a.lines.filter((l) => l.msg === 'became leader')).toHaveLength(1);
    expect(a.lines.filter((l) => l.msg === 'stopped leading')).toHaveLength(1);
    expect(a.lines.some((l) => l.msg === 'lease holder changed' && l.holder === 'replica-b')).toBe(true);
  });
});
