// The content digest as the tests check it: the CA's authority loaded as the controller loads it,
// and whether a workload Secret's alcazar.dev/content-digest verifies under it.
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { loadSelfSigned, type SigningAuthority } from '../../../src/ca/authority.js';
import { contentDigestMatches } from '../../../src/ca/content-digest.js';
import { CONTENT_DIGEST_ANNOTATION } from '../../../src/model/names.js';
import { readSecret } from './workload.js';

/** The authority as the controller loads it, from the CA Secret it created. */
export async function caAuthority(core: CoreV1Api, caNamespace: string): Promise<SigningAuthority> {
  const secret = (await readSecret(core, caNamespace, 'istio-ca-secret')) as V1Secret;
  const data = Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]),
  );
  return loadSelfSigned(data, `${caNamespace}/istio-ca-secret`, { now: new Date(), minRemainingMs: 1 });
}

export function digestHolds(authority: SigningAuthority, secret: V1Secret): boolean {
  const bytes = (name: string) => Buffer.from(secret.data?.[name] ?? '', 'base64');
  return contentDigestMatches(
    authority,
    {
      'cert-chain.pem': bytes('cert-chain.pem'),
      'key.pem': bytes('key.pem'),
      'root-cert.pem': bytes('root-cert.pem'),
    },
    secret.metadata?.annotations?.[CONTENT_DIGEST_ANNOTATION],
  );
}
