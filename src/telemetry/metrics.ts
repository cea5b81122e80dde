// Prometheus metrics for one controller process, on a registry of its own
// (never prom-client's global one, so tests and embedders get clean state).
// Two families:
// - Citadel's names, exactly as Citadel exposed them, so existing dashboards
//   and alerts keep working. They are counters whose names end in `_count`;
//   in the Prometheus text format prom-client v15 exposes a counter under the
//   name it is given (it appends `_total` only in OpenMetrics output, which
//   this registry does not use).
// - alcazar's own, `alcazar_` prefixed, following Prometheus conventions.
// Gauges that describe the caches (queue depth, certificate expiry, managed
// ServiceAccounts) are read from probes at scrape time, so they are never stale.

import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { CsrServerMetrics } from './csr-metrics.js';

export interface RootCertificateMetric {
  fingerprintSha256: string;
  notAfter: Date;
  /** The root the signer chains to; the others are trusted during a rotation. */
  active: boolean;
}

export interface QueueSnapshot {
  /** Keys waiting for a worker. */
  depth: number;
  /** Keys scheduled for later (renewals, retries). */
  scheduled: number;
}

/** Why an informer's watch was restarted (the informer's `WatchEnd`, minus `stopped`). */
export type WatchRestartReason = 'closed' | 'expired' | 'stalled' | 'resync' | 'error';

export const EXPIRY_BUCKETS = ['expired', '1h', '24h', '7d', '30d', 'later'] as const;
export type ExpiryBucket = (typeof EXPIRY_BUCKETS)[number];

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Upper bounds (ms from now) of the time-limited buckets, in order. */
const EXPIRY_BOUNDS: ReadonlyArray<readonly [ExpiryBucket, number]> = [
  ['1h', HOUR],
  ['24h', DAY],
  ['7d', 7 * DAY],
  ['30d', 30 * DAY],
];

/** Reconcile latencies run from sub-millisecond cache hits to multi-second API round trips and RSA keygen. */
const RECONCILE_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** prom-client default metrics whose names break Prometheus conventions (gauges ending in _total). */
/** How often nodejs_eventloop_lag_* samples the event loop (see the Metrics constructor). */
export const EVENT_LOOP_MONITORING_PRECISION_MS = 100;

const UNCONVENTIONAL_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

/** Label values are codes, never messages: anything else is folded into `other` to bound cardinality. */
const LABEL_VALUE = /^[A-Za-z0-9_.:-]{1,64}$/;
export const boundedLabel = (value: string): string => (LABEL_VALUE.test(value) ? value : 'other');

/**
 * Sorts notAfter times (ms) into exclusive buckets: each certificate counts in
 * exactly one. `expired`: notAfter <= now; `1h`: within the next hour; `24h`:
 * after 1h and within 24h; `7d`, `30d` likewise; `later`: beyond 30 days.
 */
export function expiryBuckets(notAfters: Iterable<number>, now: number): Record<ExpiryBucket, number> {
  const counts = Object.fromEntries(EXPIRY_BUCKETS.map((b) => [b, 0])) as Record<ExpiryBucket, number>;
  for (const notAfter of notAfters) counts[expiryBucketOf(notAfter - now)]++;
  return counts;
}

function expiryBucketOf(remainingMs: number): ExpiryBucket {
  if (remainingMs <= 0) return 'expired';
  for (const [bucket, bound] of EXPIRY_BOUNDS) if (remainingMs <= bound) return bucket;
  return 'later';
}

/**
 * A short, bounded reason for a failed reconcile: `http_<status>` for API
 * errors, a Node system error code (ECONNRESET), an Error subclass name
 * (CaLoadError), or `Error`.
 */
export function errorReason(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const { code, name } = err as { code?: unknown; name?: unknown };
    if (typeof code === 'number' && code >= 100 && code <= 599) return `http_${code}`;
    if (typeof code === 'string' && /^E[A-Z0-9_]{1,30}$/.test(code)) return code;
    if (typeof name === 'string' && name !== 'Error') return boundedLabel(name);
  }
  return 'Error';
}

export interface MetricsOptions {
  /** Registers process CPU, memory, GC and event-loop-lag metrics too (default true). */
  defaultMetrics?: boolean;
  /** Where a probe that throws during a scrape is reported; the scrape still succeeds. */
  log?: Logger;
  /** Injected clock (ms), for the expiry buckets. */
  now?: () => number;
}

export class Metrics {
  readonly registry = new Registry();
  /** The CSR API's metrics (src/csr/), on the same registry. */
  readonly csr = new CsrServerMetrics(this.registry);
  private readonly now: () => number;
  private readonly log: Logger | undefined;
  private queueProbe: (() => QueueSnapshot) | undefined;
  private expiryProbe: (() => Iterable<number>) | undefined;
  private managedServiceAccountsProbe: (() => number) | undefined;

