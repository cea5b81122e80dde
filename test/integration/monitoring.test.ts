// The alerts and the dashboard against the real tools and a real controller: promtool (built from
// github.com/prometheus/prometheus) checks the rules, runs every alert's unit test and lints a real
// scrape; the dashboard's queries must parse and name only metrics that scrape exports.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderMonitoringManifests } from '../../hack/monitoring-manifests.js';
import { repoRoot } from '../cluster/paths.js';
import { type ControllerProcess, startController } from './support/controller.js';
import { adminKubeConfig, createTestNamespace } from './support/kube.js';
import { scrape } from './support/metrics.js';
import { exportedSampleNames, metricNamesOf } from './support/promql.js';
import { goTool, run, runOk } from './support/tools.js';
import { waitFor } from './support/wait.js';
import { waitForWorkloadSecret } from './support/workload.js';

const ALERTS_FILE = 'charts/alcazar/files/prometheus-alerts.yaml';
const ALERT_TESTS_FILE = 'test/monitoring/alerts-test.yaml';
const DASHBOARD_FILE = 'charts/alcazar/files/grafana-dashboard.json';

interface AlertRule {
  alert: string;
  expr: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface AlertTest {
  name: string;
  input_series: Array<{ series: string; values: string }>;
  alert_rule_test: Array<{
    alertname: string;
    eval_time: string;
    exp_alerts: Array<{ exp_labels: Record<string, string> }>;
  }>;
}

const alertRules = () =>
  (
    yaml.load(readFileSync(join(repoRoot, ALERTS_FILE), 'utf8')) as { groups: Array<{ rules: AlertRule[] }> }
  ).groups.flatMap((g) => g.rules);
const alertTests = () =>
  (yaml.load(readFileSync(join(repoRoot, ALERT_TESTS_FILE), 'utf8')) as { tests: AlertTest[] }).tests;

interface Panel {
  title: string;
  type: string;
  targets?: Array<{ expr: string; refId: string }>;
  panels?: Panel[];
}
/** Every query of the dashboard, with Grafana's interval variables replaced by a fixed range. */
function dashboardQueries(): Array<{ panel: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(join(repoRoot, DASHBOARD_FILE), 'utf8')) as { panels: Panel[] };
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  return panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      panel: `${p.title} ${t.refId}`,
      expr: t.expr
        .replaceAll('$__rate_interval', '5m')
        .replaceAll('$__interval', '1m')
        .replaceAll('$__range', '1h'),
    })),
  );
}

let promtool: string;
let workDir: string;

beforeAll(() => {
  promtool = goTool('promtool');
  workDir = mkdtempSync(join(tmpdir(), 'alcazar-monitoring-'));
}, 1_800_000);

afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe('alert rules', () => {
  it('promtool check rules: the rules file is valid', async () => {
    const out = await runOk(promtool, ['check', 'rules', ALERTS_FILE]);
    expect(out).toContain(`SUCCESS: ${alertRules().length} rules found`);
  });

  it('promtool test rules: every unit test passes', async () => {
    const result = await run(promtool, ['test', 'rules', ALERT_TESTS_FILE]);
    expect(result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });

  it('every alert has a test where it fires and one where it stays quiet', () => {
    const tests = alertTests();
    for (const rule of alertRules()) {
      const checks = tests.flatMap((t) =>
        t.alert_rule_test.filter((c) => c.alertname === rule.alert).map((c) => ({ test: t, check: c })),
      );
      const fires = checks.filter((c) => c.check.exp_alerts.length > 0);
      expect(fires.length, `${rule.alert} fires in some test`).toBeGreaterThan(0);
      // Quiet: an evaluation that expects nothing, or input series the firing alerts do not cover
      // (another namespace, another bucket, the other replica).
      const quiet =
        checks.some((c) => c.check.exp_alerts.length === 0) ||
        fires.some(({ test, check }) => {
          const fired = check.exp_alerts.map((a) => a.exp_labels);
          return test.input_series.some(
            (s) =>
              !fired.some((labels) =>
                Object.entries(labels).every(
                  ([k, v]) => k === 'severity' || s.series.includes(`${k}="${v}"`),
                ),
              ),
          );
        });
      expect(quiet, `${rule.alert} stays quiet on a series that should not fire it`).toBe(true);
    }
  });

  it('every alert has a severity, a summary, a description and a runbook section in docs/runbooks.md', () => {
    const runbooks = readFileSync(join(repoRoot, 'docs', 'runbooks.md'), 'utf8');
    for (const rule of alertRules()) {
      expect(['critical', 'warning']).toContain(rule.labels.severity);
      expect(rule.annotations.summary).toBeTruthy();
      expect(rule.annotations.description).toBeTruthy();
      expect(rule.annotations.runbook_url).toBe(`docs/runbooks.md#${rule.alert.toLowerCase()}`);
      expect(runbooks).toContain(`\n## ${rule.alert}\n`);
    }
  });

  it('manifests/monitoring/ is what hack/monitoring-manifests.ts renders from the chart files', () => {
    for (const [name, text] of renderMonitoringManifests()) {
      expect(readFileSync(join(repoRoot, 'manifests', 'monitoring', name), 'utf8'), name).toBe(text);
    }
  });

  it("manifests/monitoring/servicemonitor.yaml selects manifests/32-service.yaml's Service and port", () => {
    const service = yaml.load(readFileSync(join(repoRoot, 'manifests', '32-service.yaml'), 'utf8')) as {
      metadata: { namespace: string; labels: Record<string, string> };
      spec: { ports: Array<{ name: string }> };
    };
    const monitor = yaml.load(
      readFileSync(join(repoRoot, 'manifests', 'monitoring', 'servicemonitor.yaml'), 'utf8'),
    ) as {
      spec: {
        selector: { matchLabels: Record<string, string> };
        namespaceSelector: { matchNames: string[] };
        endpoints: Array<{ port: string }>;
      };
    };
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.namespaceSelector.matchNames).toEqual([service.metadata.namespace]);
    expect(service.spec.ports.map((p) => p.name)).toContain(monitor.spec.endpoints[0]!.port);
  });
});

