// The bench's own API client: plain node:https over one keep-alive agent, so
// setting up thousands of objects (and the API-server floor) costs the
// apiserver its work and nothing more. Watches get a connection each and
// stamp every event with the time it arrived.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { PARTIAL_METADATA } from '../src/kube/raw.js';
import type { ClusterState } from '../test/cluster/controlplane.js';
import { credentialsIn } from '../test/cluster/credentials.js';

export interface ApiResponse<T> {
  status: number;
  body: T;
}

export class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly text: string,
  ) {
    super(`${method} ${path}: HTTP ${status}: ${text.slice(0, 300)}`);
    this.name = 'ApiError';
  }
}

interface Tls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface WatchEvent<T> {
  type: string;
  object: T;
  /** Date.now() when the line arrived. */
  at: number;
}

export interface RunningWatch {
  stop(): void;
  /** Resolves when the stream ends (stopped, timed out or failed). */
  ended: Promise<void>;
}

export class Api {
  private readonly tls: Tls;
  private readonly agent: Agent;
  readonly server: string;

  constructor(state: ClusterState, opts: { maxSockets?: number } = {}) {
    const creds = credentialsIn(join(state.dir, 'pki'));
    this.tls = {
      ca: readFileSync(creds.caCert),
      cert: readFileSync(creds.adminCert),
      key: readFileSync(creds.adminKey),
    };
    this.server = state.server;
    // Idle pooled sockets are dropped after 30 s: the API server closes idle connections, and a
    // pool of them left from the population phase broke the first calls after a long verify.
    this.agent = new Agent({
      ...this.tls,
      keepAlive: true,
      timeout: 30_000,
      maxSockets: opts.maxSockets ?? 256,
    });
  }

  /** Sends one request; resolves with the status and the body (parsed when JSON). Never throws on status. */
  send<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<ApiResponse<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.server}${path}`,
        {
          method,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
          },
          timeout: 60_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            if ((res.headers['content-type'] ?? '').includes('json')) {
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = text;
              }
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.end(payload);
    });
  }

  /** Like send, but throws ApiError unless the status is 2xx or listed in `accept`. */
  async call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    opts: { accept?: number[]; contentType?: string } = {},
  ): Promise<ApiResponse<T>> {
    let res: ApiResponse<T> | undefined;
    for (let attempt = 1; res === undefined; attempt++) {
      try {
        res = await this.send<T>(method, path, body, opts.contentType);
      } catch (err) {
        // A kept-alive socket the server closed while it sat idle (a long mint): a GET is safe to
        // send again, and so is any request whose write failed with EPIPE (the server never read
        // it). Each failure takes one dead socket out of the pool, and several may be dead (issue
        // #18's 100,000 runs died on both).
        const code = (err as NodeJS.ErrnoException).code;
        if (attempt >= 20 || !(code === 'EPIPE' || (method === 'GET' && code === 'ECONNRESET'))) throw err;
      }
    }
    if ((res.status < 200 || res.status >= 300) && !opts.accept?.includes(res.status)) {
      throw new ApiError(
        method,
        path,
        res.status,
        typeof res.body === 'string' ? res.body : JSON.stringify(res.body),
      );
    }
    return res;
  }

  /** Every item of a (paginated) list, and the list's resourceVersion. */
  async listAll<T>(
    path: string,
    query: Record<string, string> = {},
  ): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let cont = '';
    let resourceVersion = '';
    do {
      const params = new URLSearchParams({ ...query, limit: '500', ...(cont ? { continue: cont } : {}) });
      const res = await this.call<{ items: T[]; metadata: { continue?: string; resourceVersion: string } }>(
        'GET',
        `${path}?${params}`,
      );
      items.push(...res.body.items);
      cont = res.body.metadata.continue ?? '';
      resourceVersion = res.body.metadata.resourceVersion;
    } while (cont);
    return { items, resourceVersion };
  }

  /** The current resourceVersion of a collection, to start a watch from "now". */
  async resourceVersionOf(path: string, query: Record<string, string> = {}): Promise<string> {
    const params = new URLSearchParams({ ...query, limit: '1' });
    const res = await this.call<{ metadata: { resourceVersion: string } }>('GET', `${path}?${params}`);
    return res.body.metadata.resourceVersion;
  }

  /**
   * Watches a collection from `resourceVersion`; `onEvent` gets every event with its arrival time.
   * Resolves once the server has accepted the watch (response headers received). `metadataOnly`
   * asks for PartialObjectMetadata: a timing watch that needs no data must not make the API server
   * encode (and this process parse) every Secret's data, a cost the measured controller would be
   * charged for.
   */
  watch<T>(
    path: string,
    query: Record<string, string>,
    onEvent: (event: WatchEvent<T>) => void,
    opts: { metadataOnly?: boolean } = {},
  ): Promise<RunningWatch> {
    const params = new URLSearchParams({
      ...query,
      watch: '1',
      allowWatchBookmarks: 'true',
      timeoutSeconds: '7200',
    });
    return new Promise((resolveStarted, rejectStarted) => {
      let endResolve: () => void = () => {};
      const ended = new Promise<void>((r) => {
        endResolve = r;
      });
      const url = `${this.server}${path}?${params}`;
      const headers = opts.metadataOnly ? { accept: PARTIAL_METADATA } : undefined;
      const req = request(url, { ...this.tls, agent: false, headers }, (res) => {
        if (res.statusCode !== 200) {
          rejectStarted(new ApiError('WATCH', path, res.statusCode ?? 0, ''));
          res.resume();
          return;
        }
        resolveStarted({ stop: () => req.destroy(), ended });
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const at = Date.now();
          buffered += chunk;
          let newline = buffered.indexOf('\n');
          while (newline >= 0) {
            const line = buffered.slice(0, newline);
            buffered = buffered.slice(newline + 1);
            if (line.trim()) {
              const event = JSON.parse(line) as { type: string; object: T };
              onEvent({ type: event.type, object: event.object, at });
            }
            newline = buffered.indexOf('\n');
          }
        });
        res.on('end', endResolve);
        res.on('error', endResolve);
        res.on('close', endResolve);
      });
      req.on('error', (err) => {
        rejectStarted(err);
        endResolve();
      });
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
