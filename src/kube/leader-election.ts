// Leader election on a coordination.k8s.io/v1 Lease.
//
// The guarantee: a leader that cannot renew stops writing before another
// candidate can start. It rests on three rules.
// - A candidate never trusts the holder's clock. It notes when *it* saw the
//   Lease record change (`observedAt`, a new resourceVersion) and treats the
//   lease as expired only `leaseDurationSeconds` after that local observation.
// - The leader measures its own validity from the moment it *sent* its last
//   successful write, which is no later than any candidate can have seen it,
//   and gives up `renewDeadline` (< leaseDuration) after that.
// - Every write carries the resourceVersion it was decided on, so of two
//   candidates acting on the same record at most one succeeds.
// - A write that fails with a conflict proves someone else wrote the Lease
//   just now. Until we read what they wrote, that unseen record binds like any
//   other: if the Lease is gone when we look again, its writer may still lead.
// Local durations use a monotonic clock, so a wall-clock step cannot stretch a
// leader's term; the wall clock appears only in the Lease's timestamps.
import {
  type ConfigurationOptions,
  CoordinationV1Api,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  type RequestContext,
  type ResponseContext,
  type V1Lease,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiStatus, describeApiError, isConflict, isNotFound } from './client.js';
import { type Clock, sleep, systemClock, type Timer } from './clock.js';
import {
  claimSpec,
  decide,
  decideWithoutLease,
  type LeaseDecision,
  leaseDurationSecondsFor,
  leaseRecordOf,
  type Observation,
  observe,
  releaseSpec,
  renewalIsFresh,
  unseenWrite,
} from './lease.js';

export interface LeaderElectionOptions {
  /** Used through `makeApiClient(CoordinationV1Api)`. */
  kubeConfig: KubeConfig;
  namespace: string;
  leaseName: string;
  /** Unique per process (e.g. the pod name); written to the Lease as its holder. */
  identity: string;
  /** How long others wait, after seeing the Lease change, before taking it over. */
  leaseDurationMs: number;
  /** How long the leader keeps leading without a successful renewal; shorter than leaseDurationMs. */
  renewDeadlineMs: number;
  /** Pause between attempts to acquire or renew; shorter than renewDeadlineMs. */
  retryPeriodMs: number;
  log: Logger;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  /** Monotonic milliseconds for local durations; injected by tests. */
  now?: () => number;
  /** Timers and the wall clock of the Lease's timestamps; `now`, when given, wins for durations. */
  clock?: Clock;
}

/**
 * Per-request options that abort a call after `timeoutMs`, so a hung apiserver
 * connection cannot hold up the election loop (or stop()) indefinitely.
 */
function abortAfter(timeoutMs: number): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (context: RequestContext) => {
      context.setSignal(AbortSignal.timeout(timeoutMs));
      return new Observable(Promise.resolve(context));
    },
    post: (context: ResponseContext) => new Observable(Promise.resolve(context)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

/** describeApiError, naming our own request timeout instead of node-fetch's "user aborted". */
function describeFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && err.name === 'AbortError') return `no response within ${timeoutMs} ms`;
  return describeApiError(err);
}

/**
 * describeFailure, plus what to do about the failures a person can fix: a missing namespace
 * (nothing can lead until it exists) and a refused request (RBAC).
 */
function explainFailure(err: unknown, opts: { namespace: string; renewDeadlineMs: number }): string {
  const described = describeFailure(err, opts.renewDeadlineMs);
  const status = apiStatus(err);
  if (status === 404 && /namespaces? "[^"]*" not found/.test(described)) {
    return `${described}; create the namespace (kubectl create namespace ${opts.namespace}) or set --ca-namespace to the namespace alcazar is installed in`;
  }
  if (status === 403)
    return `${described}; the controller's RBAC must allow get/create/update of Leases in ${opts.namespace}`;
  return described;
}

/** A failure that persists is logged again at most this often. */
const FAILURE_LOG_INTERVAL_MS = 60_000;

const jitter = (ms: number, share = 0.2) => Math.round(ms * (1 + share * Math.random()));

/** Attempts per round: a conflict (409) re-reads the Lease once and decides again. */
const PASSES_PER_ATTEMPT = 2;

