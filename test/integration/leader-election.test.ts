// Leader election against the real apiserver: at most one leader at any
// sampled moment, a prompt hand-over on stop(), a prompt step-down when the
// Lease is taken from under the leader, a take-over only once a crashed
// leader's lease has expired, and no second leader when the Lease vanishes
// right after another candidate created it.
import { CoordinationV1Api, CoreV1Api, KubeConfig, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeaderElector } from '../../src/kube/leader-election.js';
import { readState } from '../cluster/controlplane.js';
import { type ApiProxy, startApiProxy } from './support/api-proxy.js';
import { adminKubeConfig, createTestNamespace, statusCodeOf } from './support/kube.js';
import { waitFor } from './support/wait.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const leases = kc.makeApiClient(CoordinationV1Api);

const timing = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };
const leaseName = 'alcazar-leader';
const microTimeFormat = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

interface LogLine {
  level: number;
  msg: string;
  identity?: string;
  [field: string]: unknown;
}

interface Candidate {
  readonly elector: LeaderElector;
  /** How often onStartedLeading / onStoppedLeading ran. */
  readonly started: number;
  readonly stopped: number;
}

let ns: Awaited<ReturnType<typeof createTestNamespace>>;
let candidates: Candidate[];
let logLines: LogLine[];
let proxies: ApiProxy[];
const log = pino(
  { level: 'debug' },
  { write: (line: string) => void logLines.push(JSON.parse(line) as LogLine) },
);

beforeEach(async () => {
  ns = await createTestNamespace(core, 'leader');
  candidates = [];
  logLines = [];
  proxies = [];
});
afterEach(async () => {
  await Promise.all(candidates.map((c) => c.elector.stop()));
  await Promise.all(proxies.map((p) => p.close()));
  await ns?.remove();
});

/** A candidate; through `proxy` when given, else straight to the apiserver. */
function candidate(identity: string, proxy?: ApiProxy): Candidate {
  const calls = { started: 0, stopped: 0 };
  const kubeConfig = proxy ? new KubeConfig() : adminKubeConfig();
  if (proxy) kubeConfig.loadFromFile(proxy.kubeconfig);
  const elector = new LeaderElector({
    kubeConfig,
    namespace: ns.name,
    leaseName,
    identity,
    ...timing,
    log,
    onStartedLeading: () => calls.started++,
    onStoppedLeading: () => calls.stopped++,
  });
  const c: Candidate = {
    elector,
    get started() {
      return calls.started;
    },
    get stopped() {
      return calls.stopped;
    },
  };
  candidates.push(c);
  elector.start();
  return c;
}

/**
 * Samples every candidate's write gate every 25 ms until stopped; remembers
 * every moment at which more than one said yes.
 */
function sampleLeaders(all: Candidate[]) {
  const overlaps: string[][] = [];
  let samples = 0;
  const timer = setInterval(() => {
    samples++;
    const leading = all.filter((c) => c.elector.isLeader()).map((c) => c.elector.identity);
    if (leading.length > 1) overlaps.push(leading);
  }, 25);
  return {
    stop: () => {
      clearInterval(timer);
      return { overlaps, samples };
    },
  };
}

const readLease = (): Promise<V1Lease> => leases.readNamespacedLease({ namespace: ns.name, name: leaseName });
const deleteLease = () => leases.deleteNamespacedLease({ namespace: ns.name, name: leaseName });

async function proxy(): Promise<ApiProxy> {
  const state = readState();
  if (!state) throw new Error('no control plane state (ALCAZAR_CLUSTER_DIR)');
  const p = await startApiProxy(state);
  proxies.push(p);
  return p;
}
const leaders = (all: Candidate[]) => all.filter((c) => c.elector.isLeader());
const wallClock = (t: unknown) => Date.parse(String(t));
const ignore404 = (err: unknown) => {
  if (statusCodeOf(err) !== 404) throw err;
};
const ignore409 = (err: unknown) => {
  if (statusCodeOf(err) !== 409) throw err;
  return false;
};
/**
 * Lease timestamps come from Date.now(), expiry from the monotonic clock; on
 * one host they advance together, up to a few ms of rounding between sources.
 */
const clockSlackMs = 10;

