// Reading the API for `alcazar inspect`: the workload Secret and what judging it needs, by GETs only.
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1ConfigMap,
  type V1Namespace,
  type V1Secret,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { CRL_CONFIGMAP_NAME } from '../../controllers/crl/observe.js';
import { type Read, readOptional } from '../../kube/client.js';
import { PLUGGED_IN_SECRET, SELF_SIGNED_SECRET } from '../../model/names.js';
import { readCertificateAuthority } from '../certificate-authority.js';
import type { InspectTarget } from './args.js';
import { explainMissingSecret } from './missing.js';

export type { Read };

const read = readOptional;

export type CaSecretName = typeof SELF_SIGNED_SECRET | typeof PLUGGED_IN_SECRET;

/** Everything the report is built from, as read from the API. Holds key material: never print it. */
export interface InspectObservation {
  secret: V1Secret;
  caNamespace: string;
  /** Names no workload may have (alcazar's own); default defaultReservedDnsNames(caNamespace). */
  reservedDnsNames?: readonly string[];
  certificateAuthority: Read<{ spec?: unknown }>;
  caSecrets: Record<CaSecretName, Read<V1Secret>>;
  /** Read only when the Secret belongs to a ServiceAccount. */
  serviceAccount?: Read<V1ServiceAccount>;
  namespace: Read<V1Namespace>;
  /** The CRL alcazar publishes (ConfigMap istio-ca-crl in the CA namespace). */
  crl?: Read<V1ConfigMap>;
}

export type GatherResult =
  | { status: 'found'; observation: InspectObservation }
  | { status: 'notFound'; message: string }
  | { status: 'unreadable'; message: string };

/** Where the controller keeps its state: as its --ca-namespace, --lease-name and reserved names say. */
export interface ControllerSettings {
  caNamespace: string;
  leaseName: string;
  reservedDnsNames: readonly string[];
}

export async function gatherObservation(
  kubeConfig: KubeConfig,
  target: InspectTarget,
  settings: ControllerSettings,
  now: Date = new Date(),
): Promise<GatherResult> {
  const { caNamespace } = settings;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const { namespace, secretName, serviceAccount } = target;
  const secretRef = `Secret ${namespace}/${secretName}`;
  const readSa = () =>
    serviceAccount === undefined
      ? undefined
      : read(() => core.readNamespacedServiceAccount({ namespace, name: serviceAccount }));

  const secret = await read(() => core.readNamespacedSecret({ namespace, name: secretName }));
  if (!secret.ok) return { status: 'unreadable', message: `cannot read ${secretRef}: ${secret.error}` };
  if (!secret.value)
    return {
      status: 'notFound',
      message: await notFoundMessage(kubeConfig, secretRef, target, settings, readSa(), now),
    };

  const [certificateAuthority, selfSigned, pluggedIn, sa, ns, crl] = await Promise.all([
    readCertificateAuthority<{ spec?: unknown; status?: { conditions?: [] } }>(kubeConfig),
    read(() => core.readNamespacedSecret({ namespace: caNamespace, name: SELF_SIGNED_SECRET })),
    read(() => core.readNamespacedSecret({ namespace: caNamespace, name: PLUGGED_IN_SECRET })),
    readSa(),
    read(() => core.readNamespace({ name: namespace })),
    read(() => core.readNamespacedConfigMap({ namespace: caNamespace, name: CRL_CONFIGMAP_NAME })),
  ]);
  return {
    status: 'found',
    observation: {
      secret: secret.value,
      caNamespace,
      reservedDnsNames: settings.reservedDnsNames,
      certificateAuthority,
      caSecrets: { [SELF_SIGNED_SECRET]: selfSigned, [PLUGGED_IN_SECRET]: pluggedIn },
      ...(sa && { serviceAccount: sa }),
      namespace: ns,
      crl,
    },
  };
}

/** "Secret shop/istio.cart not found", with what stands in the way of its being written. */
async function notFoundMessage(
  kubeConfig: KubeConfig,
  secretRef: string,
  target: InspectTarget,
  { caNamespace, leaseName }: ControllerSettings,
  sa: Promise<Read<V1ServiceAccount>> | undefined,
  now: Date,
): Promise<string> {
  const message = `${secretRef} not found`;
  if (!sa || target.serviceAccount === undefined) return message;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const coordination = kubeConfig.makeApiClient(CoordinationV1Api);
  const [saRead, workloadNamespace, caNamespaceObject, lease, certificateAuthority] = await Promise.all([
    sa,
    read(() => core.readNamespace({ name: target.namespace })),
    read(() => core.readNamespace({ name: caNamespace })),
    read(() => coordination.readNamespacedLease({ namespace: caNamespace, name: leaseName })),
    readCertificateAuthority<{ spec?: unknown; status?: { conditions?: [] } }>(kubeConfig),
  ]);
  const hint = explainMissingSecret(
    {
      namespace: target.namespace,
      serviceAccount: target.serviceAccount,
      caNamespace,
      leaseName,
      sa: saRead,
      workloadNamespace,
      caNamespaceObject,
      lease,
      certificateAuthority,
    },
    now,
  );
  return `${message}: ${hint}`;
}
