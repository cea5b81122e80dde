// Reading the API for `alcazar inspect`: the workload Secret and what judging it needs, by GETs only.
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1ConfigMap,
  type V1Namespace,
  type V1Secret,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { PLUGGED_IN_SECRET, SELF_SIGNED_SECRET } from '../../ca/authority.js';
import { CERTIFICATE_AUTHORITY_NAME, certificateAuthorityResource } from '../../config/ca-resource.js';
import { CRL_CONFIGMAP_NAME } from '../../controllers/crl/observe.js';
import { describeApiError, isNotFound } from '../../kube/client.js';
import type { InspectTarget } from './args.js';

/** One GET: the object, `undefined` when it does not exist, or why it could not be read. */
export type Read<T> = { ok: true; value: T | undefined } | { ok: false; error: string };

async function read<T>(call: () => Promise<T>): Promise<Read<T>> {
  try {
    return { ok: true, value: await call() };
  } catch (err) {
    if (isNotFound(err)) return { ok: true, value: undefined };
    return { ok: false, error: describeApiError(err) };
  }
}

export type CaSecretName = typeof SELF_SIGNED_SECRET | typeof PLUGGED_IN_SECRET;

/** Everything the report is built from, as read from the API. Holds key material: never print it. */
export interface InspectObservation {
  secret: V1Secret;
  caNamespace: string;
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

export async function gatherObservation(
  kubeConfig: KubeConfig,
  target: InspectTarget,
  caNamespace: string,
): Promise<GatherResult> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
  const { namespace, secretName, serviceAccount } = target;
  const secretRef = `Secret ${namespace}/${secretName}`;
  const readSa = () =>
    serviceAccount === undefined
      ? undefined
      : read(() => core.readNamespacedServiceAccount({ namespace, name: serviceAccount }));

  const secret = await read(() => core.readNamespacedSecret({ namespace, name: secretName }));
  if (!secret.ok) return { status: 'unreadable', message: `cannot read ${secretRef}: ${secret.error}` };
  if (!secret.value)
    return { status: 'notFound', message: await notFoundMessage(secretRef, target, readSa()) };

  const [certificateAuthority, selfSigned, pluggedIn, sa, ns, crl] = await Promise.all([
    read(
      () =>
        customObjects.getClusterCustomObject({
          group: certificateAuthorityResource.group,
          version: certificateAuthorityResource.version,
          plural: certificateAuthorityResource.plural,
          name: CERTIFICATE_AUTHORITY_NAME,
        }) as Promise<{ spec?: unknown }>,
    ),
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
      certificateAuthority,
      caSecrets: { [SELF_SIGNED_SECRET]: selfSigned, [PLUGGED_IN_SECRET]: pluggedIn },
      ...(sa && { serviceAccount: sa }),
      namespace: ns,
      crl,
    },
  };
}

/** "Secret shop/istio.cart not found", with a hint about the ServiceAccount when there is one. */
async function notFoundMessage(
  secretRef: string,
  target: InspectTarget,
  sa: Promise<Read<V1ServiceAccount>> | undefined,
): Promise<string> {
  const message = `${secretRef} not found`;
  const saRead = await sa;
  if (!saRead?.ok) return message;
  const saRef = `ServiceAccount ${target.namespace}/${target.serviceAccount}`;
  return saRead.value
    ? `${message} (${saRef} exists: is the controller running, and is namespace ${target.namespace} managed?)`
    : `${message} (${saRef} does not exist either)`;
}
