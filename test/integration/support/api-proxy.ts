// An HTTPS proxy of our own between the controller and kube-apiserver, so a
// test can break the connection in ways a real network and a real apiserver
// do: freeze watch streams (open but silent), hold every request while the
// apiserver restarts, end watches cleanly, answer 429/500 for a while, or let
// the test act (change the cluster) just before a request goes through.
// It serves with the apiserver's own certificate and forwards as the admin.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  createServer,
  Agent as HttpsAgent,
  request as httpsRequest,
  type Server,
  type ServerOptions,
} from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterState } from '../../cluster/controlplane.js';
import { credentialsIn, kubeconfigYaml } from '../../cluster/credentials.js';

export interface InjectedFailure {
  status: number;
  /** Also refuse watch requests (default true). */
  watches?: boolean;
  /** Refuse only the requests this accepts (default: all). */
  match?: (method: string, path: string) => boolean;
  /** Stop after refusing this many requests. */
  times?: number;
}

/** One request as the proxy saw it: the record of what reached the apiserver through it, and when. */
export interface ProxyRecord {
  method: string;
  path: string;
  /** Date.now() when the whole request had arrived at the proxy. */
  receivedAt: number;
  /** Date.now() when it was sent on to the apiserver; unset if it never was. */
  forwardedAt?: number;
  /** The apiserver's answer. */
  status?: number;
  /** Answered by the proxy itself (an injected status), reset, or lost in a partition. */
  outcome?: 'injected' | 'reset' | 'lost';
}

/** Runs before a request is forwarded; the request waits for it. */
export type RequestHook = (method: string, path: string) => Promise<void> | void;

export interface ProxyStats {
  requests: number;
  watchesStarted: number;
  /** Responses the proxy made up, by status. */
  injected: Record<number, number>;
  /** Watch events not delivered because their stream was frozen. */
  eventsWithheld: number;
  /** Requests that waited while the proxy held traffic. */
  held: number;
}

export interface ApiProxy {
  readonly url: string;
  /** A kubeconfig (file) that reaches the apiserver through this proxy. */
  readonly kubeconfig: string;
  readonly stats: ProxyStats;
  /** Every request, in arrival order. */
  readonly records: readonly ProxyRecord[];
  /** Open watch streams. */
  readonly openWatches: number;
  /**
   * Watch streams, open and new, stop delivering bytes; the connections stay
   * open. Events arriving meanwhile are withheld (dropped when `drop`).
   */
  freezeWatches(opts?: { drop?: boolean }): void;
  /** Watch streams deliver again, starting with whatever was withheld and not dropped. */
  thawWatches(): void;
  /** New requests wait (are not forwarded) until release(); watch streams freeze, dropping. */
  hold(): void;
  /**
   * Ends every open watch response cleanly, as the apiserver does when a watch
   * times out, then forwards the held requests.
   */
  release(): void;
  /** Ends every open watch response cleanly; the client resumes from its last resourceVersion. */
  endWatches(): number;
  /** Answers every new request with this status until stopFailing(). */
  failWith(failure: InjectedFailure): void;
  stopFailing(): void;
  /**
   * Every new request waits for `hook` before it is forwarded (or held); a
   * hook that throws fails the request with a 502. `undefined` removes it.
   */
  beforeForward(hook: RequestHook | undefined): void;
  /**
   * A network partition between the client and the apiserver. 'hang': requests are black-holed
   * (held, never answered) and watch streams go silent; 'refuse': from now on new requests have
   * their connection reset, as a network gives up after a while (requests already held keep
   * hanging). `heal()` ends it.
   */
  partition(mode: 'hang' | 'refuse'): void;
  /**
   * The partition heals. A held request whose sender is still waiting on its connection is
   * delivered now, as TCP delivers what it buffered once the path is back; one whose sender gave
   * up (closed the connection) is lost. Watch streams end cleanly, so clients watch again.
   */
  heal(): void;
  close(): Promise<void>;
}

