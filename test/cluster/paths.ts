import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the local control plane keeps its state, certificates, kubeconfig and logs. */
export function clusterDir(): string {
  return process.env.ALCAZAR_CLUSTER_DIR ?? join(repoRoot, '.local', 'cluster');
}

export function kubeconfigPath(dir = clusterDir()): string {
  return join(dir, 'kubeconfig');
}
