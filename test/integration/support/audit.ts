// The end state a fault test asserts, checked in-process (openssl per Secret
// is too slow for hundreds): every ServiceAccount of the audited namespaces has
// exactly one workload Secret that chains to the CA's root, names the right
// SPIFFE ID, holds the matching key and belongs to that ServiceAccount (uid);
// no workload Secret outlives its ServiceAccount; every namespace publishes the
// trust bundle. Problems are described without key material.
import { createHash } from 'node:crypto';
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import {
  decodeCertificatesPem,
  inspectCertificate,
  keyMatchesCertificate,
  parsePrivateKeyPem,
  verifyChain,
} from '../../../src/pki/index.js';
import { readSecret } from './workload.js';

const MANAGED = 'app.kubernetes.io/managed-by=alcazar';
const SA_ANNOTATION = 'istio.io/service-account.name';
const DATA_KEYS = ['cert-chain.pem', 'key.pem', 'root-cert.pem'];

export interface CaRoots {
  /** The root bundle workload Secrets must carry and chain to (root-cert.pem of istio-ca-secret, or ca-cert.pem). */
  bundlePem: string;
  /** The certificate that must have signed every leaf. */
  signerDer: Buffer;
}

export interface Audit {
  namespaces: number;
  serviceAccounts: number;
  secrets: number;
  problems: string[];
  /** sha256 of every key.pem value (base64, as stored), for the key-leak scan. */
  keyDigests: string[];
}

const decoded = (secret: V1Secret, key: string) => Buffer.from(secret.data?.[key] ?? '', 'base64');

/** The root bundle and signer of a self-signed CA, read from istio-ca-secret. */
export async function caRootsOf(core: CoreV1Api, caNamespace: string): Promise<CaRoots> {
  const secret = await readSecret(core, caNamespace, 'istio-ca-secret');
  if (!secret) throw new Error(`${caNamespace}/istio-ca-secret does not exist`);
  const caCert = decoded(secret, 'ca-cert.pem');
  const bundle = secret.data?.['root-cert.pem'] ? decoded(secret, 'root-cert.pem') : caCert;
  return { bundlePem: bundle.toString('utf8'), signerDer: decodeCertificatesPem(caCert)[0]! };
}

export const digestOf = (value: string) => createHash('sha256').update(value).digest('hex');

