// The Lease's record and the pure decisions of leader election on it: who holds it, when it
// counts as expired by our own observation, and what a claim, renewal or release writes.
// LeaderElector (leader-election.ts) carries them out; the rules are in its header.
import { type V1Lease, type V1LeaseSpec, V1MicroTime } from '@kubernetes/client-node';

/** What the decisions need from a Lease; times in wall-clock milliseconds. */
export interface LeaseRecord {
  /** '' when nobody holds the Lease (never held, or released). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  leaseTransitions: number;
  acquireTime?: number;
  renewTime?: number;
  resourceVersion: string;
}

/** A Lease as last read or written, and when (local clock) its current record was first seen. */
export interface Observation {
  lease: V1Lease;
  record: LeaseRecord;
  observedAt: number;
}

export type LeaseDecision =
  | { kind: 'create' }
  | { kind: 'renew' }
  | { kind: 'take-over'; previousHolder: string }
  | { kind: 'wait'; holder: string; expiresAt: number };

/** Seconds written to the Lease: whole seconds, at least one. */
export function leaseDurationSecondsFor(leaseDurationMs: number): number {
  return Math.max(1, Math.ceil(leaseDurationMs / 1000));
}

/**
 * What to do about the Lease, given what we saw of it and when we first saw
 * that record (local clock). Remote timestamps are deliberately not used.
 */
export function decide(
  observed: LeaseRecord | undefined,
  observedAt: number,
  now: number,
  me: string,
): LeaseDecision {
  if (!observed) return { kind: 'create' };
  const holder = observed.holderIdentity;
  if (holder === me) return { kind: 'renew' };
  if (holder === '') return { kind: 'take-over', previousHolder: '' };
  const expiresAt = observedAt + observed.leaseDurationSeconds * 1000;
  if (now < expiresAt) return { kind: 'wait', holder, expiresAt };
  return { kind: 'take-over', previousHolder: holder };
}

/**
 * The decision when the Lease does not exist. A Lease that vanished (deleted
 * by hand, or with its namespace re-created) still binds its last holder until
 * that record expires by our clock: deleting the Lease must not hand a second
 * candidate leadership while the first may still be writing.
 */
export function decideWithoutLease(
  previous: Observation | undefined,
  now: number,
  me: string,
): LeaseDecision {
  if (!previous) return { kind: 'create' };
  const decision = decide(previous.record, previous.observedAt, now, me);
  return decision.kind === 'wait' ? decision : { kind: 'create' };
}

/** Stands for the holder of a Lease record we know was written but have not read. */
export const UNSEEN_HOLDER = '(a candidate whose write we have not read)';

/**
 * What we know after a write failed with a conflict at `now`: someone wrote
 * the Lease, and their record has to be assumed to hold for a full lease
 * duration from now. A later read replaces it (its resourceVersion differs).
 */
export function unseenWrite(now: number, leaseDurationSeconds: number): Observation {
  return {
    lease: {},
    record: {
      holderIdentity: UNSEEN_HOLDER,
      leaseDurationSeconds,
      leaseTransitions: 0,
      resourceVersion: '',
    },
    observedAt: now,
  };
}

/**
 * Folds a fresh read into the previous observation: the same record
 * (resourceVersion) keeps the time it was first seen, a changed one restarts it.
 */
export function observe(
  previous: Observation | undefined,
  lease: V1Lease,
  now: number,
  defaultDurationSeconds: number,
): Observation {
  const record = leaseRecordOf(lease, defaultDurationSeconds);
  if (previous && previous.record.resourceVersion === record.resourceVersion) {
    return { lease, record, observedAt: previous.observedAt };
  }
  return { lease, record, observedAt: now };
}

export function leaseRecordOf(lease: V1Lease, defaultDurationSeconds: number): LeaseRecord {
  const spec = lease.spec ?? {};
  return {
    holderIdentity: spec.holderIdentity ?? '',
    leaseDurationSeconds:
      spec.leaseDurationSeconds && spec.leaseDurationSeconds > 0
        ? spec.leaseDurationSeconds
        : defaultDurationSeconds,
    leaseTransitions: spec.leaseTransitions ?? 0,
    acquireTime: parseMicroTime(spec.acquireTime),
    renewTime: parseMicroTime(spec.renewTime),
    resourceVersion: lease.metadata?.resourceVersion ?? '',
  };
}

/**
 * client-node types MicroTime fields as Date but hands back the server's
 * string (it has no deserializer for V1MicroTime); accept either.
 */
export function parseMicroTime(value: Date | string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * A MicroTime for the wire. The apiserver parses `spec.renewTime` with exactly
 * six fractional digits and rejects a plain Date's `.123Z`; V1MicroTime
 * serializes as `.123000Z`.
 */
export function microTime(wallClockMs: number): V1MicroTime {
  return new V1MicroTime(wallClockMs);
}

/** The spec that claims (creates, renews or takes over) the Lease for `me`. */
export function claimSpec(
  decision: Exclude<LeaseDecision, { kind: 'wait' }>,
  previous: V1LeaseSpec | undefined,
  me: string,
  leaseDurationSeconds: number,
  wallClockMs: number,
): V1LeaseSpec {
  const now = microTime(wallClockMs);
  const base = { ...previous, holderIdentity: me, leaseDurationSeconds, renewTime: now };
  switch (decision.kind) {
    case 'create':
      return { ...base, acquireTime: now, leaseTransitions: 0 };
    case 'renew':
      return {
        ...base,
        acquireTime: previous?.acquireTime ?? now,
        leaseTransitions: previous?.leaseTransitions ?? 0,
      };
    case 'take-over':
      return { ...base, acquireTime: now, leaseTransitions: (previous?.leaseTransitions ?? 0) + 1 };
  }
}

/** The spec that hands the Lease back: no holder, so a successor may take it at once. */
export function releaseSpec(previous: V1LeaseSpec | undefined, wallClockMs: number): V1LeaseSpec {
  const now = microTime(wallClockMs);
  const { holderIdentity: _released, ...rest } = previous ?? {};
  return { ...rest, leaseDurationSeconds: 1, acquireTime: now, renewTime: now };
}

/** The write gate: leading, and the last successful renewal is younger than the deadline. */
export function renewalIsFresh(
  lastRenewAt: number | undefined,
  now: number,
  renewDeadlineMs: number,
): boolean {
  return lastRenewAt !== undefined && now >= lastRenewAt && now - lastRenewAt < renewDeadlineMs;
}
