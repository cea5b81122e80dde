import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';

/** The admin kubeconfig of the control plane the global setup started. */
export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(inject('kubeconfig'));
  return kc;
}

export function statusCodeOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  return undefined;
}

/** Resolves with the API status code a call fails with; fails the test if the call succeeds. */
export async function expectApiError(call: Promise<unknown>): Promise<number> {
  try {
    await call;
  } catch (err) {
    const code = statusCodeOf(err);
    if (code === undefined) throw err;
    return code;
  }
  throw new Error('expected the API call to fail, but it succeeded');
}

/** A namespace of its own for one test; delete it with the returned function. */
export function createTestNamespace(
  core: CoreV1Api,
  prefix = 't',
  labels: Record<string, string> = {},
): Promise<{ name: string; remove: () => Promise<void> }> {
  return createNamedTestNamespace(core, `${prefix}-${randomBytes(4).toString('hex')}`, labels);
}

/** A namespace by its exact name (an unusual name under test); delete it with the returned function. */
export async function createNamedTestNamespace(
  core: CoreV1Api,
  name: string,
  labels: Record<string, string> = {},
): Promise<{ name: string; remove: () => Promise<void> }> {
  await core.createNamespace({
    body: { metadata: { name, labels: { 'alcazar.dev/test': 'true', ...labels } } },
  });
  return { name, remove: () => deleteNamespaceIfPresent(core, name) };
}

/** Deletes the namespace `name`; one that is already gone is fine. */
export async function deleteNamespaceIfPresent(core: CoreV1Api, name: string): Promise<void> {
  try {
    await core.deleteNamespace({ name });
  } catch (err) {
    if (statusCodeOf(err) !== 404) throw err;
  }
}

/**
 * A kubeconfig for the same API server, authenticated as the ServiceAccount namespace/name with a
 * fresh TokenRequest token (1 h), written (mode 0600) into `dir`. What a pod of that
 * ServiceAccount would get, so a controller run with it has exactly that RBAC identity.
 */
export async function serviceAccountKubeConfig(
  admin: KubeConfig,
  namespace: string,
  name: string,
  dir: string,
): Promise<{ path: string; kubeConfig: KubeConfig }> {
  const core = admin.makeApiClient(CoreV1Api);
  const request = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = request.status?.token;
  if (!token) throw new Error('the TokenRequest returned no token');
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('the admin kubeconfig has no cluster');
  const kubeConfig = new KubeConfig();
  const user = `${namespace}-${name}`;
  kubeConfig.loadFromOptions({
    clusters: [
      {
        name: 'test',
        server: cluster.server,
        caData: cluster.caData,
        caFile: cluster.caFile,
        skipTLSVerify: false,
      },
    ],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: 'test', user }],
    currentContext: user,
  });
  const path = join(dir, `${user}.kubeconfig`);
  writeFileSync(path, kubeConfig.exportConfig(), { mode: 0o600 });
  return { path, kubeConfig };
}
