// Several replicas, one leader: only the leader writes, a follower takes over
// when the leader dies and finishes the pending work, nothing is minted twice.
import { describe, expect, it } from 'vitest';
import { type ControllerProcess, leaderElectionArgs } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { waitFor } from './support/wait.js';
import { waitForWorkloadSecret } from './support/workload.js';

const harness = useHarness();
const { core } = harness;

const issuedIn = (proc: ControllerProcess, namespace: string) =>
  proc.lines.filter((l) => l.msg === 'issued workload certificate' && l.namespace === namespace);

const waitForIssueLines = async (
  proc: ControllerProcess,
  namespace: string,
  names: string[],
  who: string,
) => {
  for (const sa of names) {
    await proc.waitForLog(
      `the ${who}'s issue for ${sa}`,
      (l) => l.msg === 'issued workload certificate' && l.namespace === namespace && l.serviceAccount === sa,
    );
  }
};

describe('high availability', () => {
  it('only the leader writes; when it dies the follower takes over, finishes pending work, mints nothing twice', async () => {
    const ca = await harness.namespace('ca');
    const [a, b] = await Promise.all([
      harness.controller({ caNamespace: ca, args: leaderElectionArgs('replica-a') }),
      harness.controller({ caNamespace: ca, args: leaderElectionArgs('replica-b') }),
    ]);
    const leader = await waitFor('a leader', () =>
      [a!, b!].find((r) => r.lines.some((l) => l.msg === 'became leader')),
    );
    const follower = leader === a ? b! : a!;

    const ns = await harness.namespace('ha');
    for (const sa of ['one', 'two']) {
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
    }
    await Promise.all(['one', 'two', 'default'].map((sa) => waitForWorkloadSecret(core, ns, sa)));
    // A Secret can be visible before the log line about it arrives: wait for the lines themselves.
    await waitForIssueLines(leader, ns, ['one', 'two', 'default'], 'leader');
    expect(issuedIn(leader, ns)).toHaveLength(3);
    expect(issuedIn(follower, ns)).toHaveLength(0);
    expect(follower.lines.some((l) => l.msg === 'became leader')).toBe(false);

    // The leader dies without releasing the Lease; work arrives while nobody leads.
    await leader.kill();
    for (const sa of ['three', 'four']) {
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
    }
    await follower.waitForLog('the follower to take over', (l) => l.msg === 'became leader', 20_000);
    await Promise.all(['three', 'four'].map((sa) => waitForWorkloadSecret(core, ns, sa)));
    await waitForIssueLines(follower, ns, ['three', 'four'], 'new leader');

    // Every ServiceAccount got exactly one certificate, across both replicas.
    const perServiceAccount = new Map<string, number>();
    for (const line of [...issuedIn(leader, ns), ...issuedIn(follower, ns)]) {
      const sa = String(line.serviceAccount);
      perServiceAccount.set(sa, (perServiceAccount.get(sa) ?? 0) + 1);
    }
    expect(Object.fromEntries(perServiceAccount)).toEqual({ default: 1, one: 1, two: 1, three: 1, four: 1 });
    // Exactly one root: the follower used the leader's CA Secret.
    const caSecrets = await core.listNamespacedSecret({
      namespace: ca,
      fieldSelector: 'type=istio.io/ca-root',
    });
    expect(caSecrets.items).toHaveLength(1);
  });
});
