// Faults the integration tests inject into the local control plane:
// restarting kube-apiserver, and compacting etcd's history through its v3
// HTTP/JSON gateway so that old resourceVersions are gone for good.
import { type ClusterState, startComponent, stopComponent } from './controlplane.js';

/**
 * Restarts kube-apiserver with its standard flags (stopComponent + startComponent).
 * `graceMs` bounds the wait after SIGTERM before SIGKILL.
 */
export async function restartApiserver(state: ClusterState, graceMs = 3_000): Promise<void> {
  await stopComponent(state, 'kube-apiserver', graceMs);
  await startComponent(state, 'kube-apiserver');
}

async function etcdPost<T>(state: ClusterState, path: string, body: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${state.ports.etcdClient}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

/** etcd's current revision. */
export async function etcdRevision(state: ClusterState): Promise<number> {
  // A range over a key that does not exist still carries the store's revision in its header.
  const key = Buffer.from('/alcazar-test/revision-probe').toString('base64');
  const res = await etcdPost<{ header: { revision: string } }>(state, '/v3/kv/range', { key });
  return Number(res.header.revision);
}

/** Compacts etcd's history up to `revision`: reads and watches from an older revision fail. */
export async function compactEtcd(state: ClusterState, revision: number): Promise<void> {
  await etcdPost(state, '/v3/kv/compaction', { revision: String(revision), physical: true });
}
