// An API server in memory for unit tests of controllers: list, watch, create,
// read, replace, merge-patch and delete of namespaced and cluster objects,
// with resourceVersions, uids, preconditions (409), NotFound (404), the
// Forbidden (403) a terminating namespace answers to creates, and injected
// failures, and metadata-only lists and watches (PartialObjectMetadata). Not a mock of client-node: controllers talk to it through the
// same ApiRequester and WatchSource seams they use in production.
import { ApiException, type KubernetesObject } from '@kubernetes/client-node';
import type { ListOptions, WatchSource } from './informer.js';
import type { ApiRequester, HttpMethod } from './raw.js';

// biome-ignore lint/suspicious/noExplicitAny: objects of every kind pass through
type Obj = KubernetesObject & Record<string, any>;

interface Target {
  /** 'namespaces', 'secrets', … or 'apis/<group>/<version>/<plural>'. */
  collection: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

interface Watcher {
  target: Target;
  /** Delivers PartialObjectMetadata rather than the objects. */
  metadataOnly?: boolean;
  labelSelector?: string;
  fieldSelector?: string;
  onEvent: (phase: string, obj: unknown) => void;
  done: (err?: unknown) => void;
}

export interface RecordedRequest {
  method: HttpMethod;
  path: string;
  body?: unknown;
}

function parsePath(path: string): { target: Target; query: URLSearchParams } {
  const [pathname, search = ''] = path.split('?');
  const parts = pathname!.split('/').filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(search);
  if (parts[0] === 'api') {
    const rest = parts.slice(2); // api, v1
    if (rest[0] === 'namespaces' && rest.length >= 3)
      return {
        target: { collection: rest[2]!, namespace: rest[1], name: rest[3], subresource: rest[4] },
        query,
      };
    return { target: { collection: rest[0]!, name: rest[1], subresource: rest[2] }, query };
  }
  const [, group, version, ...rest] = parts;
  const collection = (plural: string | undefined) => `apis/${group}/${version}/${plural}`;
  if (rest[0] === 'namespaces' && rest.length >= 3)
    return {
      target: { collection: collection(rest[2]), namespace: rest[1], name: rest[3], subresource: rest[4] },
      query,
    };
  return { target: { collection: collection(rest[0]), name: rest[1], subresource: rest[2] }, query };
}

/** What the API server sends for `Accept: …;as=PartialObjectMetadata…`: the metadata alone. */
function partialMetadata(obj: Obj): Obj {
  return {
    apiVersion: 'meta.k8s.io/v1',
    kind: 'PartialObjectMetadata',
    metadata: structuredClone(obj.metadata),
  };
}

function fail(code: number, message: string): never {
  throw new ApiException(code, `HTTP-Code: ${code}\nMessage: ${message}`, { message, code }, {});
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function matches(obj: Obj, labelSelector?: string, fieldSelector?: string): boolean {
  for (const term of labelSelector?.split(',').filter(Boolean) ?? []) {
    const [k, v] = term.split('=');
    if (obj.metadata?.labels?.[k!] !== v) return false;
  }
  for (const term of fieldSelector?.split(',').filter(Boolean) ?? []) {
    const [k, v] = term.split('=');
    if (k === 'metadata.name' && obj.metadata?.name !== v) return false;
  }
  return true;
}

export class FakeApiServer implements ApiRequester {
  private readonly objects = new Map<string, Obj>();
  private revision = 100;
  private uids = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly failures: Array<{
    method: HttpMethod;
    pathPrefix: string;
    code: number;
    message: string;
  }> = [];
  private readonly outages = new Set<{ pathPrefix: string; code: number; message: string }>();
  /** Every write (not GETs), in order. */
  readonly writes: RecordedRequest[] = [];
  /** Every GET of one object (not lists), by path, in order. */
  readonly reads: string[] = [];
  /** Watch events held back by holdWatchEvents, in order. */
  private held: Array<() => void> | undefined;

  private key(t: Target, name = t.name): string {
    return `${t.collection}|${t.namespace ?? ''}|${name}`;
  }

  /** Stores an object directly (test setup); events go to open watches like any write. */
  seed(path: string, obj: Obj): Obj {
    const { target } = parsePath(path);
    return this.store(target, obj, 'ADDED');
  }

  /** The next `method` request whose path starts with `pathPrefix` fails with `code`. */
  failNext(method: HttpMethod, pathPrefix: string, code: number, message = 'injected failure'): void {
    this.failures.push({ method, pathPrefix, code, message });
  }

  /**
   * Every request whose path starts with `pathPrefix` fails with `code` until the returned function
   * ends the outage (an etcd that is down, an apiserver that answers 500 for a while).
   */
  outage(pathPrefix: string, code: number, message = 'injected outage'): () => void {
    const outage = { pathPrefix, code, message };
    this.outages.add(outage);
    return () => this.outages.delete(outage);
  }

  /**
   * Watch events are held back until the returned function delivers them, in order: a watch that
   * lags behind the writes (the real API server gives no bound on it). `deliver: false` drops
   * them instead, as a watch that missed them.
   */
  holdWatchEvents(): (deliver?: boolean) => void {
    this.held ??= [];
    return (deliver = true) => {
      const held = this.held ?? [];
      this.held = undefined;
      if (deliver) for (const event of held) event();
    };
  }

  /** A BOOKMARK to every open watch, at the current resourceVersion: a quiet watch that is alive. */
  bookmark(): void {
    for (const w of this.watchers)
      w.onEvent('BOOKMARK', { metadata: { resourceVersion: String(this.revision) } });
  }

  get(path: string): Obj | undefined {
    const { target } = parsePath(path);
    return structuredClone(this.objects.get(this.key(target)));
  }

  private store(target: Target, obj: Obj, phase: 'ADDED' | 'MODIFIED'): Obj {
    const name = obj.metadata?.name ?? target.name!;
    const previous = this.objects.get(this.key(target, name));
    const stored: Obj = structuredClone({
      ...obj,
      metadata: {
        ...obj.metadata,
        name,
        ...(target.namespace ? { namespace: target.namespace } : {}),
        uid: previous?.metadata?.uid ?? obj.metadata?.uid ?? `uid-${++this.uids}`,
        resourceVersion: String(++this.revision),
        generation: previous?.metadata?.generation ?? 1,
      },
    });
    if (stored.stringData) {
      // As the API server does: stringData is written into data, base64-encoded.
      stored.data = { ...stored.data };
      for (const [k, v] of Object.entries(stored.stringData as Record<string, string>))
        stored.data[k] = Buffer.from(v).toString('base64');
      delete stored.stringData;
    }
    if (previous && JSON.stringify(previous.spec) !== JSON.stringify(stored.spec))
      stored.metadata!.generation = (previous.metadata?.generation ?? 1) + 1;
    this.objects.set(this.key(target, name), stored);
    this.notify(target, phase, stored, previous);
    return structuredClone(stored);
  }

  /**
   * Tells every watch the change is in scope for. As the API server does, a watch whose selector
   * the object no longer matches (after `previous` did) is sent DELETED, one it now matches ADDED.
   */
  private notify(target: Target, phase: string, obj: Obj, previous?: Obj): void {
    for (const w of this.watchers) {
      const sameCollection = w.target.collection === target.collection;
      const inScope = w.target.namespace === undefined || w.target.namespace === target.namespace;
      if (!sameCollection || !inScope) continue;
      const now = matches(obj, w.labelSelector, w.fieldSelector);
      const before = previous !== undefined && matches(previous, w.labelSelector, w.fieldSelector);
      let seen = phase;
      if (phase === 'MODIFIED' && !now && before) seen = 'DELETED';
      else if (phase === 'MODIFIED' && now && !before) seen = 'ADDED';
      else if (!now) continue;
      const event = w.metadataOnly ? partialMetadata(obj) : structuredClone(obj);
      if (this.held) this.held.push(() => this.watchers.has(w) && w.onEvent(seen, event));
      else w.onEvent(seen, event);
    }
  }

  private list(
    target: Target,
    query: URLSearchParams,
  ): { items: Obj[]; metadata: { resourceVersion: string } } {
    const items = [...this.objects.entries()]
      .filter(([k]) => k.startsWith(`${target.collection}|${target.namespace ?? ''}`))
      .map(([, o]) => o)
      .filter((o) =>
        matches(o, query.get('labelSelector') ?? undefined, query.get('fieldSelector') ?? undefined),
      );
    return { items: structuredClone(items), metadata: { resourceVersion: String(this.revision) } };
  }

  async request<T>(
    method: HttpMethod,
    path: string,
    body?: unknown,
    _contentType?: string,
    accept?: string,
  ): Promise<T> {
    await Promise.resolve(); // answers arrive asynchronously, as over a socket
    if (method !== 'GET') this.writes.push({ method, path, body: structuredClone(body) });
    const injected = this.failures.findIndex((f) => f.method === method && path.startsWith(f.pathPrefix));
    if (injected >= 0) {
      const [f] = this.failures.splice(injected, 1);
      fail(f!.code, f!.message);
    }
    for (const o of this.outages) if (path.startsWith(o.pathPrefix)) fail(o.code, o.message);
    const { target, query } = parsePath(path);
    const existing = target.name ? this.objects.get(this.key(target)) : undefined;
    const what = `${target.collection} "${target.name ?? (body as Obj | undefined)?.metadata?.name}"`;
    switch (method) {
      case 'GET': {
        const metadataOnly = accept?.includes('as=PartialObjectMetadata') ?? false;
        if (!target.name) {
          const list = this.list(target, query);
          return (metadataOnly ? { ...list, items: list.items.map(partialMetadata) } : list) as T;
        }
        this.reads.push(path);
        if (!existing) fail(404, `${what} not found`);
        return (metadataOnly ? partialMetadata(existing) : structuredClone(existing)) as T;
      }
      case 'POST': {
        const obj = body as Obj;
        const ns = target.namespace ? this.objects.get(`namespaces||${target.namespace}`) : undefined;
        if (ns?.metadata?.deletionTimestamp)
          fail(
            403,
            `${what} is forbidden: unable to create new content in namespace ${target.namespace} because it is being terminated`,
          );
        if (this.objects.has(this.key(target, obj.metadata?.name))) fail(409, `${what} already exists`);
        return this.store(target, obj, 'ADDED') as T;
      }
      case 'PUT':
      case 'PATCH': {
        if (!existing) fail(404, `${what} not found`);
        const patch = body as Obj;
        const wantedVersion = patch.metadata?.resourceVersion;
        if (wantedVersion !== undefined && wantedVersion !== existing.metadata?.resourceVersion)
          fail(409, `Operation cannot be fulfilled on ${what}: the object has been modified`);
        let next: Obj;
        if (target.subresource === 'status')
          next = {
            ...existing,
            status: method === 'PUT' ? patch.status : mergePatch(existing.status, patch.status),
          };
        else if (method === 'PUT') next = { ...patch, status: existing.status };
        else next = mergePatch(existing, patch) as Obj;
        return this.store(target, next, 'MODIFIED') as T;
      }
      case 'DELETE': {
        if (!existing) fail(404, `${what} not found`);
        const pre = (body as { preconditions?: { uid?: string; resourceVersion?: string } } | undefined)
          ?.preconditions;
        if (
          (pre?.uid && pre.uid !== existing.metadata?.uid) ||
          (pre?.resourceVersion && pre.resourceVersion !== existing.metadata?.resourceVersion)
        )
          fail(409, `Precondition failed for ${what}`);
        this.objects.delete(this.key(target));
        const gone = {
          ...existing,
          metadata: { ...existing.metadata, resourceVersion: String(++this.revision) },
        };
        this.notify(target, 'DELETED', gone);
        return structuredClone(gone) as T;
      }
    }
  }

  /** A list function for an Informer's source. */
  lister(
    path: string,
  ): (opts: ListOptions) => Promise<{ items: Obj[]; metadata: { resourceVersion: string } }> {
    return async (opts) => {
      const query = new URLSearchParams();
      if (opts.labelSelector) query.set('labelSelector', opts.labelSelector);
      if (opts.fieldSelector) query.set('fieldSelector', opts.fieldSelector);
      return this.request('GET', `${path}?${query}`);
    };
  }

  readonly watchSource: WatchSource = this.watchesOf(false);
  /** Watches that deliver PartialObjectMetadata, as with the Accept header PARTIAL_METADATA. */
  readonly metadataWatchSource: WatchSource = this.watchesOf(true);

  private watchesOf(metadataOnly: boolean): WatchSource {
    return {
      watch: async (path, params, onEvent, done) => {
        const watcher: Watcher = {
          target: parsePath(path).target,
          metadataOnly,
          labelSelector: params.labelSelector as string | undefined,
          fieldSelector: params.fieldSelector as string | undefined,
          onEvent,
          done,
        };
        this.watchers.add(watcher);
        return { abort: () => this.watchers.delete(watcher) };
      },
    };
  }
}
