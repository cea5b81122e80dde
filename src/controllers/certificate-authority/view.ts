// The CertificateAuthority as the shared cache holds it.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { CaStatus } from './status.js';

export interface CertificateAuthorityObject extends KubernetesObject {
  spec?: unknown;
  status?: CaStatus;
}

export interface CaResourceView {
  generation: number;
  annotations: Record<string, string>;
  spec: unknown;
  status: CaStatus | undefined;
}

export function caResourceView(obj: CertificateAuthorityObject): CaResourceView {
  return {
    generation: obj.metadata?.generation ?? 0,
    annotations: obj.metadata?.annotations ?? {},
    spec: obj.spec,
    status: obj.status,
  };
}