export class LeaderElector {
  readonly identity: string;
  private readonly api: CoordinationV1Api;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly clock: Clock;
  private readonly leaseDurationSeconds: number;
  private readonly requestOptions: ConfigurationOptions;

  /** What we last read or wrote of the Lease. */
  private observation: Observation | undefined;
  /** Local time at which the attempt that last wrote the Lease for us began. */
  private lastRenewAt: number | undefined;
  /** onStartedLeading was called and onStoppedLeading not yet. */
  private leading = false;
  private lastSeenHolder: string | undefined;

  private loop: Promise<void> | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private deadlineTimer: Timer | undefined;
  private leaderWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  /** Why the last round failed, while rounds keep failing; undefined once one succeeds. */
  private failing: { message: string; since: number; loggedAt: number; repeats: number } | undefined;

  constructor(private readonly opts: LeaderElectionOptions) {
    if (!(opts.retryPeriodMs < opts.renewDeadlineMs && opts.renewDeadlineMs < opts.leaseDurationMs)) {
      throw new Error(
        `leader election needs retryPeriod < renewDeadline < leaseDuration, got ` +
          `${opts.retryPeriodMs} / ${opts.renewDeadlineMs} / ${opts.leaseDurationMs} ms`,
      );
    }
    this.identity = opts.identity;
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
    this.log = opts.log.child({ lease: `${opts.namespace}/${opts.leaseName}`, identity: opts.identity });
    this.clock = opts.clock ?? systemClock;
    this.now = opts.now ?? (() => this.clock.monotonic());
    this.leaseDurationSeconds = leaseDurationSecondsFor(opts.leaseDurationMs);
    this.requestOptions = abortAfter(opts.renewDeadlineMs);
  }

  /** Begins trying to acquire the Lease; once leader, renews every retryPeriod. */
  start(): void {
    if (this.loop || this.stopping) return;
    this.loop = this.run();
  }

  /**
   * True only while we hold the Lease and our last successful renewal is
   * younger than renewDeadline. Computed from the clock on every call, so a
   * stalled event loop cannot leave a stale "yes" behind. Gate every write on it.
   */
  isLeader(): boolean {
    return this.leading && renewalIsFresh(this.lastRenewAt, this.now(), this.opts.renewDeadlineMs);
  }

  /**
   * For /readyz: fails while rounds keep failing (an API error, a missing namespace, a
   * refused request), saying why; a follower that sees another holder is healthy.
   */
  health(): { ok: boolean; message: string } {
    if (this.failing) return { ok: false, message: this.failing.message };
    if (this.isLeader()) return { ok: true, message: 'leader' };
    const holder = this.lastSeenHolder;
    return { ok: true, message: holder ? `follower (leader: ${holder})` : 'follower' };
  }

  /** Resolves when leadership is acquired (at once if held); rejects if stop() comes first. */
  whenLeader(): Promise<void> {
    if (this.isLeader()) return Promise.resolve();
    if (this.stopping) return Promise.reject(new Error('leader election stopped'));
    return new Promise((resolve, reject) => this.leaderWaiters.push({ resolve, reject }));
  }

  /**
   * Stops leading at once (isLeader() turns false and onStoppedLeading runs
   * before anything else), waits for an attempt in flight, then, if the Lease
   * still names us, releases it so a successor takes over without waiting for
   * it to expire.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutDown(true);
    return this.stopped;
  }

  /**
   * For tests: simulates a crash. The loop and timers stop, nothing is
   * released and no callback runs; isLeader() keeps following the clock and
   * so turns false renewDeadline after the last renewal.
   */
  abandon(): Promise<void> {
    this.stopped ??= this.shutDown(false);
    return this.stopped;
  }

