// The status the CertificateAuthority should show, derived purely from the
// configuration outcome, the CA state and the workload counts.
import { type CaConfig, configAdjustments } from '../../config/ca-spec.js';
import type { AuthorityState } from '../authority/controller.js';
import type { CrlHealth } from '../crl/health.js';
import type { RotationStatus } from '../root-rotation/controller.js';
import type { WorkloadCounts } from '../workload-secrets/controller.js';

export interface Condition {
  type: 'Ready' | 'ConfigValid' | 'CAReady' | 'RootExpiring' | 'CRLValid';
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration: number;
}

export interface RootStatus {
  fingerprintSha256: string;
  notBefore: string;
  notAfter: string;
  active: boolean;
}

export interface CaStatus {
  observedGeneration: number;
  /** The namespace of the CA Secrets the roots belong to. */
  caNamespace?: string;
  trustDomain: string;
  rootExpiry?: string;
  roots: RootStatus[];
  conditions: Condition[];
  managedServiceAccounts: number;
  issuedCertificates: number;
  failingCertificates: number;
  rotation: RotationStatus;
}

export interface StatusInput {
  generation: number;
  config: CaConfig;
  specError: string | undefined;
  /**
   * No valid configuration has been in effect since start (SharedState.configHeld): the trust
   * domain the invalid spec asks for, if it names one, is shown rather than the defaults'.
   */
  configHeld?: { trustDomain?: string };
  authority: AuthorityState;
  counts: WorkloadCounts;
  rotation: RotationStatus;
  /** The published CRL's state; no CRLValid condition when absent. */
  crl?: CrlHealth;
  now: number;
  transitionTime: (type: Condition['type'], status: Condition['status']) => string;
  caNamespace?: string;
  /** The status as stored: its roots are kept while no CA is loaded (they record what was in use). */
  previous?: CaStatus;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export function desiredStatus(input: StatusInput): CaStatus {
  const { authority, generation } = input;
  const condition = (
    type: Condition['type'],
    ok: boolean | undefined,
    reason: string,
    message: string,
  ): Condition => {
    const status = ok === undefined ? 'Unknown' : ok ? 'True' : 'False';
    return {
      type,
      status,
      reason,
      message,
      lastTransitionTime: input.transitionTime(type, status),
      observedGeneration: generation,
    };
  };
  const configValid = input.specError === undefined;
  const configCondition = configValid
    ? validConfigCondition(input.config, condition)
    : condition(
        'ConfigValid',
        false,
        'InvalidSpec',
        input.configHeld
          ? `${input.specError}; no valid configuration has been in effect since the controller started, so nothing is loaded, issued, written or deleted until the spec is fixed`
          : `${input.specError}; the last valid configuration stays in effect`,
      );
  const ended = signerEnded(input);
  const caCondition =
    authority.status === 'ready'
      ? ended
        ? condition('CAReady', false, 'SignerExpired', ended)
        : condition('CAReady', true, 'Loaded', `signing with ${authority.authority.source}`)
      : authority.status === 'failed'
        ? condition('CAReady', false, authority.reason, authority.message)
        : condition('CAReady', undefined, 'Pending', authority.message);
  const ready = configValid && authority.status === 'ready' && !ended;
  const readyCondition = ready
    ? condition('Ready', true, 'Ready', 'issuing workload certificates')
    : !configValid
      ? condition('Ready', false, 'InvalidSpec', configCondition.message)
      : condition('Ready', false, caCondition.reason, caCondition.message);

  const roots: RootStatus[] =
    authority.status === 'ready'
      ? authority.authority.roots.map((root) => ({
          fingerprintSha256: root.fingerprintSha256,
          notBefore: iso(root.notBefore),
          notAfter: iso(root.notAfter),
          active: root.fingerprintSha256 === authority.authority.activeRootFingerprint,
        }))
      : input.previous?.caNamespace !== undefined && input.previous.caNamespace === input.caNamespace
        ? (input.previous.roots ?? [])
        : [];
  const activeRoot = authority.status === 'ready' ? roots.find((r) => r.active) : undefined;
  // Held: nothing is in effect, nothing was loaded, nothing rotates. The defaults in input.config are
  // nobody's choice and the rotation controller has not looked: what the status said stays.
  const held = input.configHeld ? input.previous : undefined;
  const rootExpiry = activeRoot?.notAfter ?? held?.rootExpiry;
  return {
    observedGeneration: generation,
    ...(input.caNamespace !== undefined ? { caNamespace: input.caNamespace } : {}),
    trustDomain: held?.trustDomain ?? input.configHeld?.trustDomain ?? input.config.trustDomain,
    ...(rootExpiry ? { rootExpiry } : {}),
    roots,
    conditions: [
      readyCondition,
      configCondition,
      caCondition,
      rootExpiringCondition(input, condition),
      ...(input.crl ? [crlCondition(input.crl, input.now, condition)] : []),
    ],
    ...(held ? countsOf(held) : input.counts),
    rotation: held?.rotation ?? input.rotation,
  };
}

function countsOf(status: CaStatus): WorkloadCounts {
  return {
    managedServiceAccounts: status.managedServiceAccounts ?? 0,
    issuedCertificates: status.issuedCertificates ?? 0,
    failingCertificates: status.failingCertificates ?? 0,
  };
}

/**
 * Why the loaded signer cannot issue any more, once it has ended: a self-signed root stays loaded
 * past its end so that its rotation can replace it (a plugged-in signer is refused before then).
 */
function signerEnded(input: Pick<StatusInput, 'authority' | 'now'>): string | undefined {
  if (input.authority.status !== 'ready') return undefined;
  const { signer, source, mode } = input.authority.authority;
  if (signer.notAfter.getTime() > input.now) return undefined;
  const ended = `the signing certificate in ${source} ended at ${iso(signer.notAfter)}: nothing is issued`;
  return mode === 'SelfSigned'
    ? `${ended} until the root rotation replaces it (see RootExpiring and status.rotation)`
    : `${ended} until cacerts is replaced`;
}

/** The status fields that change with every certificate issued: progress, not state. */
const COUNT_FIELDS = ['managedServiceAccounts', 'issuedCertificates', 'failingCertificates'] as const;

export type StatusWrite = { write: true } | { write: false; retryInMs?: number };

/**
 * Whether to write `desired` over `stored` now. A change of state (a condition, a root, the
 * rotation, the trust domain) is written at once. A change of the counts alone is written at most
 * once per `intervalMs`: the controller's own status write comes back as a watch event that runs it
 * again, so during a mint of thousands of Secrets the counts would otherwise be rewritten as fast as
 * the API server answers (13 writes/s measured at 10,000, docs/BENCHMARKS.md).
 */
export function planStatusWrite(
  stored: CaStatus | undefined,
  desired: CaStatus,
  lastWriteAt: number | undefined,
  now: number,
  intervalMs: number,
): StatusWrite {
  if (stored && sameStatus(stored, desired)) return { write: false };
  if (!stored || lastWriteAt === undefined) return { write: true };
  const withStoredCounts = { ...desired };
  for (const field of COUNT_FIELDS) withStoredCounts[field] = stored[field];
  if (!sameStatus(stored, withStoredCounts)) return { write: true };
  const waited = now - lastWriteAt;
  return waited >= intervalMs ? { write: true } : { write: false, retryInMs: intervalMs - waited };
}

/** Equal for the purpose of deciding whether to write. */
export function sameStatus(a: CaStatus, b: CaStatus): boolean {
  return stableJson(normalize(a)) === stableJson(normalize(b));
}

function normalize(s: CaStatus): CaStatus {
  return {
    ...s,
    conditions: [...(s.conditions ?? [])].sort((x, y) => x.type.localeCompare(y.type)),
    roots: s.roots ?? [],
  };
}

/** JSON with object keys sorted, so the API server's key order does not count as a difference. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * True when the signing certificate is close to expiry and alcazar will not fix it by itself: in
 * plugged-in mode only the operator can replace cacerts; in self-signed mode a rotation should
 * have started at the threshold, so half that margin left means it is stuck.
 */
export function rootExpiring(
  input: Pick<StatusInput, 'authority' | 'config' | 'rotation' | 'now'>,
): { expiring: false } | { expiring: true; message: string } {
  if (input.authority.status !== 'ready') return { expiring: false };
  const { signer, mode } = input.authority.authority;
  const lifetime = signer.notAfter.getTime() - signer.notBefore.getTime();
  const remaining = signer.notAfter.getTime() - input.now;
  const threshold = input.config.root.selfSigned.rotationThreshold;
  const expires = `expires ${signer.notAfter.toISOString()}`;
  if (mode === 'PluggedIn' && remaining < lifetime * threshold) {
    return {
      expiring: true,
      message: `the signing certificate in cacerts ${expires}: replace cacerts (README: rotating a plugged-in CA)`,
    };
  }
  if (mode === 'SelfSigned' && remaining < (lifetime * threshold) / 2) {
    return {
      expiring: true,
      message: `the root ${expires} and its rotation has not finished (${input.rotation.phase}: ${input.rotation.message})`,
    };
  }
  return { expiring: false };
}

function rootExpiringCondition(
  input: StatusInput,
  condition: (type: Condition['type'], ok: boolean | undefined, reason: string, message: string) => Condition,
): Condition {
  if (input.authority.status !== 'ready')
    return condition('RootExpiring', undefined, 'NoSigner', 'no signing certificate is loaded (see CAReady)');
  const verdict = rootExpiring(input);
  return verdict.expiring
    ? condition('RootExpiring', true, 'RootNearExpiry', verdict.message)
    : condition(
        'RootExpiring',
        false,
        'RootValid',
        'the signing certificate is not near expiry, or rotation is handling it',
      );
}

/** Valid; or valid with a value that policy adjusts, which the user should see rather than guess. */
function validConfigCondition(
  config: CaConfig,
  condition: (type: Condition['type'], ok: boolean, reason: string, message: string) => Condition,
): Condition {
  const notes = configAdjustments(config);
  if (notes.length === 0) return condition('ConfigValid', true, 'Valid', 'the spec is valid and in effect');
  return condition('ConfigValid', true, 'ValidWithAdjustments', `the spec is in effect; ${notes.join('; ')}`);
}

/** False is alert-worthy: the CRL cannot be re-signed, and verifiers fail closed once it expires. */
function crlCondition(
  crl: CrlHealth,
  now: number,
  condition: (type: Condition['type'], ok: boolean | undefined, reason: string, message: string) => Condition,
): Condition {
  if (crl.state === 'unknown') return condition('CRLValid', undefined, 'Pending', crl.message);
  if (crl.state === 'failing') {
    const until =
      crl.nextUpdate === undefined
        ? ''
        : `; the published CRL is valid until ${new Date(crl.nextUpdate).toISOString()}`;
    return condition('CRLValid', false, 'SignFailed', `${crl.message}${until}`);
  }
  if (crl.nextUpdate <= now)
    return condition(
      'CRLValid',
      false,
      'Expired',
      `the CRL expired at ${new Date(crl.nextUpdate).toISOString()}`,
    );
  return condition(
    'CRLValid',
    true,
    'Signed',
    `istio-ca-crl lists ${crl.revoked} revoked certificate(s), valid until ${new Date(crl.nextUpdate).toISOString()}`,
  );
}
