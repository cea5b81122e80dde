import perfHooks from 'node:perf_hooks';
import { describe, expect, it, vi } from 'vitest';
import { createMetrics, EVENT_LOOP_MONITORING_PRECISION_MS, errorReason, expiryBuckets } from './metrics.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2030, 0, 1);

/** The value of one series in a Prometheus text exposition, or undefined when it is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const METRIC_TYPES = {
  citadel_secret_controller_svc_acc_created_cert_count: 'counter',
  citadel_secret_controller_svc_acc_deleted_cert_count: 'counter',
  citadel_secret_controller_secret_deleted_cert_count: 'counter',
  citadel_secret_controller_csr_err_count: 'counter',
  citadel_secret_controller_csr_sign_err_count: 'counter',
  citadel_server_root_cert_expiry_timestamp: 'gauge',
  alcazar_certificates_issued_total: 'counter',
  alcazar_certificate_renewals_total: 'counter',
  alcazar_reconcile_total: 'counter',
  alcazar_reconcile_errors_total: 'counter',
  alcazar_reconcile_duration_seconds: 'histogram',
  alcazar_workqueue_depth: 'gauge',
  alcazar_workqueue_scheduled: 'gauge',
  alcazar_watch_restarts_total: 'counter',
  alcazar_leader: 'gauge',
  alcazar_ca_ready: 'gauge',
  alcazar_root_certificate_expiry_timestamp_seconds: 'gauge',
  alcazar_workload_certificates: 'gauge',
  alcazar_managed_service_accounts: 'gauge',
  citadel_server_csr_count: 'counter',
  citadel_server_authentication_failure_count: 'counter',
  citadel_server_csr_parsing_err_count: 'counter',
  citadel_server_id_extraction_err_count: 'counter',
  citadel_server_csr_sign_err_count: 'counter',
  citadel_server_success_cert_issuance_count: 'counter',
  alcazar_csr_request_duration_seconds: 'histogram',
  alcazar_csr_token_reviews_total: 'counter',
  alcazar_crl_revoked_certificates: 'gauge',
  alcazar_crl_next_update_timestamp_seconds: 'gauge',
  alcazar_crl_sign_failures_total: 'counter',
} as const;

describe('metrics', () => {
  it('exposes every documented metric under its exact name, with HELP and TYPE', async () => {
    const text = await createMetrics({ defaultMetrics: false }).scrape();
    for (const [name, type] of Object.entries(METRIC_TYPES)) {
      expect(text, name).toMatch(new RegExp(`^# HELP ${name} \\S`, 'm'));
      expect(text, name).toContain(`# TYPE ${name} ${type}\n`);
    }
  });

  it('reports the CRL: listed certificates, nextUpdate in seconds, sign failures', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.setCrl({ nextUpdate: new Date(1_800_000_000_000), revoked: 3 });
    metrics.crlSignFailed();
    const text = await metrics.scrape();
    expect(sample(text, 'alcazar_crl_revoked_certificates')).toBe(3);
    expect(sample(text, 'alcazar_crl_next_update_timestamp_seconds')).toBe(1_800_000_000);
    expect(sample(text, 'alcazar_crl_sign_failures_total')).toBe(1);
  });

  it('keeps Citadel counter names as they are: no _total appended', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.workloadSecretCreated('serviceAccount');
    const text = await metrics.scrape();
    expect(sample(text, 'citadel_secret_controller_svc_acc_created_cert_count')).toBe(1);
    expect(text).not.toContain('_count_total');
  });

  it('registers process metrics on its own registry, without a prefix', async () => {
    const text = await createMetrics().scrape();
    expect(text).toContain('# TYPE process_cpu_seconds_total counter');
    expect(text).toContain('# TYPE process_resident_memory_bytes gauge');
    expect(text).toContain('# TYPE nodejs_eventloop_lag_seconds gauge');
  });

  it('samples the event loop every 100 ms, not every 10 ms (an idle controller woke 100 times a second)', () => {
    // prom-client reads node:perf_hooks through require: the same module object as here.
    const monitor = vi.spyOn(perfHooks, 'monitorEventLoopDelay');
    try {
      createMetrics();
      expect(monitor).toHaveBeenCalledWith(expect.objectContaining({ resolution: 100 }));
      expect(EVENT_LOOP_MONITORING_PRECISION_MS).toBe(100);
    } finally {
      monitor.mockRestore();
    }
  });

  it('keeps separate processes separate: two instances share no state', async () => {
    const a = createMetrics({ defaultMetrics: false });
    const b = createMetrics({ defaultMetrics: false });
    a.setLeader(true);
    expect(sample(await a.scrape(), 'alcazar_leader')).toBe(1);
    expect(sample(await b.scrape(), 'alcazar_leader')).toBe(0);
  });

  it('counts Secret lifecycle events under the Citadel names', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.workloadSecretCreated('serviceAccount');
    metrics.workloadSecretCreated('serviceAccount');
    metrics.workloadSecretCreated('secretDeleted');
    metrics.serviceAccountSecretDeleted();
    metrics.certificateBuildFailed();
    metrics.certificateSignFailed('KeyMismatch');
    const text = await metrics.scrape();
    expect(sample(text, 'citadel_secret_controller_svc_acc_created_cert_count')).toBe(2);
    expect(sample(text, 'citadel_secret_controller_secret_deleted_cert_count')).toBe(1);
    expect(sample(text, 'citadel_secret_controller_svc_acc_deleted_cert_count')).toBe(1);
    expect(sample(text, 'citadel_secret_controller_csr_err_count')).toBe(2);
    expect(sample(text, 'citadel_secret_controller_csr_sign_err_count{error="KeyMismatch"}')).toBe(1);
  });

  it('counts issued certificates by reason, and scheduled renewals on their own', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.certificateIssued('Missing', false);
    metrics.certificateIssued('RenewalDue', true);
    metrics.certificateIssued('RenewalDue', true);
    const text = await metrics.scrape();
    expect(sample(text, 'alcazar_certificates_issued_total{reason="Missing"}')).toBe(1);
    expect(sample(text, 'alcazar_certificates_issued_total{reason="RenewalDue"}')).toBe(2);
    expect(sample(text, 'alcazar_certificate_renewals_total')).toBe(2);
  });

  it('counts refused DNS names by reason, every reason present from the start', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    expect(sample(await metrics.scrape(), 'alcazar_dns_names_refused_total{reason="Reserved"}')).toBe(0);
    metrics.dnsNameRefused('Reserved');
    metrics.dnsNameRefused('OutsideNamespace');
    metrics.dnsNameRefused('OutsideNamespace');
    const text = await metrics.scrape();
    expect(sample(text, 'alcazar_dns_names_refused_total{reason="Reserved"}')).toBe(1);
    expect(sample(text, 'alcazar_dns_names_refused_total{reason="OutsideNamespace"}')).toBe(2);
    expect(sample(text, 'alcazar_dns_names_refused_total{reason="Invalid"}')).toBe(0);
  });

  it('folds a label value that looks like a message into "other"', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.certificateSignFailed('the key does not match\nthe certificate');
    const text = await metrics.scrape();
    expect(sample(text, 'citadel_secret_controller_csr_sign_err_count{error="other"}')).toBe(1);
  });

  it('records reconciles: result, error reason and duration', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    expect(sample(await metrics.scrape(), 'alcazar_reconcile_total{result="error"}')).toBe(0);
    metrics.observeReconcile(3);
    metrics.observeReconcile(2_000, 'http_409');
    const text = await metrics.scrape();
    expect(sample(text, 'alcazar_reconcile_total{result="success"}')).toBe(1);
    expect(sample(text, 'alcazar_reconcile_total{result="error"}')).toBe(1);
    expect(sample(text, 'alcazar_reconcile_errors_total{reason="http_409"}')).toBe(1);
    expect(sample(text, 'alcazar_reconcile_duration_seconds_count')).toBe(2);
    expect(sample(text, 'alcazar_reconcile_duration_seconds_bucket{le="0.005"}')).toBe(1);
    expect(sample(text, 'alcazar_reconcile_duration_seconds_bucket{le="2.5"}')).toBe(2);
    expect(sample(text, 'alcazar_reconcile_duration_seconds_sum')).toBeCloseTo(2.003);
  });

  it('timeReconcile passes results and errors through and records both', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    await expect(metrics.timeReconcile(async () => 'done')).resolves.toBe('done');
    const conflict = Object.assign(new Error('conflict'), { code: 409 });
    await expect(metrics.timeReconcile(() => Promise.reject(conflict))).rejects.toBe(conflict);
    const text = await metrics.scrape();
    expect(sample(text, 'alcazar_reconcile_total{result="success"}')).toBe(1);
    expect(sample(text, 'alcazar_reconcile_errors_total{reason="http_409"}')).toBe(1);
  });

  it('names error reasons by status, system code or error class, never by message', () => {
    expect(errorReason(Object.assign(new Error('x'), { code: 503 }))).toBe('http_503');
    expect(errorReason(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe('ECONNRESET');
    expect(errorReason(new TypeError('x'))).toBe('TypeError');
    expect(errorReason(new Error('secret 1234 failed'))).toBe('Error');
    expect(errorReason('a string')).toBe('Error');
  });

  it('counts watch restarts by informer and reason; a stop is not a restart', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const onWatchRestart = metrics.watchRestartRecorder('serviceaccounts');
    expect(
      sample(
        await metrics.scrape(),
        'alcazar_watch_restarts_total{informer="serviceaccounts",reason="stalled"}',
      ),
    ).toBe(0);
    onWatchRestart('stalled');
    onWatchRestart('expired');
    onWatchRestart('stopped');
    const text = await metrics.scrape();
    expect(sample(text, 'alcazar_watch_restarts_total{informer="serviceaccounts",reason="stalled"}')).toBe(1);
    expect(sample(text, 'alcazar_watch_restarts_total{informer="serviceaccounts",reason="expired"}')).toBe(1);
    expect(text).not.toContain('reason="stopped"');
  });

  it('reports leadership and CA readiness as 1/0', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.setLeader(true);
    metrics.setCaReady(true);
    metrics.setCaReady(false);
    const text = await metrics.scrape();
    expect(sample(text, 'alcazar_leader')).toBe(1);
    expect(sample(text, 'alcazar_ca_ready')).toBe(0);
  });

  it('turns CA readiness to 0 when the loaded signer ends, read at scrape time', async () => {
    let now = NOW;
    const metrics = createMetrics({ defaultMetrics: false, now: () => now });
    metrics.setCaReady(true, new Date(NOW + HOUR));
    expect(sample(await metrics.scrape(), 'alcazar_ca_ready')).toBe(1);
    now = NOW + HOUR;
    expect(sample(await metrics.scrape(), 'alcazar_ca_ready')).toBe(0);
    metrics.setCaReady(true, new Date(NOW + 2 * HOUR)); // a new signer
    expect(sample(await metrics.scrape(), 'alcazar_ca_ready')).toBe(1);
  });

  it('reads the queue and managed ServiceAccount probes at scrape time', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let queue = { depth: 3, scheduled: 40 };
    let managed = 7;
    metrics.setQueueProbe(() => queue);
    metrics.setManagedServiceAccountsProbe(() => managed);
    let text = await metrics.scrape();
    expect(sample(text, 'alcazar_workqueue_depth')).toBe(3);
    expect(sample(text, 'alcazar_workqueue_scheduled')).toBe(40);
    expect(sample(text, 'alcazar_managed_service_accounts')).toBe(7);
    queue = { depth: 0, scheduled: 41 };
    managed = 8;
    text = await metrics.scrape();
    expect(sample(text, 'alcazar_workqueue_depth')).toBe(0);
    expect(sample(text, 'alcazar_workqueue_scheduled')).toBe(41);
    expect(sample(text, 'alcazar_managed_service_accounts')).toBe(8);
  });

  it('a probe that throws keeps its last value and does not fail the scrape', async () => {
    const warnings: unknown[] = [];
    const log = { warn: (...args: unknown[]) => warnings.push(args) } as never;
    const metrics = createMetrics({ defaultMetrics: false, log });
    let broken = false;
    metrics.setManagedServiceAccountsProbe(() => {
      if (broken) throw new Error('cache gone');
      return 5;
    });
    await metrics.scrape();
    broken = true;
    expect(sample(await metrics.scrape(), 'alcazar_managed_service_accounts')).toBe(5);
    expect(warnings).toHaveLength(1);
  });

  it('replaces the root series wholesale: a root that left the bundle disappears', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const oldRoot = { fingerprintSha256: 'aa11', notAfter: new Date(NOW + 10 * DAY), active: true };
    const newRoot = { fingerprintSha256: 'bb22', notAfter: new Date(NOW + 3650 * DAY), active: true };
    metrics.setRoots([oldRoot]);
    let text = await metrics.scrape();
    expect(
      sample(text, 'alcazar_root_certificate_expiry_timestamp_seconds{fingerprint="aa11",active="true"}'),
    ).toBe((NOW + 10 * DAY) / 1000);
    expect(sample(text, 'citadel_server_root_cert_expiry_timestamp')).toBe((NOW + 10 * DAY) / 1000);

    metrics.setRoots([{ ...oldRoot, active: false }, newRoot]); // rotation: both trusted, new one signs
    text = await metrics.scrape();
    expect(
      sample(text, 'alcazar_root_certificate_expiry_timestamp_seconds{fingerprint="aa11",active="false"}'),
    ).toBe((NOW + 10 * DAY) / 1000);
    expect(text).not.toContain('fingerprint="aa11",active="true"');
    expect(sample(text, 'citadel_server_root_cert_expiry_timestamp')).toBe((NOW + 3650 * DAY) / 1000);

    metrics.setRoots([newRoot]);
    text = await metrics.scrape();
    expect(text).not.toContain('aa11');
    expect(text).toContain('fingerprint="bb22",active="true"');
  });

  it('reports the Citadel root expiry as 0 while no root is loaded', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.setRoots([{ fingerprintSha256: 'aa11', notAfter: new Date(NOW), active: true }]);
    metrics.setRoots([]);
    const text = await metrics.scrape();
    expect(sample(text, 'citadel_server_root_cert_expiry_timestamp')).toBe(0);
    expect(text).not.toContain('alcazar_root_certificate_expiry_timestamp_seconds{');
  });

  it('buckets workload certificates by time left at the injected now, each counted once', async () => {
    let now = NOW;
    const metrics = createMetrics({ defaultMetrics: false, now: () => now });
    const notAfters = [
      NOW - 1, // expired
      NOW, // expires now: expired
      NOW + 30 * 60_000, // 1h
      NOW + HOUR, // 1h (bounds are inclusive)
      NOW + HOUR + 1, // 24h
      NOW + 3 * DAY, // 7d
      NOW + 20 * DAY, // 30d
      NOW + 31 * DAY, // later
      NOW + 90 * DAY, // later
    ];
    metrics.setCertificateExpiryProbe(() => notAfters);
    const bucket = (text: string, b: string) =>
      sample(text, `alcazar_workload_certificates{expires_within="${b}"}`);
    let text = await metrics.scrape();
    expect(['expired', '1h', '24h', '7d', '30d', 'later'].map((b) => bucket(text, b))).toEqual([
      2, 2, 1, 1, 1, 2,
    ]);

    now = NOW + 2 * DAY; // two days on: 3d left becomes exactly 24h (bounds are inclusive), 31d becomes 29d
    text = await metrics.scrape();
    expect(['expired', '1h', '24h', '7d', '30d', 'later'].map((b) => bucket(text, b))).toEqual([
      5, 0, 1, 0, 2, 1,
    ]);
  });

  it('expiryBuckets is exclusive: the buckets add up to the number of certificates', () => {
    const notAfters = Array.from({ length: 500 }, (_, i) => NOW + (i - 50) * 3 * HOUR);
    const counts = expiryBuckets(notAfters, NOW);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(500);
    expect(counts.expired).toBe(51);
  });

  it('emits no certificate buckets before a probe is set', async () => {
    const text = await createMetrics({ defaultMetrics: false }).scrape();
    expect(text).not.toContain('alcazar_workload_certificates{');
  });

  it("keeps Node's default metrics but drops prom-client's gauges named *_total (a counter suffix)", async () => {
    const text = await createMetrics().scrape();
    expect(text).toContain('# TYPE nodejs_active_handles gauge');
    expect(text).toContain('# TYPE process_resident_memory_bytes gauge');
    for (const name of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ]) {
      expect(text).not.toContain(`# TYPE ${name} `);
    }
  });
});
