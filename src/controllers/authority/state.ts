// What the authority controller publishes, and what it reads the CA Secrets as.
import type { V1Secret } from '@kubernetes/client-node';
import type { SigningAuthority } from '../../ca/authority.js';

export type AuthorityState =
  | {
      status: 'ready';
      authority: SigningAuthority;
      /** The resourceVersion of the CA Secret it was loaded from. */
      loadedFrom?: string;
    }
  | { status: 'failed'; reason: string; message: string }
  | { status: 'pending'; message: string };

export interface CaSecretView {
  uid: string;
  resourceVersion: string;
  type: string;
  annotations: Record<string, string>;
  data: Record<string, Buffer>;
}

export function caSecretView(secret: V1Secret): CaSecretView {
  return {
    uid: secret.metadata?.uid ?? '',
    resourceVersion: secret.metadata?.resourceVersion ?? '',
    type: secret.type ?? '',
    annotations: secret.metadata?.annotations ?? {},
    data: Object.fromEntries(
      Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]),
    ),
  };
}