  private async shutDown(release: boolean): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.clearDeadlineTimer();
    if (release) this.stepDown('stopping');
    await this.loop;
    const waiters = this.leaderWaiters.splice(0);
    for (const waiter of waiters) waiter.reject(new Error('leader election stopped'));
    if (release) await this.release();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const startedAt = this.now();
      try {
        await this.attempt(startedAt);
        this.recovered();
      } catch (err) {
        this.failed(err);
      }
      this.checkDeadline();
      if (this.stopping) return;
      // The leader renews on a steady beat; candidates spread out their attempts.
      const delay = this.leading
        ? this.opts.retryPeriodMs - (this.now() - startedAt)
        : jitter(this.opts.retryPeriodMs);
      await this.pause(Math.max(0, delay));
    }
  }

  /** One round: read, decide, write. Throws on API errors other than an expected conflict. */
  private async attempt(startedAt: number): Promise<void> {
    for (let pass = 1; pass <= PASSES_PER_ATTEMPT; pass++) {
      const lease = await this.read();
      if (this.stopping) return;
      const now = this.now();
      let decision: LeaseDecision;
      if (lease) {
        const observation = observe(this.observation, lease, now, this.leaseDurationSeconds);
        this.observation = observation;
        this.noteHolder(observation.record.holderIdentity);
        decision = decide(observation.record, observation.observedAt, now, this.identity);
      } else {
        // Keep the last observation: it binds until it expires.
        decision = decideWithoutLease(this.observation, now, this.identity);
        if (decision.kind === 'wait') {
          this.log.debug(
            { holder: decision.holder, waitMs: Math.round(decision.expiresAt - now) },
            'lease is gone but its last holder may still lead; waiting',
          );
        }
      }

      if (decision.kind === 'wait') {
        // Someone else holds (or, for a vanished Lease, last held) a lease that
        // has not expired by our clock: if we thought we led, we no longer do.
        this.stepDown(`lease is held by ${decision.holder}`);
        return;
      }
      try {
        this.renewed(await this.claim(decision, lease), startedAt, decision);
        return;
      } catch (err) {
        // 409: someone else created or changed the Lease since we read it. Re-read and decide again;
        // should the Lease be gone by then, what they wrote still binds (see unseenWrite).
        if (!isConflict(err)) throw err;
        this.observation = unseenWrite(this.now(), this.leaseDurationSeconds);
        this.log.debug({ decision: decision.kind, pass }, 'lease changed under us; re-reading');
      }
    }
  }

  /** Creates the Lease for us, or replaces the one we read (409 if it changed since). */
  private claim(decision: Exclude<LeaseDecision, { kind: 'wait' }>, lease: V1Lease | undefined) {
    const { namespace, leaseName: name } = this.opts;
    const spec = claimSpec(decision, lease?.spec, this.identity, this.leaseDurationSeconds, this.clock.now());
    if (decision.kind === 'create' || !lease) {
      const metadata = { name, namespace };
      return this.api.createNamespacedLease(
        { namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata, spec } },
        this.requestOptions,
      );
    }
    return this.api.replaceNamespacedLease(
      { namespace, name, body: { ...lease, spec } },
      this.requestOptions,
    );
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease(
        { namespace: this.opts.namespace, name: this.opts.leaseName },
        this.requestOptions,
      );
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** A write for us succeeded: we hold the Lease as of `startedAt`. */
  private renewed(written: V1Lease, startedAt: number, decision: LeaseDecision): void {
    this.observation = {
      lease: written,
      record: leaseRecordOf(written, this.leaseDurationSeconds),
      observedAt: this.now(),
    };
    this.noteHolder(this.identity);
    if (this.stopping) return; // an attempt that finished during stop(): release() follows
    this.lastRenewAt = startedAt;
    this.armDeadlineTimer();
    if (this.leading) return;
    if (!renewalIsFresh(this.lastRenewAt, this.now(), this.opts.renewDeadlineMs)) return; // came back too late
    this.leading = true;
    this.log.info(
      {
        decision: decision.kind,
        previousHolder: decision.kind === 'take-over' ? decision.previousHolder || undefined : undefined,
      },
      'became leader',
    );
    for (const waiter of this.leaderWaiters.splice(0)) waiter.resolve();
    this.callback('onStartedLeading', this.opts.onStartedLeading);
  }

  /** Steps down once the last successful renewal is older than renewDeadline. */
  private checkDeadline(): void {
    if (this.leading && !renewalIsFresh(this.lastRenewAt, this.now(), this.opts.renewDeadlineMs)) {
      this.stepDown(`no successful renewal within ${this.opts.renewDeadlineMs} ms`);
    }
  }

  private stepDown(reason: string): void {
    this.clearDeadlineTimer();
    this.lastRenewAt = undefined;
    if (!this.leading) return;
    this.leading = false;
    this.log.info({ reason }, 'stopped leading');
    this.callback('onStoppedLeading', this.opts.onStoppedLeading);
  }

  /**
   * Fires at the renew deadline, independent of the loop, which may be stuck
   * waiting on a request.
   */
  private armDeadlineTimer(): void {
    this.clearDeadlineTimer();
    if (this.lastRenewAt === undefined) return;
    const wait = this.lastRenewAt + this.opts.renewDeadlineMs - this.now();
    this.deadlineTimer = this.clock.setTimer(
      () => {
        this.deadlineTimer = undefined;
        // libuv's timers count whole milliseconds and often fire up to 1 ms early against
        // performance.now(): a renewal still fresh then waits out the rest, rather than leaving the
        // step-down to the loop, which may be stuck on a request that never returns.
        if (this.leading && renewalIsFresh(this.lastRenewAt, this.now(), this.opts.renewDeadlineMs))
          this.armDeadlineTimer();
        else this.checkDeadline();
      },
      Math.max(0, wait),
    );
  }

  private clearDeadlineTimer(): void {
    this.deadlineTimer?.cancel();
    this.deadlineTimer = undefined;
  }

  private async release(): Promise<void> {
    const observed = this.observation;
    if (observed?.record.holderIdentity !== this.identity) return;
    const { namespace, leaseName: name } = this.opts;
    try {
      await this.api.replaceNamespacedLease(
        {
          namespace,
          name,
          body: { ...observed.lease, spec: releaseSpec(observed.lease.spec, this.clock.now()) },
        },
        this.requestOptions,
      );
      this.observation = undefined;
      this.log.info('released the lease');
    } catch (err) {
      // 409/404: the Lease moved on without us; nothing of ours to release.
      if (isConflict(err) || isNotFound(err)) {
        this.log.debug(
          { err: describeFailure(err, this.opts.renewDeadlineMs) },
          'lease changed before release; left as is',
        );
        return;
      }
      this.log.warn(
        { err: describeFailure(err, this.opts.renewDeadlineMs) },
        'releasing the lease failed; a successor waits for it to expire',
      );
    }
  }

  /**
   * A failed round: logged when the reason changes, and then once a minute with a count, so an
   * endless failure is visible without a line every retry period.
   */
  private failed(err: unknown): void {
    const verb = this.leading ? 'renew' : 'acquire';
    const { namespace, leaseName } = this.opts;
    const message = `cannot ${verb} Lease ${namespace}/${leaseName}: ${explainFailure(err, this.opts)}`;
    const now = this.now();
    const same = this.failing?.message === message;
    if (same && this.failing && now - this.failing.loggedAt < FAILURE_LOG_INTERVAL_MS) {
      this.failing.repeats += 1;
      return;
    }
    const repeats = same ? this.failing?.repeats : undefined;
    this.failing = { message, since: same ? (this.failing?.since ?? now) : now, loggedAt: now, repeats: 0 };
    this.log.warn({ leading: this.leading, ...(repeats ? { failedAgain: repeats } : {}) }, message);
  }

  private recovered(): void {
    if (!this.failing) return;
    this.log.info(
      { failedForMs: Math.round(this.now() - this.failing.since) },
      'the Lease is reachable again',
    );
    this.failing = undefined;
  }

  private noteHolder(holder: string): void {
    if (holder === this.lastSeenHolder) return;
    this.lastSeenHolder = holder;
    if (holder !== this.identity) this.log.info({ holder: holder || null }, 'lease holder changed');
  }

  private callback(name: string, fn: (() => void) | undefined): void {
    try {
      fn?.();
    } catch (err) {
      this.log.error({ err, callback: name }, 'leader election callback failed');
    }
  }

  private pause(ms: number): Promise<void> {
    return sleep(this.clock, ms, (end) => {
      this.wake = end;
    });
  }
}