describe('leader election on a Lease', () => {
  it('lets exactly one of two candidates lead, renewing a Lease with MicroTime timestamps', async () => {
    const all = [candidate('a'), candidate('b')];
    const leader = await waitFor('a leader', () => leaders(all)[0], { intervalMs: 25 });
    const sampler = sampleLeaders(all);

    // Over more than a lease duration the leader keeps renewing and nobody else leads.
    const first = await readLease();
    const renewed = await waitFor(
      'renewals spanning more than a lease duration',
      async () => {
        const lease = await readLease();
        return wallClock(lease.spec?.renewTime) - wallClock(first.spec?.renewTime) > timing.leaseDurationMs
          ? lease
          : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    const { overlaps, samples } = sampler.stop();

    expect(overlaps).toEqual([]);
    expect(samples).toBeGreaterThan(50);
    expect(leaders(all)).toEqual([leader]);
    expect(all.map((c) => c.started)).toEqual(all.map((c) => (c === leader ? 1 : 0)));
    expect(renewed.spec?.holderIdentity).toBe(leader.elector.identity);
    expect(renewed.spec?.leaseDurationSeconds).toBe(3);
    expect(renewed.spec?.leaseTransitions).toBe(0);
    // client-node hands MicroTime back as the server's string: six fractional digits.
    expect(String(renewed.spec?.renewTime)).toMatch(microTimeFormat);
    expect(String(renewed.spec?.acquireTime)).toBe(String(first.spec?.acquireTime));
  });

  it('hands over well before the lease would expire when the leader stops', async () => {
    const all = [candidate('a'), candidate('b')];
    const leader = await waitFor('a leader', () => leaders(all)[0], { intervalMs: 25 });
    const follower = all.find((c) => c !== leader)!;
    const sampler = sampleLeaders(all);

    await leader.elector.stop();
    expect(leader.elector.isLeader()).toBe(false);
    expect(leader.stopped).toBe(1);
    // A released Lease is free at once; waiting out the lease would take leaseDuration.
    await waitFor('the follower to lead', () => follower.elector.isLeader(), {
      timeoutMs: timing.leaseDurationMs * 0.8,
      intervalMs: 25,
    });
    expect(sampler.stop().overlaps).toEqual([]);

    const lease = await readLease();
    expect(lease.spec?.holderIdentity).toBe(follower.elector.identity);
    expect(lease.spec?.leaseTransitions).toBe(1);
    const changes = logLines
      .filter((l) => l.msg === 'became leader' || l.msg === 'stopped leading')
      .map((l) => `${l.identity} ${l.msg} (level ${l.level})`);
    expect(changes).toEqual([
      `${leader.elector.identity} became leader (level 30)`,
      `${leader.elector.identity} stopped leading (level 30)`,
      `${follower.elector.identity} became leader (level 30)`,
    ]);
  });

  it.each([
    ['its holder is replaced', 'replace'],
    ['it is deleted and re-created for someone else', 'recreate'],
  ] as const)('makes the leader step down when the Lease is taken from under it (%s)', async (_, how) => {
    const all = [candidate('a'), candidate('b')];
    const leader = await waitFor('a leader', () => leaders(all)[0], { intervalMs: 25 });
    const follower = all.find((c) => c !== leader)!;
    const sampler = sampleLeaders(all);

    const takenAt = Date.now();
    const spec = {
      holderIdentity: 'intruder',
      leaseDurationSeconds: 3,
      acquireTime: new V1MicroTime(takenAt),
      renewTime: new V1MicroTime(takenAt),
    };
    if (how === 'replace') {
      const current = await readLease();
      await leases.replaceNamespacedLease({
        namespace: ns.name,
        name: leaseName,
        body: { ...current, spec },
      });
    } else {
      // The leader may re-create its Lease between our delete and create (a
      // vanished Lease that was ours is ours to re-create): then go again.
      await waitFor('the intruder to re-create the Lease', async () => {
        await leases.deleteNamespacedLease({ namespace: ns.name, name: leaseName }).catch(ignore404);
        return leases
          .createNamespacedLease({ namespace: ns.name, body: { metadata: { name: leaseName }, spec } })
          .then(() => true, ignore409);
      });
    }

    // The leader notices at its next renewal, well within the renew deadline.
    await waitFor('the leader to step down', () => leader.stopped === 1, {
      timeoutMs: timing.renewDeadlineMs,
      intervalMs: 25,
    });
    expect(leader.elector.isLeader()).toBe(false);
    // ... because it saw the intruder, not because its renew deadline ran out.
    expect(
      logLines.find((l) => l.msg === 'stopped leading' && l.identity === leader.elector.identity)?.reason,
    ).toBe('lease is held by intruder');
    // The intruder never renews: one candidate takes over once its lease has expired.
    const next = await waitFor('a new leader', () => leaders(all)[0], { timeoutMs: 10_000, intervalMs: 25 });
    const { overlaps, samples } = sampler.stop();

    expect(overlaps).toEqual([]);
    expect(samples).toBeGreaterThan(40);
    const lease = await readLease();
    expect(lease.spec?.holderIdentity).toBe(next.elector.identity);
    // Nobody took the intruder's lease before it expired (same host, so one wall clock).
    expect(wallClock(lease.spec?.acquireTime) - takenAt).toBeGreaterThanOrEqual(
      timing.leaseDurationMs - clockSlackMs,
    );
    expect([leader, follower]).toContain(next);
  });

  it('takes over from a crashed leader only after its lease expires, never overlapping', async () => {
    const all = [candidate('a'), candidate('b')];
    const crashed = await waitFor('a leader', () => leaders(all)[0], { intervalMs: 25 });
    const survivor = all.find((c) => c !== crashed)!;
    const sampler = sampleLeaders(all);

    await crashed.elector.abandon();
    const lastRenewal = await readLease();
    expect(lastRenewal.spec?.holderIdentity).toBe(crashed.elector.identity);

    await waitFor('the survivor to lead', () => survivor.elector.isLeader(), {
      timeoutMs: 10_000,
      intervalMs: 25,
    });
    const { overlaps } = sampler.stop();

    expect(overlaps).toEqual([]);
    expect(crashed.elector.isLeader()).toBe(false);
    expect(crashed.stopped).toBe(0); // a crashed process runs no callbacks
    const lease = await readLease();
    expect(lease.spec?.holderIdentity).toBe(survivor.elector.identity);
    expect(lease.spec?.leaseTransitions).toBe(1);
    expect(
      wallClock(lease.spec?.acquireTime) - wallClock(lastRenewal.spec?.renewTime),
    ).toBeGreaterThanOrEqual(timing.leaseDurationMs - clockSlackMs);
  });

  it('does not create a Lease that vanished right after another candidate created it', async () => {
    // The race: b finds no Lease; a creates one before b does (b's create gets 409); the Lease is
    // deleted before b reads it again. b has never seen who holds it, so it must wait for that
    // unseen holder's lease to expire, not create a Lease of its own while a still leads.
    // Each candidate talks through a proxy of its own, so the test can order their requests.
    const [proxyA, proxyB] = [await proxy(), await proxy()];
    const a = candidate('a', proxyA);
    await waitFor('a to lead', () => a.elector.isLeader(), { intervalMs: 25 });

    const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases`;
    const steps: string[] = [];
    let taken: V1Lease | undefined;
    let conflictAt = 0;
    /** When b sent each Lease read after the race (wall clock). */
    const laterReads: number[] = [];
    proxyB.beforeForward(async (method, path) => {
      if (!path.startsWith(leasePath)) return;
      if (steps.length === 3) {
        if (method === 'GET') laterReads.push(Date.now());
        return;
      }
      const step = `${steps.length} ${method}`;
      if (step === '0 GET') {
        // b's first read finds no Lease; a's requests wait meanwhile (well within its renew deadline).
        proxyA.hold();
        taken = await readLease();
        await deleteLease();
      } else if (step === '1 POST') {
        // b's create fails: the Lease is back, held by a, as a's next round would have made it.
        await leases.createNamespacedLease({
          namespace: ns.name,
          body: { metadata: { name: leaseName }, spec: taken?.spec },
        });
        conflictAt = Date.now();
      } else if (step === '2 GET') {
        // ... and it is deleted again before b reads it. a goes on shortly after.
        await deleteLease();
        setTimeout(() => proxyA.release(), 200);
      } else return;
      steps.push(step);
    });
    const b = candidate('b', proxyB);
    const sampler = sampleLeaders([a, b]);
    await waitFor('b to see the Lease created and deleted again', () => steps.length === 3, {
      timeoutMs: 10_000,
      intervalMs: 25,
    });
    // b has decided again after the unseen holder's lease expired by its clock: it has sent a
    // second Lease read since then, so the round of the first one (the one that could have taken
    // over) is over.
    const expiredAt = () => conflictAt + timing.leaseDurationMs;
    await waitFor(
      "b's second Lease read after the unseen holder's lease expired",
      () => laterReads.filter((at) => at >= expiredAt()).length >= 2,
      { timeoutMs: 15_000, intervalMs: 25 },
    );
    const { overlaps, samples } = sampler.stop();

    expect(steps).toEqual(['0 GET', '1 POST', '2 GET']);
    expect(b.started).toBe(0);
    expect(a.stopped).toBe(0);
    expect(a.elector.isLeader()).toBe(true);
    expect(overlaps).toEqual([]);
    // b went through the race: its create conflicted, and it then found no Lease and waited.
    const bLines = logLines.filter((l) => l.identity === 'b').map((l) => l.msg);
    expect(bLines).toContain('lease changed under us; re-reading');
    expect(bLines).toContain('lease is gone but its last holder may still lead; waiting');
    expect(samples).toBeGreaterThan(40);
    expect((await readLease()).spec?.holderIdentity).toBe('a');
  });
});
