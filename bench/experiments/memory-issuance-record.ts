// Experiment, not a fix: preloaded into the controller (node --import) to measure what the issuance
// record costs the CSR API. Every certificate issued over the API is recorded in a ConfigMap shard
// (alcazar-issued-NN: one merge patch, awaited before the answer); here those shards live in the
// controller's memory instead, and every other request goes to the API server as usual.
import { ApiException } from '@kubernetes/client-node';
import { RawApi } from '../../src/kube/raw.js';

const SHARD = /\/configmaps(?:\/(alcazar-issued-\d\d))?$/;
const shards = new Map<string, { metadata: object; data: Record<string, string> }>();
const original = RawApi.prototype.request;

RawApi.prototype.request = function <T>(this: RawApi, ...args: Parameters<RawApi['request']>): Promise<T> {
  const [method, path, body] = args;
  const match = SHARD.exec(path.split('?')[0]!);
  const name =
    match?.[1] ??
    (method === 'POST' ? (body as { metadata?: { name?: string } })?.metadata?.name : undefined);
  if (!match || !name?.startsWith('alcazar-issued-')) return original.apply(this, args) as Promise<T>;
  const shard = shards.get(path.replace(/\/configmaps.*$/, `/${name}`));
  const notFound = () =>
    Promise.reject(new ApiException(404, 'not found (in-memory issuance record)', {}, {}));
  if (method === 'GET') return shard ? Promise.resolve(structuredClone(shard) as T) : notFound();
  const key = path.replace(/\/configmaps.*$/, `/${name}`);
  if (method === 'POST') {
    const created = structuredClone(body) as { metadata: object; data: Record<string, string> };
    shards.set(key, created);
    return Promise.resolve(structuredClone(created) as T);
  }
  if (!shard) return notFound();
  const patch = (body as { data?: Record<string, string | null> }).data ?? {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete shard.data[k];
    else shard.data[k] = v;
  }
  return Promise.resolve(structuredClone(shard) as T);
};
