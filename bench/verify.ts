// Checks, from the API and independently of the controller's code, that every
// managed ServiceAccount has a usable istio.<sa> Secret: a leaf for the right
// SPIFFE ID and key algorithm, signed by the active CA, matching its key,
// valid now, and the root bundle holding the active root.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { Api } from './api.js';
import { CA_NAMESPACE } from './controller.js';
import { type KeyAlgorithm, MANAGED_SELECTOR, type ManagedServiceAccount } from './population.js';

interface SecretObject {
  metadata: { name: string; namespace: string };
  type?: string;
  data?: Record<string, string>;
}

export interface CaCertificate {
  pem: string;
  fingerprint: string;
  certificate: X509Certificate;
}

export interface Verification {
  expected: number;
  found: number;
  valid: number;
  /** Up to ten problems, for the log. */
  problems: string[];
  /** One valid Secret's data, reused by the API-server floor. */
  sample?: { type: string; data: Record<string, string> };
}

const decode = (data: Record<string, string> | undefined, key: string) =>
  Buffer.from(data?.[key] ?? '', 'base64').toString('utf8');

export async function activeCa(api: Api): Promise<CaCertificate> {
  const res = await api.call<SecretObject>(
    'GET',
    `/api/v1/namespaces/${CA_NAMESPACE}/secrets/istio-ca-secret`,
  );
  const pem = decode(res.body.data, 'ca-cert.pem');
  const certificate = new X509Certificate(pem);
  return { pem, fingerprint: certificate.fingerprint256, certificate };
}

function problemOf(
  secret: SecretObject,
  sa: ManagedServiceAccount,
  ca: CaCertificate,
  algorithm: KeyAlgorithm,
  trustDomain: string,
): string | undefined {
  if (secret.type !== 'istio.io/key-and-cert') return `type ${secret.type}`;
  const chain = decode(secret.data, 'cert-chain.pem');
  const leafPem = chain.slice(0, chain.indexOf('-----END CERTIFICATE-----') + 25);
  const leaf = new X509Certificate(leafPem);
  if (!leaf.verify(ca.certificate.publicKey)) return 'leaf not signed by the active CA';
  const key = createPrivateKey(decode(secret.data, 'key.pem'));
  if (!leaf.checkPrivateKey(key)) return 'key.pem does not match the leaf';
  const wantType = algorithm === 'ECDSA_P256' ? 'ec' : 'rsa';
  if (leaf.publicKey.asymmetricKeyType !== wantType) return `key type ${leaf.publicKey.asymmetricKeyType}`;
  const spiffe = `URI:spiffe://${trustDomain}/ns/${sa.namespace}/sa/${sa.name}`;
  if (!(leaf.subjectAltName ?? '').split(', ').includes(spiffe)) return `SAN ${leaf.subjectAltName}`;
  const now = Date.now();
  if (Date.parse(leaf.validFrom) > now || Date.parse(leaf.validTo) < now) return 'not valid now';
  const roots = decode(secret.data, 'root-cert.pem');
  if (!roots.replace(/\s/g, '').includes(ca.pem.replace(/\s/g, '')))
    return 'root-cert.pem lacks the active root';
  return undefined;
}

export async function verifyWorkloadSecrets(
  api: Api,
  serviceAccounts: readonly ManagedServiceAccount[],
  algorithm: KeyAlgorithm,
  trustDomain = 'cluster.local',
): Promise<Verification> {
  const ca = await activeCa(api);
  const { items } = await api.listAll<SecretObject>('/api/v1/secrets', { labelSelector: MANAGED_SELECTOR });
  const byName = new Map(items.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
  const result: Verification = { expected: serviceAccounts.length, found: 0, valid: 0, problems: [] };
  for (const sa of serviceAccounts) {
    const secret = byName.get(`${sa.namespace}/istio.${sa.name}`);
    if (!secret) {
      if (result.problems.length < 10) result.problems.push(`${sa.namespace}/istio.${sa.name}: missing`);
      continue;
    }
    result.found++;
    let problem: string | undefined;
    try {
      problem = problemOf(secret, sa, ca, algorithm, trustDomain);
    } catch (err) {
      problem = `unparsable: ${(err as Error).message}`;
    }
    if (problem) {
      if (result.problems.length < 10) result.problems.push(`${sa.namespace}/istio.${sa.name}: ${problem}`);
      continue;
    }
    result.valid++;
    result.sample ??= { type: secret.type!, data: secret.data! };
  }
  return result;
}