/** What is wrong with one workload Secret for `serviceAccount` (uid), or nothing. */
export function problemsOf(
  secret: V1Secret,
  namespace: string,
  serviceAccount: string,
  uid: string | undefined,
  ca: CaRoots,
  trustDomain = 'cluster.local',
): string[] {
  const where = `${namespace}/${secret.metadata?.name}`;
  const problems: string[] = [];
  if (secret.type !== 'istio.io/key-and-cert') problems.push(`${where}: type ${secret.type}`);
  if (secret.metadata?.annotations?.[SA_ANNOTATION] !== serviceAccount)
    problems.push(`${where}: annotation names ${secret.metadata?.annotations?.[SA_ANNOTATION]}`);
  const owners = secret.metadata?.ownerReferences ?? [];
  if (
    uid !== undefined &&
    (owners.length !== 1 || owners[0]?.uid !== uid || owners[0]?.name !== serviceAccount)
  )
    problems.push(`${where}: ownerReferences do not name ServiceAccount ${serviceAccount} (uid ${uid})`);
  const keys = Object.keys(secret.data ?? {}).sort();
  if (keys.join() !== DATA_KEYS.join()) problems.push(`${where}: data keys ${keys.join(',')}`);
  try {
    const [leaf, ...intermediates] = decodeCertificatesPem(decoded(secret, 'cert-chain.pem'));
    if (!leaf) throw new Error('no certificate in cert-chain.pem');
    const root = decoded(secret, 'root-cert.pem').toString('utf8');
    if (root !== ca.bundlePem) problems.push(`${where}: root-cert.pem is not the CA's bundle`);
    const chain = verifyChain({ leaf, intermediates, roots: ca.bundlePem, at: new Date() });
    if (!chain.ok) problems.push(`${where}: chain does not verify: ${chain.reason}: ${chain.message}`);
    const info = inspectCertificate(leaf);
    if (info.issuer !== inspectCertificate(ca.signerDer).subject)
      problems.push(`${where}: issued by ${info.issuer}`);
    const id = `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
    if (info.uris.length !== 1 || info.uris[0] !== id)
      problems.push(`${where}: URI SANs ${info.uris.join(',')}`);
    if (!keyMatchesCertificate(parsePrivateKeyPem(decoded(secret, 'key.pem')), leaf))
      problems.push(`${where}: key.pem does not match the certificate`);
  } catch (err) {
    problems.push(`${where}: unreadable: ${(err as Error).message}`);
  }
  return problems;
}

/** Audits the workload Secrets and trust bundles of these (managed) namespaces. */
export async function auditNamespaces(
  core: CoreV1Api,
  namespaces: readonly string[],
  ca: CaRoots,
  opts: { trustBundles?: boolean } = {},
): Promise<Audit> {
  const audit: Audit = { namespaces: 0, serviceAccounts: 0, secrets: 0, problems: [], keyDigests: [] };
  const limit = 4;
  const queue = [...namespaces];
  const worker = async () => {
    for (let ns = queue.shift(); ns !== undefined; ns = queue.shift())
      await auditNamespace(core, ns, ca, audit, opts);
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return audit;
}

async function auditNamespace(
  core: CoreV1Api,
  namespace: string,
  ca: CaRoots,
  audit: Audit,
  opts: { trustBundles?: boolean },
): Promise<void> {
  const [serviceAccounts, secrets] = await Promise.all([
    core.listNamespacedServiceAccount({ namespace }),
    core.listNamespacedSecret({ namespace, labelSelector: MANAGED }),
  ]);
  audit.namespaces++;
  const byName = new Map(secrets.items.map((s) => [s.metadata?.name ?? '', s]));
  const uids = new Map(serviceAccounts.items.map((sa) => [sa.metadata?.name ?? '', sa.metadata?.uid]));
  for (const [sa, uid] of uids) {
    audit.serviceAccounts++;
    const secret = byName.get(`istio.${sa}`);
    if (!secret) {
      audit.problems.push(`${namespace}/istio.${sa}: missing`);
      continue;
    }
    audit.problems.push(...problemsOf(secret, namespace, sa, uid, ca));
  }
  for (const secret of secrets.items) {
    audit.secrets++;
    if (secret.data?.['key.pem']) audit.keyDigests.push(digestOf(secret.data['key.pem']));
    const name = secret.metadata?.name ?? '';
    const sa = name.startsWith('istio.') ? name.slice('istio.'.length) : undefined;
    if (!sa || !uids.has(sa))
      audit.problems.push(`${namespace}/${name}: no ServiceAccount ${sa ?? '?'} (orphan)`);
  }
  if (opts.trustBundles !== false) {
    try {
      const cm = await core.readNamespacedConfigMap({ namespace, name: 'istio-ca-root-cert' });
      if (cm.data?.['root-cert.pem'] !== ca.bundlePem)
        audit.problems.push(`${namespace}/istio-ca-root-cert: not the CA's bundle`);
    } catch {
      audit.problems.push(`${namespace}/istio-ca-root-cert: missing`);
    }
  }
}

/** A short, readable summary of an audit for a failing expectation. */
export function describeAudit(audit: Audit): string {
  const shown = audit.problems.slice(0, 20).join('\n  ');
  const more = audit.problems.length > 20 ? `\n  … and ${audit.problems.length - 20} more` : '';
  return `${audit.problems.length} problems over ${audit.serviceAccounts} ServiceAccounts / ${audit.secrets} Secrets in ${audit.namespaces} namespaces:\n  ${shown}${more}`;
}
