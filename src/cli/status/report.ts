// Judging what `kubectl alcazar status` read: pure, so every verdict is unit-tested without a cluster.
import { type CaConfig, parseCertificateAuthoritySpec } from '../../config/ca-spec.js';
import { MAX_NAME_LENGTH, workloadSecretName } from '../../controllers/workload-secrets/plan.js';
import { isManagedNamespace } from '../../controllers/workload-secrets/targeting.js';
import { STATUS_EXIT } from './args.js';
import type { StatusObservation, WorkloadSecretView } from './gather.js';

export type FailingReason =
  | 'SecretMissing'
  | 'NameTooLong'
  | 'ForeignSecret'
  | 'CertificateUnreadable'
  | 'CertificateExpired'
  | 'RenewalOverdue'
  | 'ActiveRootNotTrusted';

export interface FailingServiceAccount {
  namespace: string;
  serviceAccount: string;
  reason: FailingReason;
  message: string;
}

export interface RootReport {
  fingerprintSha256: string;
  notBefore: string;
  notAfter: string;
  active: boolean;
  timeLeftMs: number;
}

export interface StatusReport {
  caNamespace: string;
  certificateAuthority: {
    found: boolean;
    ready: 'True' | 'False' | 'Unknown';
    reason: string;
    message: string;
    trustDomain?: string;
    mode?: string;
    /** False while the controller has not yet reported on the current spec. */
    statusCurrent: boolean;
    conditions: Array<{ type: string; status: string; reason: string; message: string }>;
  };
  roots: RootReport[];
  rotation: { phase: string; startedAt?: string; message: string };
  counts: { managedServiceAccounts: number; issuedCertificates: number; failingCertificates: number };
  /** `notChecked`: --no-lease; `absent`: no Lease object at all (no replica ever led, or leader election is off). */
  leader:
    | { holder?: string; renewedAgoMs?: number; current: boolean; absent?: true }
    | { error: string }
    | { notChecked: true };
  /** Checked from the ServiceAccounts and their Secrets, not from the status. */
  failing: { total: number; listed: FailingServiceAccount[] } | { error: string };
  problems: string[];
}

const DAY = 86_400_000;
/** A root closer than this to its notAfter is a problem, as the alert AlcazarRootCertificateExpiringIn30Days says. */
export const ROOT_EXPIRY_WARNING_MS = 30 * DAY;

export function buildStatusReport(obs: StatusObservation, now: number, maxFailing: number): StatusReport {
  const problems: string[] = [];
  const caRead = obs.certificateAuthority;
  const ca = caRead.ok ? caRead.value : undefined;
  if (!caRead.ok) problems.push(`cannot read the CertificateAuthority: ${caRead.error}`);
  else if (!ca)
    problems.push('no CertificateAuthority "default": the controller runs with built-in defaults');
  const status = ca?.status ?? {};
  const conditions = (status.conditions ?? []).map((c) => ({
    type: c.type,
    status: c.status,
    reason: c.reason ?? '',
    message: c.message ?? '',
  }));
  const readyCondition = conditions.find((c) => c.type === 'Ready');
  const ready = (readyCondition?.status ?? 'Unknown') as 'True' | 'False' | 'Unknown';
  if (ca && ready !== 'True') {
    problems.push(
      readyCondition
        ? `CA not ready: ${readyCondition.reason}: ${readyCondition.message}`
        : 'CA not ready: no Ready condition yet (is the controller running?)',
    );
  }
  const statusCurrent = ca !== undefined && status.observedGeneration === ca.metadata?.generation;
  if (ca && !statusCurrent && readyCondition) {
    problems.push('the status describes an older spec: the controller has not caught up (is it running?)');
  }
  const spec = parseCertificateAuthoritySpec(ca?.spec);
  const config = spec.ok ? spec.config : undefined;

  const roots: RootReport[] = (status.roots ?? []).map((r) => ({
    ...r,
    timeLeftMs: new Date(r.notAfter).getTime() - now,
  }));
  const active = roots.find((r) => r.active);
  if (active && active.timeLeftMs < ROOT_EXPIRY_WARNING_MS) {
    problems.push(
      active.timeLeftMs <= 0
        ? `the active root expired at ${active.notAfter}`
        : `the active root expires at ${active.notAfter}, within 30 days`,
    );
  }

  const rotation = {
    phase: status.rotation?.phase ?? 'Idle',
    ...(status.rotation?.startedAt ? { startedAt: status.rotation.startedAt } : {}),
    message: status.rotation?.message ?? '',
  };

  const leader = leaderOf(obs, now);
  const lease = `Lease ${obs.caNamespace}/${obs.leaseName}`;
  if ('error' in leader) problems.push(`cannot read ${lease}: ${leader.error}`);
  else if ('absent' in leader)
    problems.push(
      `no ${lease}: no replica has led (a controller run with --leader-elect=false writes none: pass --no-lease)`,
    );
  else if ('current' in leader && !leader.current) problems.push(`no replica holds ${lease}`);

  const failing = failingServiceAccounts(obs, config, roots, now);
  if ('error' in failing) problems.push(`cannot check the workload Secrets: ${failing.error}`);
  else if (failing.length > 0)
    problems.push(`${failing.length} ServiceAccount(s) without a valid certificate`);

  return {
    caNamespace: obs.caNamespace,
    certificateAuthority: {
      found: ca !== undefined,
      ready,
      reason: readyCondition?.reason ?? '',
      message: readyCondition?.message ?? '',
      ...(status.trustDomain ? { trustDomain: status.trustDomain } : {}),
      ...(config ? { mode: config.root.mode } : {}),
      statusCurrent,
      conditions,
    },
    roots,
    rotation,
    counts: {
      managedServiceAccounts: status.managedServiceAccounts ?? 0,
      issuedCertificates: status.issuedCertificates ?? 0,
      failingCertificates: status.failingCertificates ?? 0,
    },
    leader,
    failing: 'error' in failing ? failing : { total: failing.length, listed: failing.slice(0, maxFailing) },
    problems,
  };
}