describe('the dashboard', () => {
  it('has a panel for every question the issue asks, each with queries', () => {
    const titles = dashboardQueries().map((q) => q.panel);
    for (const wanted of [
      'Certificates by time left',
      'Issuance rate by reason',
      'Renewals',
      'Reconcile latency',
      'Reconcile errors by reason',
      'Active root expires in',
      'Work queue',
      'Leader by replica',
    ]) {
      expect(
        titles.some((t) => t.startsWith(wanted)),
        wanted,
      ).toBe(true);
    }
  });

  it('every query parses (promtool check rules on them as recording rules)', async () => {
    const queries = dashboardQueries();
    const file = join(workDir, 'dashboard-queries.yaml');
    writeFileSync(
      file,
      yaml.dump({
        groups: [
          {
            name: 'dashboard',
            rules: queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: q.expr })),
          },
        ],
      }),
    );
    const out = await runOk(promtool, ['check', 'rules', file]);
    expect(out).toContain(`SUCCESS: ${queries.length} rules found`);
  });
});

describe('a real scrape of a running controller', () => {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  let caNamespace: Awaited<ReturnType<typeof createTestNamespace>>;
  let workloads: Awaited<ReturnType<typeof createTestNamespace>>;
  let controller: ControllerProcess;
  let text: string;

  beforeAll(async () => {
    caNamespace = await createTestNamespace(core, 'ca');
    workloads = await createTestNamespace(core, 'mon');
    controller = await startController({ caNamespace: caNamespace.name, args: ['--leader-elect'] });
    await core.createNamespacedServiceAccount({
      namespace: workloads.name,
      body: { metadata: { name: 'web' } },
    });
    await waitForWorkloadSecret(core, workloads.name, 'web');
    // The histogram and the leader gauge have samples once a reconcile ran under a held Lease.
    text = await waitFor('a scrape with reconciles and a leader', async () => {
      const scraped = await scrape(controller);
      return /^alcazar_leader 1$/m.test(scraped) &&
        /^alcazar_reconcile_duration_seconds_count [1-9]/m.test(scraped)
        ? scraped
        : undefined;
    });
  });

  afterAll(async () => {
    await controller?.stop();
    await workloads?.remove();
    await caNamespace?.remove();
  });

  it('promtool check metrics finds no problem but the Citadel names kept for compatibility', async () => {
    const result = await run(promtool, ['check', 'metrics'], { input: text });
    const problems = (result.stdout + result.stderr)
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    expect(problems.filter((p) => !CITADEL_CONTRACT.some((allowed) => allowed.test(p)))).toEqual([]);
  });

  it('the dashboard and the alerts name only metrics the controller exports', () => {
    const exported = exportedSampleNames(text);
    const named = new Set([
      ...dashboardQueries().flatMap((q) => metricNamesOf(q.expr)),
      ...alertRules().flatMap((r) => metricNamesOf(r.expr)),
    ]);
    expect(named.size).toBeGreaterThan(10);
    expect([...named].filter((name) => !exported.has(name))).toEqual([]);
  });
});

/**
 * What promtool's lint says about the metric names alcazar keeps from Citadel (README.md,
 * "Metrics"): counters named `..._count` (not `_total`), the names existing dashboards query.
 * Renaming them would break those dashboards, so these, and only these, are accepted.
 */
const CITADEL_COUNTERS = [
  'citadel_secret_controller_svc_acc_created_cert_count',
  'citadel_secret_controller_svc_acc_deleted_cert_count',
  'citadel_secret_controller_secret_deleted_cert_count',
  'citadel_secret_controller_csr_err_count',
  'citadel_secret_controller_csr_sign_err_count',
  // Citadel's CSR server (Istio's CSR API, src/csr/).
  'citadel_server_csr_count',
  'citadel_server_authentication_failure_count',
  'citadel_server_csr_parsing_err_count',
  'citadel_server_id_extraction_err_count',
  'citadel_server_csr_sign_err_count',
  'citadel_server_success_cert_issuance_count',
];
const CITADEL_CONTRACT: RegExp[] = CITADEL_COUNTERS.flatMap((name) => [
  new RegExp(`^${name} counter metrics should have "_total" suffix$`),
  new RegExp(`^${name} non-histogram and non-summary metrics should not have "_count" suffix$`),
]);
