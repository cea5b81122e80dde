import { describe, expect, it } from 'vitest';
import { STATUS_EXIT } from './args.js';
import type { CertificateAuthorityObject, StatusObservation, WorkloadSecretView } from './gather.js';
import { buildStatusReport, isHealthy, statusExitCode } from './report.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const DAY = 86_400_000;
const ACTIVE = 'a'.repeat(64);
const OLD = 'b'.repeat(64);
const iso = (ms: number) => new Date(ms).toISOString();

function readyCa(overrides: Partial<CertificateAuthorityObject['status']> = {}): CertificateAuthorityObject {
  return {
    metadata: { generation: 3 },
    spec: {},
    status: {
      observedGeneration: 3,
      trustDomain: 'cluster.local',
      roots: [
        {
          fingerprintSha256: ACTIVE,
          notBefore: iso(NOW - DAY),
          notAfter: iso(NOW + 3650 * DAY),
          active: true,
        },
      ],
      conditions: [
        { type: 'Ready', status: 'True', reason: 'Ready', message: 'issuing workload certificates' },
      ],
      rotation: { phase: 'Idle', message: 'no rotation under way' },
      managedServiceAccounts: 2,
      issuedCertificates: 2,
      failingCertificates: 0,
      ...overrides,
    },
  };
}

const secret = (
  namespace: string,
  sa: string,
  extra: Partial<WorkloadSecretView> = {},
): WorkloadSecretView => ({
  namespace,
  name: `istio.${sa}`,
  owned: true,
  leaf: { notAfter: NOW + 60 * DAY },
  rootFingerprints: [ACTIVE],
  ...extra,
});

function observation(overrides: Partial<StatusObservation> = {}): StatusObservation {
  return {
    caNamespace: 'istio-system',
    leaseName: 'alcazar-leader',
    certificateAuthority: { ok: true, value: readyCa() },
    lease: { ok: true, value: { holder: 'alcazar-0_1', renewTime: NOW - 2000, durationMs: 15_000 } },
    namespaces: {
      ok: true,
      value: [
        { name: 'shop', labels: {}, terminating: false },
        { name: 'off', labels: { 'ca.istio.io/override': 'false' }, terminating: false },
      ],
    },
    serviceAccounts: {
      ok: true,
      value: [
        { namespace: 'shop', name: 'default' },
        { namespace: 'shop', name: 'cart' },
        { namespace: 'off', name: 'default' },
      ],
    },
    secrets: { ok: true, value: [secret('shop', 'default'), secret('shop', 'cart')] },
    ...overrides,
  };
}

