import type { V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  claimSpec,
  decide,
  decideWithoutLease,
  type LeaseRecord,
  leaseDurationSecondsFor,
  leaseRecordOf,
  microTime,
  observe,
  parseMicroTime,
  releaseSpec,
  renewalIsFresh,
  UNSEEN_HOLDER,
  unseenWrite,
} from './lease.js';

const record = (over: Partial<LeaseRecord> = {}): LeaseRecord => ({
  holderIdentity: 'other',
  leaseDurationSeconds: 15,
  leaseTransitions: 0,
  resourceVersion: '1',
  ...over,
});

const lease = (resourceVersion: string, spec: V1Lease['spec'] = {}): V1Lease => ({
  metadata: { name: 'l', namespace: 'ns', resourceVersion },
  spec,
});

describe('decide', () => {
  it('creates a Lease that does not exist', () => {
    expect(decide(undefined, 0, 0, 'me')).toEqual({ kind: 'create' });
  });

  it('renews a Lease that names us, even one that looks expired', () => {
    expect(decide(record({ holderIdentity: 'me' }), 0, 60_000, 'me')).toEqual({ kind: 'renew' });
  });

  it('takes over a released Lease at once', () => {
    expect(decide(record({ holderIdentity: '' }), 1_000, 1_000, 'me')).toEqual({
      kind: 'take-over',
      previousHolder: '',
    });
  });

  it('waits for another holder until leaseDuration after we saw its record change', () => {
    expect(decide(record(), 10_000, 24_999, 'me')).toEqual({
      kind: 'wait',
      holder: 'other',
      expiresAt: 25_000,
    });
    expect(decide(record(), 10_000, 25_000, 'me')).toEqual({ kind: 'take-over', previousHolder: 'other' });
  });

  it("ignores the holder's own timestamps: an old renewTime seen just now still counts as fresh", () => {
    const stale = record({ renewTime: Date.parse('2000-01-01T00:00:00Z') });
    expect(decide(stale, 10_000, 10_001, 'me').kind).toBe('wait');
    const future = record({ renewTime: Date.parse('2999-01-01T00:00:00Z') });
    expect(decide(future, 0, 15_000, 'me').kind).toBe('take-over');
  });

  it("uses the holder's declared lease duration", () => {
    expect(decide(record({ leaseDurationSeconds: 1 }), 0, 1_000, 'me').kind).toBe('take-over');
  });
});

describe('decideWithoutLease', () => {
  const seen = (holderIdentity: string, observedAt: number) => ({
    lease: lease('1'),
    record: record({ holderIdentity, leaseDurationSeconds: 3 }),
    observedAt,
  });

  it('creates a Lease it never saw', () => {
    expect(decideWithoutLease(undefined, 0, 'me')).toEqual({ kind: 'create' });
  });

  it("treats a vanished Lease as its last holder's until that record expires", () => {
    expect(decideWithoutLease(seen('other', 1_000), 3_999, 'me')).toEqual({
      kind: 'wait',
      holder: 'other',
      expiresAt: 4_000,
    });
    expect(decideWithoutLease(seen('other', 1_000), 4_000, 'me')).toEqual({ kind: 'create' });
  });

  it('re-creates at once a vanished Lease that was ours or released', () => {
    expect(decideWithoutLease(seen('me', 1_000), 1_001, 'me')).toEqual({ kind: 'create' });
    expect(decideWithoutLease(seen('', 1_000), 1_001, 'me')).toEqual({ kind: 'create' });
  });
});

describe('unseenWrite', () => {
  it('binds a Lease that vanished after a conflict for a full lease duration', () => {
    // Our create got 409 at t=1000, and the Lease was gone when we read it again.
    const afterConflict = unseenWrite(1_000, 3);
    expect(decideWithoutLease(afterConflict, 1_001, 'me')).toEqual({
      kind: 'wait',
      holder: UNSEEN_HOLDER,
      expiresAt: 4_000,
    });
    expect(decideWithoutLease(afterConflict, 4_000, 'me')).toEqual({ kind: 'create' });
  });

  it('binds even when what we saw before the conflict had already expired', () => {
    // Taking over an expired record lost to another candidate; then the Lease vanished.
    const expired = observe(undefined, lease('5', { holderIdentity: 'other' }), 0, 3);
    expect(decideWithoutLease(expired, 10_000, 'me').kind).toBe('create');
    expect(decideWithoutLease(unseenWrite(10_000, 3), 10_001, 'me').kind).toBe('wait');
  });

  it('gives way to the record the next read finds', () => {
    const next = observe(unseenWrite(1_000, 3), lease('6', { holderIdentity: 'other' }), 1_200, 3);
    expect(next.record.holderIdentity).toBe('other');
    expect(next.observedAt).toBe(1_200);
  });
});

