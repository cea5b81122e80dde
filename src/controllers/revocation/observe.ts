// What the caches keep of a CertificateRevocation: its spec as written and what its status says
// was revoked. Once Applied, the status is the record the CRL and the workload Secrets act on.
import type { KubernetesObject } from '@kubernetes/client-node';
import { normalizeSerialHex } from '../../pki/crl.js';

export const APPLIED = 'Applied';
export const REFUSED = 'Refused';

export interface RevokedCertificateStatus {
  serialNumber: string;
  notAfter: string;
  namespace?: string;
  serviceAccount?: string;
}

export interface RevocationCondition {
  type: typeof APPLIED | typeof REFUSED;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface RevocationStatus {
  observedGeneration?: number;
  revokedAt?: string;
  revokedCount?: number;
  revoked?: RevokedCertificateStatus[];
  conditions?: RevocationCondition[];
}

export interface CertificateRevocationObject extends KubernetesObject {
  spec?: unknown;
  status?: RevocationStatus;
}

export interface RevokedEntry {
  /** Canonical hex (normalizeSerialHex). */
  serial: string;
  notAfter: number;
  namespace?: string;
  serviceAccount?: string;
}

export interface RevocationView {
  uid: string;
  generation: number;
  createdAt: number;
  spec: unknown;
  /** Set once the controller decided; the decision is never revisited (the spec is immutable). */
  decided?: { applied: boolean; generation: number };
  revokedAt?: number;
  revoked: RevokedEntry[];
}

export function observeRevocation(obj: CertificateRevocationObject): RevocationView {
  const status = obj.status ?? {};
  const applied = status.conditions?.find((c) => c.type === APPLIED && c.status === 'True');
  const refused = status.conditions?.find((c) => c.type === REFUSED && c.status === 'True');
  const decision = applied ?? refused;
  const revoked: RevokedEntry[] = [];
  if (applied) {
    for (const entry of status.revoked ?? []) {
      const serial = normalizeSerialHex(entry.serialNumber);
      const notAfter = Date.parse(entry.notAfter);
      if (serial === undefined || Number.isNaN(notAfter)) continue;
      revoked.push({
        serial,
        notAfter,
        ...(entry.namespace !== undefined && { namespace: entry.namespace }),
        ...(entry.serviceAccount !== undefined && { serviceAccount: entry.serviceAccount }),
      });
    }
  }
  const revokedAt = Date.parse(status.revokedAt ?? '');
  return {
    uid: obj.metadata?.uid ?? '',
    generation: obj.metadata?.generation ?? 0,
    createdAt: new Date(obj.metadata?.creationTimestamp ?? 0).getTime(),
    spec: obj.spec,
    ...(decision && {
      decided: {
        applied: decision === applied,
        generation: decision.observedGeneration ?? status.observedGeneration ?? 0,
      },
    }),
    ...(!Number.isNaN(revokedAt) && { revokedAt }),
    revoked,
  };
}
