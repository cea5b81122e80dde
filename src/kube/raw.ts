// JSON requests straight to the API server for the hot paths (workload
// Secrets and Events written; the shared caches' lists). client-node routes every call through node-fetch and its
// generated model serialiser; measured under a cold start that was about a
// fifth of the controller's CPU per Secret (docs/BENCHMARKS.md). Credentials,
// TLS options and the keep-alive agent still come from client-node's
// KubeConfig, so token rotation and every auth method keep working. Failures
// are client-node ApiExceptions, so callers handle both paths alike.
import type { IncomingHttpHeaders } from 'node:http';
import * as http from 'node:http';
import * as https from 'node:https';
import { ApiException, type KubeConfig } from '@kubernetes/client-node';

export const JSON_CONTENT = 'application/json';
export const MERGE_PATCH_CONTENT = 'application/merge-patch+json';
/** Asks for objects as PartialObjectMetadata: the metadata only, without the data or spec. */
export const PARTIAL_METADATA = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
/** The same for lists (PartialObjectMetadataList). */
export const PARTIAL_METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';

const DEFAULT_TIMEOUT_MS = 30_000;

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** What controllers write through: the API server (RawApi), or an in-memory one in unit tests (FakeApiServer). */
export interface ApiRequester {
  /** `accept`: another representation than plain JSON, e.g. PARTIAL_METADATA_LIST. */
  request<T>(
    method: HttpMethod,
    path: string,
    body?: unknown,
    contentType?: string,
    accept?: string,
  ): Promise<T>;
}

export class RawApi implements ApiRequester {
  private readonly base: string;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
    /** Writes (not GETs) carry its signal: see write-fence.ts. */
    private readonly fence?: { signalForWrite(): AbortSignal },
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('no cluster in the kubeconfig');
    this.base = cluster.server.replace(/\/+$/, '');
  }

  /** Sends `body` as JSON (or a merge patch) and resolves with the parsed answer; non-2xx rejects with an ApiException. */
  async request<T>(
    method: HttpMethod,
    path: string,
    body?: unknown,
    contentType = JSON_CONTENT,
    accept = JSON_CONTENT,
  ): Promise<T> {
    const options: https.RequestOptions = { method, headers: { Accept: accept } };
    await this.kubeConfig.applyToHTTPSOptions(options);
    const signal = method === 'GET' ? undefined : this.fence?.signalForWrite();
    if (signal?.aborted) throw signal.reason;
    if (signal) options.signal = signal;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers = options.headers as Record<string, string | number>;
    if (payload) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = payload.length;
    }
    const url = new URL(this.base + path);
    const send = url.protocol === 'https:' ? https.request : http.request;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON (a proxy's error page): keep the text
          }
          if (code >= 200 && code < 300) resolve(parsed as T);
          else reject(apiException(code, parsed, res.headers));
        });
      });
      req.on('error', (err) => reject(signal?.aborted ? signal.reason : err));
      req.setTimeout(this.timeoutMs, () =>
        req.destroy(new Error(`${method} ${path}: no answer within ${this.timeoutMs} ms`)),
      );
      req.end(payload);
    });
  }
}

function apiException(code: number, body: unknown, headers: IncomingHttpHeaders): ApiException<unknown> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers))
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  const message = (body as { message?: string } | undefined)?.message ?? String(body ?? '');
  return new ApiException(code, `HTTP-Code: ${code}\nMessage: ${message}`, body, flat);
}

/** One page of a list, shaped like client-node's (continue token as `_continue`), for an Informer. */
export async function listPage<R>(
  raw: ApiRequester,
  path: string,
  opts: { limit: number; _continue?: string; labelSelector?: string; fieldSelector?: string },
  accept?: string,
): Promise<{ items: R[]; metadata?: { resourceVersion?: string; _continue?: string } }> {
  const query = new URLSearchParams({ limit: String(opts.limit) });
  if (opts._continue) query.set('continue', opts._continue);
  if (opts.labelSelector) query.set('labelSelector', opts.labelSelector);
  if (opts.fieldSelector) query.set('fieldSelector', opts.fieldSelector);
  const page = await raw.request<{
    items?: R[];
    metadata?: { resourceVersion?: string; continue?: string };
  }>('GET', `${path}?${query}`, undefined, undefined, accept);
  return {
    items: page.items ?? [],
    metadata: { resourceVersion: page.metadata?.resourceVersion, _continue: page.metadata?.continue },
  };
}

const segment = encodeURIComponent;

export const secretsPath = (namespace: string, name?: string) =>
  `/api/v1/namespaces/${segment(namespace)}/secrets${name === undefined ? '' : `/${segment(name)}`}`;

export const eventsPath = (namespace: string) => `/api/v1/namespaces/${segment(namespace)}/events`;

export const configMapsPath = (namespace: string, name?: string) =>
  `/api/v1/namespaces/${segment(namespace)}/configmaps${name === undefined ? '' : `/${segment(name)}`}`;

/** A custom resource's path; `subresource` e.g. 'status'. */
export const clusterCustomObjectPath = (
  r: { group: string; version: string; plural: string },
  name?: string,
  subresource?: string,
) =>
  `/apis/${r.group}/${r.version}/${r.plural}${name === undefined ? '' : `/${segment(name)}`}${subresource ? `/${subresource}` : ''}`;