function leaderOf(obs: StatusObservation, now: number): StatusReport['leader'] {
  if (!obs.lease) return { notChecked: true };
  if (!obs.lease.ok) return { error: obs.lease.error };
  const lease = obs.lease.value;
  if (!lease) return { current: false, absent: true };
  if (!lease.holder) return { current: false };
  const renewedAgoMs = lease.renewTime === undefined ? undefined : now - lease.renewTime;
  const current =
    renewedAgoMs !== undefined && lease.durationMs !== undefined && renewedAgoMs <= lease.durationMs;
  return { holder: lease.holder, ...(renewedAgoMs !== undefined ? { renewedAgoMs } : {}), current };
}

/**
 * Every ServiceAccount in a managed namespace whose workload Secret is missing, not alcazar's, or
 * holds a certificate that is unreadable, expired, past its last renewal moment, or not trusting
 * the active root. Sorted by namespace, then name.
 */
function failingServiceAccounts(
  obs: StatusObservation,
  config: CaConfig | undefined,
  roots: readonly RootReport[],
  now: number,
): FailingServiceAccount[] | { error: string } {
  for (const r of [obs.namespaces, obs.serviceAccounts, obs.secrets]) if (!r.ok) return { error: r.error };
  if (!config) return [];
  const namespaces = new Map((obs.namespaces.ok ? (obs.namespaces.value ?? []) : []).map((n) => [n.name, n]));
  const secrets = new Map<string, WorkloadSecretView>();
  for (const s of obs.secrets.ok ? (obs.secrets.value ?? []) : []) secrets.set(`${s.namespace}/${s.name}`, s);
  const activeRoot = roots.find((r) => r.active)?.fingerprintSha256;
  const failing: FailingServiceAccount[] = [];
  for (const sa of obs.serviceAccounts.ok ? (obs.serviceAccounts.value ?? []) : []) {
    const ns = namespaces.get(sa.namespace);
    if (!ns || ns.terminating) continue;
    if (!isManagedNamespace(sa.namespace, ns.labels, config.namespaces, obs.caNamespace)) continue;
    const name = workloadSecretName(sa.name);
    const verdict = judgeSecret(secrets.get(`${sa.namespace}/${name}`), name, activeRoot, config, now);
    if (verdict) failing.push({ namespace: sa.namespace, serviceAccount: sa.name, ...verdict });
  }
  return failing.sort(
    (a, b) => a.namespace.localeCompare(b.namespace) || a.serviceAccount.localeCompare(b.serviceAccount),
  );
}

function judgeSecret(
  secret: WorkloadSecretView | undefined,
  name: string,
  activeRoot: string | undefined,
  config: CaConfig,
  now: number,
): { reason: FailingReason; message: string } | undefined {
  if (!secret && name.length > MAX_NAME_LENGTH) {
    return {
      reason: 'NameTooLong',
      message: `its Secret's name would be ${name.length} characters; Kubernetes allows ${MAX_NAME_LENGTH}, so it cannot have one`,
    };
  }
  if (!secret) {
    // Only Secrets of our type are listed: one of another type at this name is someone else's.
    return {
      reason: 'SecretMissing',
      message: `no Secret ${name} of type istio.io/key-and-cert (if a Secret of another type has that name, it is not alcazar's and is left alone)`,
    };
  }
  if (!secret.owned) {
    return { reason: 'ForeignSecret', message: `${name} was not created by alcazar, which leaves it alone` };
  }
  if ('error' in secret.leaf) return { reason: 'CertificateUnreadable', message: secret.leaf.error };
  const notAfter = new Date(secret.leaf.notAfter).toISOString();
  if (secret.leaf.notAfter <= now) {
    return { reason: 'CertificateExpired', message: `the certificate expired at ${notAfter}` };
  }
  if (secret.leaf.notAfter - now < config.workload.minGracePeriodMs) {
    return {
      reason: 'RenewalOverdue',
      message: `the certificate expires at ${notAfter} and should have been renewed already`,
    };
  }
  if (activeRoot && !secret.rootFingerprints.includes(activeRoot)) {
    return { reason: 'ActiveRootNotTrusted', message: 'root-cert.pem does not hold the active root' };
  }
  return undefined;
}

export const isHealthy = (report: StatusReport) => report.problems.length === 0;

/**
 * The exit status for a report: a read that failed (forbidden, unreachable) is "could not look"
 * (4), whatever else it found, so a script can tell it from "the CA is unhealthy" (1).
 */
export function statusExitCode(report: StatusReport): number {
  if ('error' in report.leader || 'error' in report.failing) return STATUS_EXIT.unreadable;
  return isHealthy(report) ? STATUS_EXIT.healthy : STATUS_EXIT.problems;
}
