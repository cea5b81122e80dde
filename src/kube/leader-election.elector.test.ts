// The LeaderElector's loop against the in-memory API server, with time moved by the test:
// acquire, renew, step down when renewals fail past the deadline, take over a Lease that expired
// by our own observation, release on stop. No wall-clock waits.
import type { KubeConfig, V1Lease } from '@kubernetes/client-node';
import pino from 'pino';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeApiServer } from './fake-api.js';
import { FakeClock } from './fake-clock.js';
import { type LeaderElectionOptions, LeaderElector } from './leader-election.js';
import type { HttpMethod } from './raw.js';

const timing = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/ns/leases';
const LEASE = `${LEASES}/l`;

/**
 * The Lease calls LeaderElector makes through CoordinationV1Api, answered by the in-memory API
 * server; bodies go through JSON both ways, as over the wire. While `hang` is set, requests get
 * no answer until `release()`.
 */
function leaseClient(api: FakeApiServer, transport: Transport) {
  const send = async <T>(method: HttpMethod, path: string, body?: unknown): Promise<T> => {
    if (transport.hang) await new Promise<void>((answer) => transport.waiting.push(answer));
    const sent = body === undefined ? undefined : JSON.parse(JSON.stringify(body));
    return JSON.parse(JSON.stringify(await api.request<T>(method, path, sent)));
  };
  return {
    readNamespacedLease: () => send<V1Lease>('GET', LEASE),
    createNamespacedLease: ({ body }: { body: V1Lease }) => send<V1Lease>('POST', LEASES, body),
    replaceNamespacedLease: ({ body }: { body: V1Lease }) => send<V1Lease>('PUT', LEASE, body),
  };
}

interface Transport {
  hang: boolean;
  waiting: Array<() => void>;
}

/** Timers longer than 1 ms fire 1 ms before they are due, as Node's often do against performance.now(). */
class EarlyTimers extends FakeClock {
  override setTimer(fn: () => void, ms: number) {
    return super.setTimer(fn, ms > 1 ? ms - 1 : ms);
  }
}

let api: FakeApiServer;
let clock: FakeClock;
let transport: Transport;

beforeEach(() => {
  api = new FakeApiServer();
  clock = new FakeClock();
  transport = { hang: false, waiting: [] };
});

function elector(callbacks: Partial<LeaderElectionOptions> = {}): LeaderElector {
  const client = leaseClient(api, transport);
  return new LeaderElector({
    kubeConfig: { makeApiClient: () => client } as unknown as KubeConfig,
    namespace: 'ns',
    leaseName: 'l',
    identity: 'me',
    ...timing,
    log: pino({ level: 'silent' }),
    clock,
    ...callbacks,
  });
}

const spec = () => api.get(LEASE)?.spec as V1Lease['spec'];
const wallClock = (t: unknown) => Date.parse(String(t));
/** Another candidate writes the Lease (a create, or a replace of what is there). */
const holdAs = (holderIdentity: string) =>
  api.seed(LEASE, { metadata: { name: 'l' }, spec: { holderIdentity, leaseDurationSeconds: 3 } });