interface WatchStream {
  res: ServerResponse;
  upstream?: IncomingMessage;
  /** Complete lines received while frozen. */
  withheld: string[];
  partial: string;
  upstreamEnded: boolean;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

function forwardedHeaders(headers: IncomingMessage['headers'], watch: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (HOP_BY_HOP.has(name) || name === 'host') continue;
    // Watch bodies are split into lines here: keep them uncompressed.
    if (watch && name === 'accept-encoding') continue;
    out[name] = value;
  }
  return out;
}

function statusBody(status: number): string {
  const reason = status === 429 ? 'TooManyRequests' : status === 503 ? 'ServiceUnavailable' : 'InternalError';
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    message: `injected by the test proxy: HTTP ${status}`,
    reason,
    code: status,
  });
}

export async function startApiProxy(state: ClusterState): Promise<ApiProxy> {
  const creds = credentialsIn(join(state.dir, 'pki'));
  const upstreamUrl = new URL(state.server);
  const agent = new HttpsAgent({
    keepAlive: true,
    ca: readFileSync(creds.caCert),
    cert: readFileSync(creds.adminCert),
    key: readFileSync(creds.adminKey),
  });
  const stats: ProxyStats = { requests: 0, watchesStarted: 0, injected: {}, eventsWithheld: 0, held: 0 };
  const watches = new Set<WatchStream>();
  let frozen: { drop: boolean } | undefined;
  let holding = false;
  let heldRequests: Array<() => void> = [];
  let failure: InjectedFailure | undefined;
  let requestHook: RequestHook | undefined;
  const records: ProxyRecord[] = [];
  let partitioned: 'hang' | 'refuse' | undefined;
  let partitionHeld: Array<{ req: IncomingMessage; res: ServerResponse; body: Buffer; record: ProxyRecord }> =
    [];

  const deliver = (stream: WatchStream, lines: string[]) => {
    if (lines.length === 0) return;
    if (frozen) {
      stats.eventsWithheld += lines.length;
      if (!frozen.drop) stream.withheld.push(...lines);
      return;
    }
    stream.res.write(`${lines.join('\n')}\n`);
  };

  const endCleanly = (stream: WatchStream) => {
    watches.delete(stream);
    stream.upstream?.destroy();
    if (!stream.res.writableEnded) stream.res.end();
  };

  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse, record?: ProxyRecord) => {
    const watch = /[?&]watch=(true|1)(&|$)/.test(req.url ?? '');
    if (record) record.forwardedAt = Date.now();
    const upstreamReq = httpsRequest(
      {
        host: upstreamUrl.hostname,
        port: upstreamUrl.port,
        method: req.method,
        path: req.url,
        headers: forwardedHeaders(req.headers, watch),
        agent,
      },
      (upstream) => {
        if (record) record.status = upstream.statusCode;
        const headers = forwardedHeaders(upstream.headers, false);
        if (!watch || upstream.statusCode !== 200) {
          res.writeHead(upstream.statusCode ?? 502, headers);
          upstream.pipe(res);
          upstream.on('error', () => res.destroy());
          return;
        }
        delete headers['content-length'];
        res.writeHead(200, headers);
        res.flushHeaders(); // as the apiserver does: the client's watch call returns before any event
        stats.watchesStarted++;
        const stream: WatchStream = { res, upstream, withheld: [], partial: '', upstreamEnded: false };
        watches.add(stream);
        upstream.setEncoding('utf8');
        upstream.on('data', (chunk: string) => {
          const parts = (stream.partial + chunk).split('\n');
          stream.partial = parts.pop() ?? '';
          deliver(
            stream,
            parts.filter((l) => l.trim() !== ''),
          );
        });
        const upstreamGone = (clean: boolean) => {
          stream.upstreamEnded = true;
          // A frozen stream stays open and silent, whatever the apiserver does meanwhile.
          if (frozen || !watches.has(stream)) return;
          watches.delete(stream);
          if (clean) res.end();
          else res.destroy();
        };
        upstream.on('end', () => upstreamGone(true));
        upstream.on('error', () => upstreamGone(false));
        res.on('close', () => {
          watches.delete(stream);
          upstream.destroy();
        });
      },
    );
    upstreamReq.on('error', () => {
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(statusBody(502));
      }
    });
    res.on('close', () => upstreamReq.destroy());
    upstreamReq.end(body);
  };

  const serverOptions: ServerOptions = {
    cert: readFileSync(creds.servingCert),
    key: readFileSync(creds.servingKey),
  };
  const server: Server = createServer(serverOptions, (req, res) => {
    stats.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const watch = /[?&]watch=(true|1)(&|$)/.test(req.url ?? '');
      const record: ProxyRecord = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        receivedAt: Date.now(),
      };
      records.push(record);
      if (partitioned === 'refuse') {
        record.outcome = 'reset';
        req.socket.destroy();
        return;
      }
      if (partitioned === 'hang') {
        partitionHeld.push({ req, res, body: Buffer.concat(chunks), record });
        return;
      }
      if (
        failure &&
        (failure.watches !== false || !watch) &&
        (failure.match?.(req.method ?? 'GET', req.url ?? '/') ?? true)
      ) {
        stats.injected[failure.status] = (stats.injected[failure.status] ?? 0) + 1;
        record.outcome = 'injected';
        const refused = failure;
        if (refused.times !== undefined && --refused.times <= 0) failure = undefined;
        res.writeHead(refused.status, {
          'content-type': 'application/json',
          ...(refused.status === 429 ? { 'retry-after': '1' } : {}),
        });
        res.end(statusBody(refused.status));
        return;
      }
      const body = Buffer.concat(chunks);
      const proceed = () => {
        if (holding) {
          stats.held++;
          heldRequests.push(() => forward(req, body, res, record));
          return;
        }
        forward(req, body, res, record);
      };
      if (!requestHook) return proceed();
      Promise.resolve(requestHook(req.method ?? 'GET', req.url ?? '/')).then(proceed, () => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(statusBody(502));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dir = mkdtempSync(join(tmpdir(), 'alcazar-proxy-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    kubeconfigYaml({
      server: url,
      caCert: creds.caCert,
      cert: creds.adminCert,
      key: creds.adminKey,
      user: 'alcazar-admin',
    }),
    { mode: 0o600 },
  );

  const endAll = () => {
    const streams = [...watches];
    for (const stream of streams) endCleanly(stream);
    return streams.length;
  };

  return {
    url,
    kubeconfig,
    stats,
    records,
    get openWatches() {
      return watches.size;
    },
    freezeWatches: (opts = {}) => {
      frozen = { drop: opts.drop ?? false };
    },
    thawWatches: () => {
      frozen = undefined;
      for (const stream of [...watches]) {
        const lines = stream.withheld.splice(0);
        if (lines.length > 0 && !stream.res.writableEnded) stream.res.write(`${lines.join('\n')}\n`);
        if (stream.upstreamEnded) endCleanly(stream);
      }
    },
    hold: () => {
      holding = true;
      frozen = { drop: true };
    },
    release: () => {
      endAll();
      frozen = undefined;
      holding = false;
      const held = heldRequests;
      heldRequests = [];
      for (const go of held) go();
    },
    endWatches: endAll,
    failWith: (f) => {
      failure = { ...f };
    },
    stopFailing: () => {
      failure = undefined;
    },
    beforeForward: (hook) => {
      requestHook = hook;
    },
    partition: (mode) => {
      partitioned = mode;
      frozen = { drop: true };
    },
    heal: () => {
      partitioned = undefined;
      endAll();
      frozen = undefined;
      const held = partitionHeld;
      partitionHeld = [];
      for (const { req, res, body, record } of held) {
        if (res.destroyed || req.socket.destroyed) record.outcome = 'lost';
        else forward(req, body, res, record);
      }
    },
    close: async () => {
      failure = undefined;
      requestHook = undefined;
      holding = false;
      frozen = undefined;
      partitioned = undefined;
      for (const { res } of partitionHeld.splice(0)) res.destroy();
      for (const go of heldRequests.splice(0)) go();
      endAll();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
