// Reading the cluster for `kubectl alcazar status`: the CertificateAuthority, the leader Lease, and
// every ServiceAccount with its workload Secret, by GETs and LISTs only. Certificates are reduced to
// what the report needs (notAfter, fingerprints of the roots) right here: key material never leaves
// this file.
import { CoordinationV1Api, CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../controllers/workload-secrets/observe.js';
import { WORKLOAD_SECRET_TYPE } from '../../controllers/workload-secrets/plan.js';
import { type Read, readOptional } from '../../kube/client.js';
import { decodeCertificatesPem, inspectCertificate } from '../../pki/index.js';
import { readCertificateAuthority } from '../certificate-authority.js';

export type { Read };

const read = readOptional;

/** The CertificateAuthority as stored: only the fields the report reads. */
export interface CertificateAuthorityObject {
  metadata?: { generation?: number };
  spec?: unknown;
  status?: {
    observedGeneration?: number;
    trustDomain?: string;
    rootExpiry?: string;
    roots?: Array<{ fingerprintSha256: string; notBefore: string; notAfter: string; active: boolean }>;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    rotation?: { phase?: string; startedAt?: string; phaseSince?: string; message?: string };
    managedServiceAccounts?: number;
    issuedCertificates?: number;
    failingCertificates?: number;
  };
}

export interface LeaseView {
  holder?: string;
  /** ms since the epoch of the last renewal, when the Lease says. */
  renewTime?: number;
  durationMs?: number;
}

/** A workload Secret reduced to what the report judges. */
export interface WorkloadSecretView {
  namespace: string;
  name: string;
  owned: boolean;
  /** The leaf's notAfter (ms), or why the chain could not be read. */
  leaf: { notAfter: number } | { error: string };
  /** sha256 fingerprints of the certificates in root-cert.pem. */
  rootFingerprints: string[];
}

export interface StatusObservation {
  caNamespace: string;
  /** Undefined when no Lease was looked for (--no-lease). */
  leaseName?: string;
  certificateAuthority: Read<CertificateAuthorityObject>;
  /** Undefined when no Lease was looked for; a value of undefined: no such Lease. */
  lease?: Read<LeaseView>;
  namespaces: Read<Array<{ name: string; labels: Record<string, string>; terminating: boolean }>>;
  serviceAccounts: Read<Array<{ namespace: string; name: string }>>;
  secrets: Read<WorkloadSecretView[]>;
}

export async function gatherStatus(
  kubeConfig: KubeConfig,
  caNamespace: string,
  leaseName: string | undefined,
): Promise<StatusObservation> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const coordination = kubeConfig.makeApiClient(CoordinationV1Api);
  const [certificateAuthority, lease, namespaces, serviceAccounts, secrets] = await Promise.all([
    readCertificateAuthority<CertificateAuthorityObject>(kubeConfig),
    leaseName === undefined
      ? undefined
      : read(async () => {
          const { spec } = await coordination.readNamespacedLease({
            namespace: caNamespace,
            name: leaseName,
          });
          return {
            ...(spec?.holderIdentity ? { holder: spec.holderIdentity } : {}),
            ...(spec?.renewTime ? { renewTime: new Date(spec.renewTime).getTime() } : {}),
            ...(spec?.leaseDurationSeconds ? { durationMs: spec.leaseDurationSeconds * 1000 } : {}),
          } satisfies LeaseView;
        }),
    read(async () =>
      (await core.listNamespace({})).items.map((ns) => ({
        name: ns.metadata?.name ?? '',
        labels: ns.metadata?.labels ?? {},
        terminating: Boolean(ns.metadata?.deletionTimestamp) || ns.status?.phase === 'Terminating',
      })),
    ),
    read(() =>
      everyPage(
        (page) => core.listServiceAccountForAllNamespaces(page),
        (sa) => ({ namespace: sa.metadata?.namespace ?? '', name: sa.metadata?.name ?? '' }),
      ),
    ),
    read(() =>
      everyPage(
        (page) => core.listSecretForAllNamespaces({ fieldSelector: `type=${WORKLOAD_SECRET_TYPE}`, ...page }),
        workloadSecretView,
      ),
    ),
  ]);
  return {
    caNamespace,
    ...(leaseName === undefined ? {} : { leaseName }),
    certificateAuthority,
    ...(lease === undefined ? {} : { lease }),
    namespaces,
    serviceAccounts,
    secrets,
  };
}

/** Items per list page: each page is reduced to what the report needs before the next is read. */
const LIST_PAGE_SIZE = 500;

/**
 * Lists in pages: at 100,000 ServiceAccounts one list of every workload Secret (keys and all) was
 * hundreds of MB in one string for the CLI to hold.
 */
export async function everyPage<T, V>(
  list: (page: {
    limit: number;
    _continue?: string;
  }) => Promise<{ items: T[]; metadata?: { _continue?: string } }>,
  view: (item: T) => V,
): Promise<V[]> {
  const views: V[] = [];
  let next: string | undefined;
  do {
    const page = await list({ limit: LIST_PAGE_SIZE, ...(next ? { _continue: next } : {}) });
    for (const item of page.items) views.push(view(item));
    next = page.metadata?._continue || undefined;
  } while (next);
  return views;
}

const dataOf = (secret: V1Secret, key: string) => Buffer.from(secret.data?.[key] ?? '', 'base64');

export function workloadSecretView(secret: V1Secret): WorkloadSecretView {
  let leaf: WorkloadSecretView['leaf'];
  try {
    const [first] = decodeCertificatesPem(dataOf(secret, 'cert-chain.pem'));
    leaf = first
      ? { notAfter: inspectCertificate(first).notAfter.getTime() }
      : { error: 'cert-chain.pem holds no certificate' };
  } catch (err) {
    leaf = { error: `cert-chain.pem cannot be read: ${(err as Error).message}` };
  }
  let rootFingerprints: string[] = [];
  try {
    rootFingerprints = decodeCertificatesPem(dataOf(secret, 'root-cert.pem')).map(
      (der) => inspectCertificate(der).fingerprintSha256,
    );
  } catch {
    // An unreadable bundle trusts nothing: the report says the active root is missing.
  }
  return {
    namespace: secret.metadata?.namespace ?? '',
    name: secret.metadata?.name ?? '',
    owned: secret.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE,
    leaf,
    rootFingerprints,
  };
}
