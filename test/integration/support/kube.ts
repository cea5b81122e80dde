import { randomBytes } from 'node:crypto';
import { ApiException, type CoreV1Api, KubeConfig } from '@kubernetes/client-node';
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
export async function createTestNamespace(
  core: CoreV1Api,
  prefix = 't',
  labels: Record<string, string> = {},
): Promise<{ name: string; remove: () => Promise<void> }> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await core.createNamespace({
    body: { metadata: { name, labels: { 'alcazar.dev/test': 'true', ...labels } } },
  });
  return {
    name,
    remove: async () => {
      try {
        await core.deleteNamespace({ name });
      } catch (err) {
        if (statusCodeOf(err) !== 404) throw err;
      }
    },
  };
}
