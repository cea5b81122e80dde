// The names alcazar shares with the cluster: the objects it writes, the labels
// and annotations it reads and sets. Every layer imports them from here; this
// module imports nothing.

/** Every object alcazar creates carries this label; it never writes one without it. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'alcazar';
export const MANAGED_BY_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

// Workload Secrets (Citadel's format).
export const WORKLOAD_SECRET_TYPE = 'istio.io/key-and-cert';
export const WORKLOAD_SECRET_PREFIX = 'istio.';
export const DATA_KEYS = ['cert-chain.pem', 'key.pem', 'root-cert.pem'] as const;
/** The ServiceAccount a workload Secret belongs to. */
export const SERVICE_ACCOUNT_ANNOTATION = 'istio.io/service-account.name';
/** Extra DNS SANs a ServiceAccount asks for: "a.example.com,b.svc". */
export const DNS_NAMES_ANNOTATION = 'alcazar.dev/dns-names';
/**
 * A keyed MAC alcazar writes over the leaf and key.pem (src/ca/content-digest.ts): when it still
 * verifies, both are exactly as alcazar wrote them with the authority signing now.
 */
export const CONTENT_DIGEST_ANNOTATION = 'alcazar.dev/content-digest';

export function workloadSecretName(serviceAccount: string): string {
  return `${WORKLOAD_SECRET_PREFIX}${serviceAccount}`;
}

/** The ServiceAccount a workload Secret name belongs to, or undefined for other names. */
export function serviceAccountOfSecret(secretName: string): string | undefined {
  return secretName.startsWith(WORKLOAD_SECRET_PREFIX) && secretName.length > WORKLOAD_SECRET_PREFIX.length
    ? secretName.slice(WORKLOAD_SECRET_PREFIX.length)
    : undefined;
}

export function spiffeIdFor(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

// The trust bundle ConfigMap istiod wrote and sidecars read the mesh's roots from.
export const TRUST_BUNDLE_NAME = 'istio-ca-root-cert';
export const TRUST_BUNDLE_KEY = 'root-cert.pem';
export const CONFIG_LABEL = 'istio.io/config';

// The CA Secrets in the CA namespace.
export const SELF_SIGNED_SECRET = 'istio-ca-secret';
export const SELF_SIGNED_SECRET_TYPE = 'istio.io/ca-root';
export const PLUGGED_IN_SECRET = 'cacerts';

// The CertificateAuthority resource (cluster-scoped, one, named `default`).
export const CERTIFICATE_AUTHORITY_NAME = 'default';
/** Set this annotation on the CertificateAuthority to a new value to rotate the root now. */
export const ROTATE_REQUEST_ANNOTATION = 'alcazar.dev/rotate-root';

// Root rotation state, persisted as annotations of istio-ca-secret.
export const PHASE_ANNOTATION = 'alcazar.dev/rotation-phase';
export const PHASE_SINCE_ANNOTATION = 'alcazar.dev/rotation-phase-since';
export const STARTED_ANNOTATION = 'alcazar.dev/rotation-started-at';
/** The last on-demand request handled, copied from the CertificateAuthority's annotation. */
export const HANDLED_REQUEST_ANNOTATION = 'alcazar.dev/rotation-request';
