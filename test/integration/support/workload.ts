// Reading workload Secrets and driving the CertificateAuthority in tests.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CoreV1Api,
  type CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Secret,
} from '@kubernetes/client-node';
import { inspectCertificate } from '../../../src/pki/index.js';
import { decodeCertificatesPem } from '../../../src/pki/pem.js';
import { statusCodeOf } from './kube.js';
import { waitFor } from './wait.js';

export interface WorkloadPems {
  secret: V1Secret;
  certChain: string;
  key: string;
  root: string;
}

export function pemsOf(secret: V1Secret): WorkloadPems {
  const get = (k: string) => Buffer.from(secret.data?.[k] ?? '', 'base64').toString('utf8');
  return { secret, certChain: get('cert-chain.pem'), key: get('key.pem'), root: get('root-cert.pem') };
}

export async function readSecret(
  core: CoreV1Api,
  namespace: string,
  name: string,
): Promise<V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ namespace, name });
  } catch (err) {
    if (statusCodeOf(err) === 404) return undefined;
    throw err;
  }
}

/** Waits for istio.<sa> to exist and satisfy `accept` (default: has a certificate). */
export function waitForWorkloadSecret(
  core: CoreV1Api,
  namespace: string,
  serviceAccount: string,
  accept: (secret: V1Secret) => boolean = (s) => Boolean(s.data?.['cert-chain.pem']),
  timeoutMs = 30_000,
): Promise<V1Secret> {
  return waitFor(
    `Secret ${namespace}/istio.${serviceAccount}`,
    async () => {
      const secret = await readSecret(core, namespace, `istio.${serviceAccount}`);
      return secret && accept(secret) ? secret : undefined;
    },
    { timeoutMs },
  );
}

export function waitForSecretGone(core: CoreV1Api, namespace: string, name: string, timeoutMs = 30_000) {
  return waitFor(
    `Secret ${namespace}/${name} to be deleted`,
    async () => (await readSecret(core, namespace, name)) === undefined,
    {
      timeoutMs,
    },
  );
}

export function leafOf(secret: V1Secret) {
  const [leaf] = decodeCertificatesPem(pemsOf(secret).certChain);
  return inspectCertificate(leaf!);
}

/** Runs `openssl verify` on the Secret's chain against its root-cert.pem; returns openssl's output. */
export function opensslVerify(secret: V1Secret): string {
  const dir = mkdtempSync(join(tmpdir(), 'alcazar-verify-'));
  try {
    const { certChain, root } = pemsOf(secret);
    const blocks = certChain.split(/(?<=-----END CERTIFICATE-----\n)/).filter((b) => b.trim());
    writeFileSync(join(dir, 'leaf.pem'), blocks[0]!);
    writeFileSync(join(dir, 'chain.pem'), blocks.slice(1).join('') || '\n');
    writeFileSync(join(dir, 'root.pem'), root);
    const args = ['verify', '-x509_strict', '-CAfile', join(dir, 'root.pem')];
    if (blocks.length > 1) args.push('-untrusted', join(dir, 'chain.pem'));
    args.push(join(dir, 'leaf.pem'));
    return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const caResource = {
  group: 'alcazar.dev',
  version: 'v1alpha1',
  plural: 'certificateauthorities',
  name: 'default',
};

/**
 * Creates or replaces the CertificateAuthority `default` with this spec. It reads and then replaces,
 * and the controller's status writes bump the resourceVersion in between: a 409 means "read again".
 */
export async function setCertificateAuthoritySpec(
  api: CustomObjectsApi,
  spec: Record<string, unknown>,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await replaceCertificateAuthoritySpec(api, spec);
    } catch (err) {
      if (statusCodeOf(err) !== 409 || attempt >= 10) throw err;
    }
  }
}

async function replaceCertificateAuthoritySpec(
  api: CustomObjectsApi,
  spec: Record<string, unknown>,
): Promise<void> {
  const body = {
    apiVersion: 'alcazar.dev/v1alpha1',
    kind: 'CertificateAuthority',
    metadata: { name: 'default' },
    spec,
  };
  try {
    const existing = (await api.getClusterCustomObject(caResource)) as {
      metadata: { resourceVersion: string };
    };
    await api.replaceClusterCustomObject({
      ...caResource,
      body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } },
    });
  } catch (err) {
    if (statusCodeOf(err) !== 404) throw err;
    await api.createClusterCustomObject({ ...caResource, body });
  }
}

export async function deleteCertificateAuthority(api: CustomObjectsApi): Promise<void> {
  try {
    await api.deleteClusterCustomObject(caResource);
  } catch (err) {
    if (statusCodeOf(err) !== 404) throw err;
  }
}

export async function getCertificateAuthority(api: CustomObjectsApi): Promise<{
  metadata: { generation: number };
  spec: Record<string, unknown>;
  status?: {
    observedGeneration?: number;
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
    [k: string]: unknown;
  };
}> {
  return (await api.getClusterCustomObject(caResource)) as never;
}

export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/**
 * Sets annotations on the CertificateAuthority `default` by merge patch, as an operator asks for a
 * root rotation (alcazar.dev/rotate-root) or accepts a new root (alcazar.dev/accept-new-root).
 */
export async function annotateCertificateAuthority(
  api: CustomObjectsApi,
  annotations: Record<string, string>,
): Promise<void> {
  await api.patchClusterCustomObject({ ...caResource, body: { metadata: { annotations } } }, mergePatch);
}