describe('observe', () => {
  it('stamps a first observation with now', () => {
    expect(observe(undefined, lease('5'), 100, 15).observedAt).toBe(100);
  });

  it('keeps the first-seen time while the record (resourceVersion) is unchanged', () => {
    const first = observe(undefined, lease('5'), 100, 15);
    expect(observe(first, lease('5'), 900, 15).observedAt).toBe(100);
  });

  it('restarts the clock when the record changes', () => {
    const first = observe(undefined, lease('5'), 100, 15);
    expect(observe(first, lease('6'), 900, 15).observedAt).toBe(900);
  });
});

describe('leaseRecordOf', () => {
  it('reads the MicroTime strings client-node hands back, and defaults what is missing', () => {
    const r = leaseRecordOf(
      lease('7', { renewTime: '2026-11-23T02:00:00.123456Z' as unknown as V1MicroTime }),
      15,
    );
    expect(r).toEqual({
      holderIdentity: '',
      leaseDurationSeconds: 15,
      leaseTransitions: 0,
      acquireTime: undefined,
      renewTime: Date.parse('2026-11-23T02:00:00.123Z'),
      resourceVersion: '7',
    });
  });

  it('parses Date and string MicroTimes alike and rejects garbage', () => {
    expect(parseMicroTime(new Date(5))).toBe(5);
    expect(parseMicroTime('1970-01-01T00:00:00.005000Z')).toBe(5);
    expect(parseMicroTime('soon')).toBeUndefined();
    expect(parseMicroTime(undefined)).toBeUndefined();
  });
});

describe('lease specs', () => {
  const t0 = Date.parse('2026-11-23T02:00:00.000Z');
  const t1 = t0 + 5_000;

  it('serializes MicroTime with six fractional digits, as the apiserver requires', () => {
    expect(JSON.stringify({ t: microTime(t0 + 123) })).toBe('{"t":"2026-11-23T02:00:00.123000Z"}');
  });

  it('creates with transitions 0 and acquireTime = renewTime', () => {
    const spec = claimSpec({ kind: 'create' }, undefined, 'me', 15, t0);
    expect(spec).toMatchObject({ holderIdentity: 'me', leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect(spec.acquireTime?.getTime()).toBe(t0);
    expect(spec.renewTime?.getTime()).toBe(t0);
  });

  it('renews keeping acquireTime and transitions', () => {
    const previous = { holderIdentity: 'me', acquireTime: microTime(t0), leaseTransitions: 3 };
    const spec = claimSpec({ kind: 'renew' }, previous, 'me', 15, t1);
    expect(spec.acquireTime?.getTime()).toBe(t0);
    expect(spec.renewTime?.getTime()).toBe(t1);
    expect(spec.leaseTransitions).toBe(3);
  });

  it('takes over counting a transition, with a new acquireTime, keeping fields it does not own', () => {
    const previous = {
      holderIdentity: 'other',
      acquireTime: microTime(t0),
      leaseTransitions: 3,
      strategy: 'x',
    };
    const spec = claimSpec({ kind: 'take-over', previousHolder: 'other' }, previous, 'me', 15, t1);
    expect(spec).toMatchObject({ holderIdentity: 'me', leaseTransitions: 4, strategy: 'x' });
    expect(spec.acquireTime?.getTime()).toBe(t1);
  });

  it('releases by clearing the holder and shortening the duration to one second', () => {
    const spec = releaseSpec({ holderIdentity: 'me', leaseDurationSeconds: 15, leaseTransitions: 2 }, t1);
    expect(spec.holderIdentity).toBeUndefined();
    expect(spec).toMatchObject({ leaseDurationSeconds: 1, leaseTransitions: 2 });
    expect(spec.renewTime?.getTime()).toBe(t1);
  });

  it('rounds the lease duration up to whole seconds, at least one', () => {
    expect(leaseDurationSecondsFor(15_000)).toBe(15);
    expect(leaseDurationSecondsFor(2_500)).toBe(3);
    expect(leaseDurationSecondsFor(10)).toBe(1);
  });
});

describe('renewalIsFresh', () => {
  it.each([
    [undefined, 0, false],
    [1_000, 1_000, true],
    [1_000, 2_999, true],
    [1_000, 3_000, false],
    [1_000, 999, false],
  ])('last renewal %s, now %s → %s (deadline 2 s)', (last, now, fresh) => {
    expect(renewalIsFresh(last, now, 2_000)).toBe(fresh);
  });
});
