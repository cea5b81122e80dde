// Leader election against the real apiserver: at most one leader at any
// sampled moment, a prompt hand-over on stop(), a prompt step-down when the
// Lease is taken from under the leader, and a take-over only once a crashed
// leader's lease has expired.
import { CoordinationV1Api, CoreV1Api, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeaderElector } from '../../src/kube/leader-election.js';
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
const log = pino(
  { level: 'debug' },
  { write: (line: string) => void logLines.push(JSON.parse(line) as LogLine) },
);

beforeEach(async () => {
  ns = await createTestNamespace(core, 'leader');
  candidates = [];
  logLines = [];
});
afterEach(async () => {
  await Promise.all(candidates.map((c) => c.elector.stop()));
  await ns?.remove();
});

function candidate(identity: string): Candidate {
  const calls = { started: 0, stopped: 0 };
  const elector = new LeaderElector({
    kubeConfig: adminKubeConfig(),
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
});