  // Citadel's names.
  private readonly citadelCreated: Counter;
  private readonly citadelSaDeleted: Counter;
  private readonly citadelSecretDeleted: Counter;
  private readonly citadelCsrError: Counter;
  private readonly citadelSignError: Counter<'error'>;
  private readonly citadelRootExpiry: Gauge;

  // alcazar's own.
  private readonly issued: Counter<'reason'>;
  private readonly renewals: Counter;
  private readonly reconciles: Counter<'result'>;
  private readonly reconcileErrors: Counter<'reason'>;
  private readonly reconcileDuration: Histogram;
  private readonly watchRestarts: Counter<'informer' | 'reason'>;
  private readonly eventsDropped: Counter<'type'>;
  private readonly dnsNamesRefused: Counter<'reason'>;
  private readonly leader: Gauge;
  private readonly caReady: Gauge;
  /** When alcazar_ca_ready turns 0: 0 while no CA is loaded, the signer's notAfter while one is. */
  private caReadyUntil = 0;
  private readonly rootExpiry: Gauge<'fingerprint' | 'active'>;
  private readonly crlRevoked: Gauge;
  private readonly crlNextUpdate: Gauge;
  private readonly crlSignFailures: Counter;

  constructor(opts: MetricsOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log;
    const registers = [this.registry];

    this.citadelCreated = new Counter({
      name: 'citadel_secret_controller_svc_acc_created_cert_count',
      help: 'Workload Secrets created for a ServiceAccount (Citadel-compatible name).',
      registers,
    });
    this.citadelSaDeleted = new Counter({
      name: 'citadel_secret_controller_svc_acc_deleted_cert_count',
      help: 'Workload Secrets deleted because their ServiceAccount was deleted (Citadel-compatible name).',
      registers,
    });
    this.citadelSecretDeleted = new Counter({
      name: 'citadel_secret_controller_secret_deleted_cert_count',
      help: 'Workload Secrets re-created after someone deleted them (Citadel-compatible name).',
      registers,
    });
    this.citadelCsrError = new Counter({
      name: 'citadel_secret_controller_csr_err_count',
      help: 'Failures to produce a workload certificate, building or signing (Citadel-compatible name).',
      registers,
    });
    this.citadelSignError = new Counter({
      name: 'citadel_secret_controller_csr_sign_err_count',
      help: 'Failures to sign a workload certificate, by error; also counted in csr_err_count (Citadel-compatible name).',
      labelNames: ['error'],
      registers,
    });
    this.citadelRootExpiry = new Gauge({
      name: 'citadel_server_root_cert_expiry_timestamp',
      help: "The active root certificate's notAfter, in unix seconds; 0 while no CA is loaded (Citadel-compatible name).",
      registers,
    });

    this.issued = new Counter({
      name: 'alcazar_certificates_issued_total',
      help: 'Workload certificates issued, by the reason the Secret needed one (Missing, RenewalDue, NotSignedByCurrentCA, ...).',
      labelNames: ['reason'],
      registers,
    });
    this.renewals = new Counter({
      name: 'alcazar_certificate_renewals_total',
      help: 'Scheduled renewals carried out: certificates replaced only because their renewal time came.',
      registers,
    });
    this.reconciles = new Counter({
      name: 'alcazar_reconcile_total',
      help: 'Workload Secret reconciles, by result (success or error).',
      labelNames: ['result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'alcazar_reconcile_errors_total',
      help: 'Failed workload Secret reconciles, by reason (http_<status>, a system error code, or an error name).',
      labelNames: ['reason'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'alcazar_reconcile_duration_seconds',
      help: 'Time taken by one workload Secret reconcile, successful or not.',
      buckets: RECONCILE_BUCKETS_SECONDS,
      registers,
    });
    const depth: Gauge = new Gauge({
      name: 'alcazar_workqueue_depth',
      help: 'Keys waiting for a worker in the workload Secrets queue.',
      registers,
      collect: () => this.readProbe('workqueue', this.queueProbe, (q) => depth.set(q.depth)),
    });
    const scheduled: Gauge = new Gauge({
      name: 'alcazar_workqueue_scheduled',
      help: 'Keys scheduled for later (renewals, retries) in the workload Secrets queue.',
      registers,
      collect: () => this.readProbe('workqueue', this.queueProbe, (q) => scheduled.set(q.scheduled)),
    });
    this.watchRestarts = new Counter({
      name: 'alcazar_watch_restarts_total',
      help: 'Watches restarted with a relist, by informer and reason (closed, expired, stalled, resync, error).',
      labelNames: ['informer', 'reason'],
      registers,
    });
    this.eventsDropped = new Counter({
      name: 'alcazar_events_dropped_total',
      help: 'Kubernetes Events not written because --event-qps/--event-burst were exceeded, by type (Normal, Warning).',
      labelNames: ['type'],
      registers,
    });
    for (const type of ['Normal', 'Warning']) this.eventsDropped.inc({ type }, 0);
    this.dnsNamesRefused = new Counter({
      name: 'alcazar_dns_names_refused_total',
      help: 'DNS names a ServiceAccount asked for (alcazar.dev/dns-names) and was refused, each counted when first refused, by reason (OutsideNamespace, Reserved, Invalid).',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['OutsideNamespace', 'Reserved', 'Invalid']) this.dnsNamesRefused.inc({ reason }, 0);
    this.leader = new Gauge({
      name: 'alcazar_leader',
      help: '1 while this replica holds the leader lease and may write, 0 otherwise.',
      registers,
    });
    const caReady: Gauge = new Gauge({
      name: 'alcazar_ca_ready',
      help: '1 while a validated signing CA is loaded and its signing certificate has not ended, 0 otherwise.',
      registers,
      collect: () => caReady.set(this.now() < this.caReadyUntil ? 1 : 0),
    });
    this.caReady = caReady;
    this.rootExpiry = new Gauge({
      name: 'alcazar_root_certificate_expiry_timestamp_seconds',
      help: 'notAfter of each root certificate in the trust bundle, in unix seconds; active="true" for the root the signer chains to.',
      labelNames: ['fingerprint', 'active'],
      registers,
    });
    const workloadCertificates: Gauge<'expires_within'> = new Gauge({
      name: 'alcazar_workload_certificates',
      help: 'Managed workload certificates by time left, each counted once (exclusive buckets): expired; 1h = within the next hour; 24h = 1h-24h; 7d = 24h-7d; 30d = 7d-30d; later = beyond 30 days.',
      labelNames: ['expires_within'],
      registers,
      collect: () =>
        this.readProbe('certificate expiry', this.expiryProbe, (notAfters) => {
          const counts = expiryBuckets(notAfters, this.now());
          for (const bucket of EXPIRY_BUCKETS)
            workloadCertificates.set({ expires_within: bucket }, counts[bucket]);
        }),
    });
    const managed: Gauge = new Gauge({
      name: 'alcazar_managed_service_accounts',
      help: 'ServiceAccounts in managed namespaces, each of which should have a workload Secret.',
      registers,
      collect: () =>
        this.readProbe('managed service accounts', this.managedServiceAccountsProbe, (n) => managed.set(n)),
    });

    this.crlRevoked = new Gauge({
      name: 'alcazar_crl_revoked_certificates',
      help: 'Certificates listed in the published CRL (revoked and not yet expired).',
      registers,
    });
    this.crlNextUpdate = new Gauge({
      name: 'alcazar_crl_next_update_timestamp_seconds',
      help: "The published CRL's nextUpdate, in unix seconds (the earliest, when several CAs sign one); 0 before the first CRL.",
      registers,
    });
    this.crlSignFailures = new Counter({
      name: 'alcazar_crl_sign_failures_total',
      help: 'Failures to sign or publish the CRL; alcazar retries with backoff until it has re-signed it.',
      registers,
    });

    for (const result of ['success', 'error']) this.reconciles.inc({ result }, 0);
    if (opts.defaultMetrics ?? true) {
      // The event-loop delay histogram samples with a libuv timer: at prom-client's default 10 ms
      // that timer woke an idle controller 100 times a second, 0.6% of a core on its own (issue
      // #18's idle budget is 1%); every 100 ms costs 0.07% and still shows a blocked loop.
      collectDefaultMetrics({
        register: this.registry,
        eventLoopMonitoringPrecision: EVENT_LOOP_MONITORING_PRECISION_MS,
      });
      // prom-client also exports these three as gauges named *_total, which Prometheus reserves for
      // counters (`promtool check metrics` flags them). The same counts stay available, by type,
      // in nodejs_active_handles / _requests / _resources: sum them for the total.
      for (const name of UNCONVENTIONAL_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    }
  }

  /** The Content-Type of `scrape()`'s output. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Everything in the Prometheus text format, probes read now. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  // ---- workload Secrets ----

  /**
   * A workload Secret was created. `trigger`: `serviceAccount` when it is the
   * ServiceAccount's first, `secretDeleted` when it replaces one someone deleted.
   */
  workloadSecretCreated(trigger: 'serviceAccount' | 'secretDeleted'): void {
    (trigger === 'serviceAccount' ? this.citadelCreated : this.citadelSecretDeleted).inc();
  }

  /** A workload Secret was deleted because its ServiceAccount was deleted. */
  serviceAccountSecretDeleted(): void {
    this.citadelSaDeleted.inc();
  }

  /**
   * A workload certificate was minted into a Secret (created or reissued).
   * `scheduledRenewal` when it replaced a certificate only because its renewal time came.
   */
  certificateIssued(reason: string, scheduledRenewal: boolean): void {
    this.issued.inc({ reason: boundedLabel(reason) });
    if (scheduledRenewal) this.renewals.inc();
  }

  /** Building a certificate failed before signing (key generation, template). */
  certificateBuildFailed(): void {
    this.citadelCsrError.inc();
  }

  /** Signing a certificate failed (counted as a build failure too); `error` is a short code, not a message. */
  certificateSignFailed(error: string): void {
    this.citadelCsrError.inc();
    this.citadelSignError.inc({ error: boundedLabel(error) });
  }

  /** One reconcile finished; `error` is a short reason (see `errorReason`) when it failed. */
  observeReconcile(durationMs: number, error?: string): void {
    this.reconcileDuration.observe(durationMs / 1000);
    this.reconciles.inc({ result: error === undefined ? 'success' : 'error' });
    if (error !== undefined) this.reconcileErrors.inc({ reason: boundedLabel(error) });
  }

  /** Runs one reconcile, records its duration and result, and passes the outcome through. */
  async timeReconcile<T>(reconcile: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await reconcile();
      this.observeReconcile(performance.now() - started);
      return result;
    } catch (err) {
      this.observeReconcile(performance.now() - started, errorReason(err));
      throw err;
    }
  }

  // ---- informers, queue, leadership, CA ----

  watchRestarted(informer: string, reason: WatchRestartReason | 'stopped'): void {
    if (reason === 'stopped') return; // shutting down, not a restart
    this.watchRestarts.inc({ informer, reason });
  }

  /** An `onWatchRestart` callback for an Informer, with its series present from the start. */
  watchRestartRecorder(informer: string): (reason: WatchRestartReason | 'stopped') => void {
    for (const reason of ['closed', 'expired', 'stalled', 'resync', 'error'] as const)
      this.watchRestarts.inc({ informer, reason }, 0);
    return (reason) => this.watchRestarted(informer, reason);
  }

  /** A requested DNS name was left out of a workload certificate; `reason` is the policy's code. */
  dnsNameRefused(reason: string): void {
    this.dnsNamesRefused.inc({ reason: boundedLabel(reason) });
  }

  eventDropped(type: 'Normal' | 'Warning'): void {
    this.eventsDropped.inc({ type });
  }

  setLeader(leading: boolean): void {
    this.leader.set(leading ? 1 : 0);
  }

  /** Ready until `signerNotAfter` (read at scrape time: a signer that ends turns it to 0). */
  setCaReady(ready: boolean, signerNotAfter?: Date): void {
    this.caReadyUntil = ready ? (signerNotAfter?.getTime() ?? Number.POSITIVE_INFINITY) : 0;
    this.caReady.set(this.now() < this.caReadyUntil ? 1 : 0);
  }

  /** The roots in the trust bundle now: the previous set's series are dropped, not merged. */
  setRoots(roots: readonly RootCertificateMetric[]): void {
    this.rootExpiry.reset();
    for (const root of roots) {
      this.rootExpiry.set(
        { fingerprint: root.fingerprintSha256, active: String(root.active) },
        root.notAfter.getTime() / 1000,
      );
    }
    const active = roots.find((root) => root.active);
    this.citadelRootExpiry.set(active ? active.notAfter.getTime() / 1000 : 0);
  }

  // ---- revocation ----

  /** The CRL just signed or verified: how many certificates it lists, and until when it is valid. */
  setCrl(crl: { nextUpdate: Date; revoked: number }): void {
    this.crlRevoked.set(crl.revoked);
    this.crlNextUpdate.set(crl.nextUpdate.getTime() / 1000);
  }

  crlSignFailed(): void {
    this.crlSignFailures.inc();
  }

  // ---- probes read at scrape time ----

  setQueueProbe(probe: () => QueueSnapshot): void {
    this.queueProbe = probe;
  }

  /** notAfter (ms since the epoch) of every managed workload certificate. */
  setCertificateExpiryProbe(probe: () => Iterable<number>): void {
    this.expiryProbe = probe;
  }

  setManagedServiceAccountsProbe(probe: () => number): void {
    this.managedServiceAccountsProbe = probe;
  }

  /**
   * Reads a probe during a scrape. A probe that throws leaves its gauge at the
   * last value and is logged: one broken probe must not fail the whole scrape.
   */
  private readProbe<V>(name: string, probe: (() => V) | undefined, apply: (value: V) => void): void {
    if (!probe) return;
    try {
      apply(probe());
    } catch (err) {
      this.log?.warn({ err, probe: name }, 'metrics probe failed; keeping its last value');
    }
  }
}

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  return new Metrics(opts);
}
