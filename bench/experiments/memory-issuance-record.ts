// Experiment, not a fix: preloaded into the controller (node --import) to measure what the issuance
// record costs the CSR API. Every certificate issued over the API is recorded in a ConfigMap shard
// (alcazar-issued-NN: one read and one replace, awaited before the answer); here those shards live
// in the controller's memory instead, and every other ConfigMap call goes to the API server as usual.
import { ApiException, CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';

const PREFIX = 'alcazar-issued-';
const shards = new Map<string, V1ConfigMap>();
type Call = (request: { name?: string; namespace: string; body?: V1ConfigMap }) => Promise<V1ConfigMap>;
const api = CoreV1Api.prototype as unknown as Record<
  'readNamespacedConfigMap' | 'replaceNamespacedConfigMap' | 'createNamespacedConfigMap',
  Call
>;
const key = (namespace: string, name: string) => `${namespace}/${name}`;

const read = api.readNamespacedConfigMap;
api.readNamespacedConfigMap = function (this: CoreV1Api, request) {
  if (!request.name?.startsWith(PREFIX)) return read.call(this, request);
  const found = shards.get(key(request.namespace, request.name));
  return found
    ? Promise.resolve(structuredClone(found))
    : Promise.reject(new ApiException(404, 'not found (in-memory issuance record)', {}, {}));
};

for (const method of ['replaceNamespacedConfigMap', 'createNamespacedConfigMap'] as const) {
  const original = api[method];
  api[method] = function (this: CoreV1Api, request) {
    const name = request.name ?? request.body?.metadata?.name ?? '';
    if (!name.startsWith(PREFIX)) return original.call(this, request);
    shards.set(key(request.namespace, name), structuredClone(request.body!));
    return Promise.resolve(structuredClone(request.body!));
  };
}