describe('LeaderElector (in-memory API server, fake clock)', () => {
  it('acquires: creates the Lease naming itself, leads, and resolves whenLeader', async () => {
    const started = vi.fn();
    const e = elector({ onStartedLeading: started });
    const leader = e.whenLeader();
    e.start();
    await clock.advance(0);
    await leader;
    expect(e.isLeader()).toBe(true);
    expect(started).toHaveBeenCalledTimes(1);
    expect(spec()).toMatchObject({ holderIdentity: 'me', leaseDurationSeconds: 3, leaseTransitions: 0 });
    expect(wallClock(spec()?.acquireTime)).toBe(clock.now());
    expect(api.writes.map((w) => w.method)).toEqual(['POST']);
    expect(e.health()).toEqual({ ok: true, message: 'leader' });
    await e.stop();
  });

  it('renews every retryPeriod, moving renewTime and keeping acquireTime and transitions', async () => {
    const e = elector();
    e.start();
    await clock.advance(0);
    const acquiredAt = clock.now();
    await clock.advance(timing.retryPeriodMs * 4);
    expect(api.writes.map((w) => w.method)).toEqual(['POST', 'PUT', 'PUT', 'PUT', 'PUT']);
    expect(wallClock(spec()?.renewTime)).toBe(acquiredAt + timing.retryPeriodMs * 4);
    expect(wallClock(spec()?.acquireTime)).toBe(acquiredAt);
    expect(spec()?.leaseTransitions).toBe(0);
    // Well past the renew deadline and the lease duration: renewals keep it leading.
    expect(e.isLeader()).toBe(true);
    await e.stop();
  });

  it('loses leadership renewDeadline after the last successful renewal when renewals fail', async () => {
    const stopped = vi.fn();
    const e = elector({ onStoppedLeading: stopped });
    e.start();
    await clock.advance(0);
    const lastRenewal = clock.now();
    const heal = api.outage(LEASES, 500, 'etcdserver: request timed out');
    await clock.advance(timing.renewDeadlineMs - 1);
    expect(e.isLeader()).toBe(true);
    expect(stopped).not.toHaveBeenCalled();
    await clock.advance(1);
    expect(clock.now() - lastRenewal).toBe(timing.renewDeadlineMs);
    expect(e.isLeader()).toBe(false);
    expect(stopped).toHaveBeenCalledTimes(1);
    expect(e.health()).toMatchObject({
      ok: false,
      message: expect.stringMatching(/Lease ns\/l: .*timed out/),
    });
    // The Lease still names it, so once the API answers again it renews and leads again.
    heal();
    await clock.advance(timing.retryPeriodMs * 2);
    expect(e.isLeader()).toBe(true);
    await e.abandon();
  });

  it('answers isLeader() from the clock: after a stall longer than renewDeadline it is false at once', async () => {
    let stalledMs = 0;
    const e = elector({ now: () => clock.monotonic() + stalledMs });
    e.start();
    await clock.advance(0);
    expect(e.isLeader()).toBe(true);
    // Time jumps without any timer running, as when the event loop is blocked.
    stalledMs = timing.renewDeadlineMs;
    expect(e.isLeader()).toBe(false);
    await e.abandon();
  });

  it('steps down on time even while a renewal request hangs', async () => {
    const stopped = vi.fn();
    const e = elector({ onStoppedLeading: stopped });
    e.start();
    await clock.advance(0);
    transport.hang = true; // the next renewal never returns
    await clock.advance(timing.renewDeadlineMs - 1);
    expect(e.isLeader()).toBe(true);
    await clock.advance(1);
    expect(e.isLeader()).toBe(false);
    expect(stopped).toHaveBeenCalledTimes(1);
    transport.hang = false;
    for (const answer of transport.waiting.splice(0)) answer();
    await e.abandon();
  });

  it('steps down on time with timers that fire early, as libuv rounds them to whole milliseconds', async () => {
    clock = new EarlyTimers();
    const stopped = vi.fn();
    const e = elector({ onStoppedLeading: stopped });
    e.start();
    await clock.advance(0);
    transport.hang = true; // the next renewal never returns: only the deadline timer can step down
    await clock.advance(timing.renewDeadlineMs + 5);
    expect(e.isLeader()).toBe(false);
    expect(stopped).toHaveBeenCalledTimes(1);
    transport.hang = false;
    for (const answer of transport.waiting.splice(0)) answer();
    await e.abandon();
  });

  it('steps down at once when it reads another holder in the Lease', async () => {
    const stopped = vi.fn();
    const e = elector({ onStoppedLeading: stopped });
    e.start();
    await clock.advance(0);
    holdAs('intruder');
    await clock.advance(timing.retryPeriodMs);
    expect(e.isLeader()).toBe(false);
    expect(stopped).toHaveBeenCalledTimes(1);
    expect(e.health()).toEqual({ ok: true, message: 'follower (leader: intruder)' });
    await e.abandon();
  });

  it("takes over another holder's Lease only leaseDuration after it saw that record, counting a transition", async () => {
    holdAs('other');
    const e = elector();
    e.start();
    await clock.advance(0);
    const firstSeen = clock.now();
    expect(e.isLeader()).toBe(false);
    await clock.advance(timing.leaseDurationMs - 1);
    expect(e.isLeader()).toBe(false);
    expect(spec()?.holderIdentity).toBe('other');
    expect(api.writes).toEqual([]);
    // Candidates retry every retryPeriod plus up to 20% jitter.
    await clock.advance(timing.retryPeriodMs * 1.2 + 1);
    expect(e.isLeader()).toBe(true);
    expect(spec()).toMatchObject({ holderIdentity: 'me', leaseTransitions: 1 });
    expect(wallClock(spec()?.acquireTime) - firstSeen).toBeGreaterThanOrEqual(timing.leaseDurationMs);
    await e.stop();
  });

  it('waits again from the start when the holder renews, however old the first record was', async () => {
    holdAs('other');
    const e = elector();
    e.start();
    await clock.advance(0);
    await clock.advance(timing.leaseDurationMs - 500);
    holdAs('other'); // a renewal: a new resourceVersion
    await clock.advance(timing.leaseDurationMs - 500);
    expect(e.isLeader()).toBe(false);
    expect(spec()?.holderIdentity).toBe('other');
    await clock.advance(1_000 + timing.retryPeriodMs * 2.4);
    expect(e.isLeader()).toBe(true);
    await e.stop();
  });

  it('does not re-create a Lease that vanished while another candidate held it until that lease expires', async () => {
    holdAs('other');
    const e = elector();
    e.start();
    await clock.advance(0);
    const firstSeen = clock.now();
    await api.request('DELETE', LEASE);
    await clock.advance(timing.leaseDurationMs - 1);
    expect(api.get(LEASE)).toBeUndefined();
    await clock.advance(timing.retryPeriodMs * 1.2 + 1);
    expect(e.isLeader()).toBe(true);
    expect(wallClock(spec()?.acquireTime) - firstSeen).toBeGreaterThanOrEqual(timing.leaseDurationMs);
    await e.stop();
  });

  it('releases on stop: stops leading first, then clears the holder so a successor need not wait', async () => {
    const order: string[] = [];
    const e = elector({ onStoppedLeading: () => order.push(`stopped (holder ${spec()?.holderIdentity})`) });
    e.start();
    await clock.advance(timing.retryPeriodMs);
    await e.stop();
    order.push(`after stop (holder ${spec()?.holderIdentity ?? 'none'})`);
    expect(order).toEqual(['stopped (holder me)', 'after stop (holder none)']);
    expect(spec()?.leaseDurationSeconds).toBe(1);
    expect(e.isLeader()).toBe(false);

    const successor = elector({ identity: 'next' });
    successor.start();
    await clock.advance(0);
    expect(successor.isLeader()).toBe(true);
    expect(spec()).toMatchObject({ holderIdentity: 'next', leaseTransitions: 1 });
    await successor.stop();
  });

  it('leaves a Lease alone on stop that it does not hold, and rejects whenLeader()', async () => {
    holdAs('other');
    const e = elector();
    e.start();
    const leader = e.whenLeader();
    await clock.advance(0);
    await e.stop();
    await expect(leader).rejects.toThrow('leader election stopped');
    expect(spec()?.holderIdentity).toBe('other');
    expect(api.writes).toEqual([]);
  });

  it('stops its loop on stop: no timers left, no writes afterwards', async () => {
    const e = elector();
    e.start();
    await clock.advance(0);
    await e.stop();
    const writes = api.writes.length;
    await clock.advance(timing.leaseDurationMs * 2);
    expect(api.writes.length).toBe(writes);
    expect(clock.timers).toBe(0);
  });

  it('refuses timings that break the guarantee', () => {
    expect(() => elector({ leaseDurationMs: 2_000, renewDeadlineMs: 2_000 })).toThrow(
      /retryPeriod < renewDeadline < leaseDuration/,
    );
  });
});
