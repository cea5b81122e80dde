// Why a workload Secret does not exist: the first thing on the path from "ServiceAccount created"
// to "Secret written" that is not in place, found by GETs only and judged by a pure function.
import type { V1Lease, V1Namespace, V1ServiceAccount } from '@kubernetes/client-node';
import { CERTIFICATE_AUTHORITY_NAME } from '../../config/ca-resource.js';
import { type CaConfig, defaultCaConfig, parseCertificateAuthoritySpec } from '../../config/ca-spec.js';
import { isManagedNamespace } from '../../controllers/workload-secrets/targeting.js';
import type { Read } from './gather.js';

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

/** What the explanation is built from; each a GET that may have failed. */
export interface MissingSecretFacts {
  namespace: string;
  serviceAccount: string;
  caNamespace: string;
  leaseName: string;
  sa: Read<V1ServiceAccount>;
  workloadNamespace: Read<V1Namespace>;
  caNamespaceObject: Read<V1Namespace>;
  lease: Read<V1Lease>;
  certificateAuthority: Read<{ spec?: unknown; status?: { conditions?: Condition[] } }>;
}

/** The hint shown after "Secret ns/istio.sa not found", most basic cause first. */
export function explainMissingSecret(facts: MissingSecretFacts, now: Date): string {
  const saRef = `ServiceAccount ${facts.namespace}/${facts.serviceAccount}`;
  if (facts.sa.ok && !facts.sa.value) return `${saRef} does not exist either`;
  if (facts.caNamespaceObject.ok && !facts.caNamespaceObject.value) {
    return (
      `the CA namespace ${facts.caNamespace} does not exist, so no controller can lead or keep a root there: ` +
      `create it (kubectl create namespace ${facts.caNamespace}; kubectl apply -f manifests/ does) ` +
      'or pass --ca-namespace if alcazar runs elsewhere'
    );
  }
  const leaseProblem = describeLease(facts, now);
  if (leaseProblem) return leaseProblem;
  const config = configOf(facts.certificateAuthority);
  const ns = facts.workloadNamespace;
  if (ns.ok && ns.value) {
    const labels = ns.value.metadata?.labels ?? {};
    if (!isManagedNamespace(facts.namespace, labels, config.namespaces, facts.caNamespace)) {
      return (
        `namespace ${facts.namespace} is not managed (labels ca.istio.io/override, ca.istio.io/env, ` +
        'or spec.namespaces of the CertificateAuthority decide)'
      );
    }
  }
  const ready = readyCondition(facts.certificateAuthority);
  if (ready && ready.status !== 'True') {
    return `CertificateAuthority ${CERTIFICATE_AUTHORITY_NAME} is not Ready: ${ready.reason ?? 'no reason'}: ${ready.message ?? ''}`.trim();
  }
  return `${saRef} exists and its namespace is managed: look at its Events (kubectl -n ${facts.namespace} describe serviceaccount ${facts.serviceAccount}) and the controller's logs`;
}

function describeLease(facts: MissingSecretFacts, now: Date): string | undefined {
  if (!facts.lease.ok) return undefined;
  const ref = `Lease ${facts.caNamespace}/${facts.leaseName}`;
  const lease = facts.lease.value;
  const spec = lease?.spec;
  if (!spec?.holderIdentity) {
    return `no controller holds the ${ref}: is the controller running? (without leader election there is no Lease; then look at its logs)`;
  }
  const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : Number.NaN;
  const durationMs = (spec.leaseDurationSeconds ?? 15) * 1000;
  if (Number.isNaN(renewed) || now.getTime() - renewed > durationMs) {
    const ago = Number.isNaN(renewed)
      ? 'never renewed'
      : `last renewed ${Math.round((now.getTime() - renewed) / 1000)} s ago`;
    return `the ${ref} held by ${spec.holderIdentity} has expired (${ago}): is the controller running?`;
  }
  return undefined;
}

function configOf(read: MissingSecretFacts['certificateAuthority']): CaConfig {
  if (!read.ok || !read.value) return defaultCaConfig();
  const parsed = parseCertificateAuthoritySpec(read.value.spec);
  return parsed.ok ? parsed.config : defaultCaConfig();
}

function readyCondition(read: MissingSecretFacts['certificateAuthority']): Condition | undefined {
  if (!read.ok) return undefined;
  return read.value?.status?.conditions?.find((c) => c.type === 'Ready');
}
