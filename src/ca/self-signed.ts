// A new self-signed root for istio-ca-secret. Only ever used to create that
// Secret when it does not exist: an existing root is never replaced here.
import { createSelfSignedRoot, generateKeyPair, type KeyAlgorithm, privateKeyToPem } from '../pki/index.js';

export interface RootRequest {
  trustDomain: string;
  keyAlgorithm: KeyAlgorithm;
  ttlMs: number;
  now: Date;
}

/** Data for istio-ca-secret: ca-cert.pem and ca-key.pem. Holds a private key: never log it. */
export async function generateRootData(request: RootRequest): Promise<Record<string, string>> {
  const keys = await generateKeyPair(request.keyAlgorithm);
  const root = await createSelfSignedRoot({
    privateKey: keys.privateKey,
    publicKey: keys.publicKey,
    // Subject O=<trust domain>, as Citadel's roots had: the Issuer of every leaf stays the same across rotations.
    organization: request.trustDomain,
    notBefore: new Date(request.now.getTime() - 60_000),
    notAfter: new Date(request.now.getTime() + request.ttlMs),
  });
  return { 'ca-cert.pem': root.pem, 'ca-key.pem': privateKeyToPem(keys.privateKey) };
}