describe('buildStatusReport', () => {
  it('a Ready CA with a current leader and every ServiceAccount certified is healthy', () => {
    const report = buildStatusReport(observation(), NOW, 20);
    expect(report.problems).toEqual([]);
    expect(isHealthy(report)).toBe(true);
    expect(report.certificateAuthority).toMatchObject({
      ready: 'True',
      trustDomain: 'cluster.local',
      mode: 'SelfSigned',
    });
    expect(report.leader).toEqual({ holder: 'alcazar-0_1', renewedAgoMs: 2000, current: true });
    expect(report.failing).toEqual({ total: 0, listed: [] });
    expect(report.roots[0]!.timeLeftMs).toBe(3650 * DAY);
  });

  it('a CA that is not Ready is a problem that names the reason', () => {
    const ca = readyCa({
      conditions: [
        { type: 'Ready', status: 'False', reason: 'KeyMismatch', message: 'ca-key.pem does not match' },
      ],
      roots: [],
    });
    const report = buildStatusReport(observation({ certificateAuthority: { ok: true, value: ca } }), NOW, 20);
    expect(report.certificateAuthority.ready).toBe('False');
    expect(report.problems).toContain('CA not ready: KeyMismatch: ca-key.pem does not match');
    expect(isHealthy(report)).toBe(false);
  });

  it('a missing CertificateAuthority, and a status older than the spec, are problems', () => {
    expect(
      buildStatusReport(observation({ certificateAuthority: { ok: true, value: undefined } }), NOW, 20)
        .problems,
    ).toContain('no CertificateAuthority "default": the controller runs with built-in defaults');
    const stale = readyCa();
    stale.metadata!.generation = 4;
    expect(
      buildStatusReport(
        observation({ certificateAuthority: { ok: true, value: stale } }),
        NOW,
        20,
      ).problems.join(),
    ).toMatch(/older spec/);
  });

  it('the active root within 30 days of expiry is a problem; an old trusted root is not', () => {
    const ca = readyCa({
      roots: [
        { fingerprintSha256: OLD, notBefore: iso(NOW - DAY), notAfter: iso(NOW + DAY), active: false },
        {
          fingerprintSha256: ACTIVE,
          notBefore: iso(NOW - DAY),
          notAfter: iso(NOW + 3650 * DAY),
          active: true,
        },
      ],
    });
    expect(
      buildStatusReport(observation({ certificateAuthority: { ok: true, value: ca } }), NOW, 20).problems,
    ).toEqual([]);
    const expiring = readyCa({
      roots: [
        { fingerprintSha256: ACTIVE, notBefore: iso(NOW - DAY), notAfter: iso(NOW + 29 * DAY), active: true },
      ],
    });
    expect(
      buildStatusReport(observation({ certificateAuthority: { ok: true, value: expiring } }), NOW, 20)
        .problems,
    ).toEqual([`the active root expires at ${iso(NOW + 29 * DAY)}, within 30 days`]);
  });

  it('reports the rotation phase from the status', () => {
    const ca = readyCa({
      rotation: { phase: 'Publishing', startedAt: iso(NOW - 60_000), message: 'publishing' },
    });
    const report = buildStatusReport(observation({ certificateAuthority: { ok: true, value: ca } }), NOW, 20);
    expect(report.rotation).toEqual({
      phase: 'Publishing',
      startedAt: iso(NOW - 60_000),
      message: 'publishing',
    });
  });

  it('no holder, or a Lease not renewed within its duration, means no current leader', () => {
    const none = buildStatusReport(observation({ lease: { ok: true, value: {} } }), NOW, 20);
    expect(none.leader).toEqual({ current: false });
    expect(none.problems).toContain('no replica holds Lease istio-system/alcazar-leader');
    const stale = buildStatusReport(
      observation({
        lease: { ok: true, value: { holder: 'x', renewTime: NOW - 20_000, durationMs: 15_000 } },
      }),
      NOW,
      20,
    );
    expect(stale.leader).toMatchObject({ holder: 'x', current: false });
  });

  it('no Lease at all is a problem that names --no-lease; with --no-lease no leader is looked for', () => {
    const absent = buildStatusReport(observation({ lease: { ok: true, value: undefined } }), NOW, 20);
    expect(absent.leader).toEqual({ current: false, absent: true });
    expect(absent.problems).toEqual([
      'no Lease istio-system/alcazar-leader: no replica has led (a controller run with --leader-elect=false writes none: pass --no-lease)',
    ]);
    const { lease: _, leaseName: __, ...withoutLease } = observation();
    const unchecked = buildStatusReport(withoutLease, NOW, 20);
    expect(unchecked.leader).toEqual({ notChecked: true });
    expect(unchecked.problems).toEqual([]);
    expect(statusExitCode(unchecked)).toBe(0);
  });

  it('lists each failing ServiceAccount of a managed namespace with its reason, and skips unmanaged ones', () => {
    const long = 'l'.repeat(250); // istio.<250 characters>: longer than any object name may be
    const sas = ['missing', 'foreign', 'garbled', 'expired', 'overdue', 'oldroot', 'fine', long];
    const report = buildStatusReport(
      observation({
        serviceAccounts: {
          ok: true,
          value: [...sas.map((name) => ({ namespace: 'shop', name })), { namespace: 'off', name: 'missing' }],
        },
        secrets: {
          ok: true,
          value: [
            secret('shop', 'foreign', { owned: false }),
            secret('shop', 'garbled', { leaf: { error: 'cert-chain.pem holds no certificate' } }),
            secret('shop', 'expired', { leaf: { notAfter: NOW - 1000 } }),
            secret('shop', 'overdue', { leaf: { notAfter: NOW + 60_000 } }),
            secret('shop', 'oldroot', { rootFingerprints: [OLD] }),
            secret('shop', 'fine'),
          ],
        },
      }),
      NOW,
      20,
    );
    expect('error' in report.failing).toBe(false);
    const failing = report.failing as {
      total: number;
      listed: Array<{ serviceAccount: string; reason: string }>;
    };
    expect(failing.listed.map((f) => [f.serviceAccount, f.reason])).toEqual([
      ['expired', 'CertificateExpired'],
      ['foreign', 'ForeignSecret'],
      ['garbled', 'CertificateUnreadable'],
      [long, 'NameTooLong'],
      ['missing', 'SecretMissing'],
      ['oldroot', 'ActiveRootNotTrusted'],
      ['overdue', 'RenewalOverdue'],
    ]);
    expect(report.problems).toContain('7 ServiceAccount(s) without a valid certificate');
  });

  it('counts every failing ServiceAccount but lists at most --max-failing', () => {
    const report = buildStatusReport(
      observation({
        serviceAccounts: { ok: true, value: ['a', 'b', 'c'].map((name) => ({ namespace: 'shop', name })) },
        secrets: { ok: true, value: [] },
      }),
      NOW,
      2,
    );
    expect(report.failing).toMatchObject({ total: 3 });
    expect((report.failing as { listed: unknown[] }).listed).toHaveLength(2);
  });

  it('a list it cannot read is reported, not taken for "nothing failing"', () => {
    const report = buildStatusReport(
      observation({ secrets: { ok: false, error: 'forbidden (403)' } }),
      NOW,
      20,
    );
    expect(report.failing).toEqual({ error: 'forbidden (403)' });
    expect(report.problems).toContain('cannot check the workload Secrets: forbidden (403)');
    expect(statusExitCode(report), 'could not look (4), not unhealthy (1)').toBe(STATUS_EXIT.unreadable);
    expect(statusExitCode(buildStatusReport(observation(), NOW, 20))).toBe(STATUS_EXIT.healthy);
  });
});
