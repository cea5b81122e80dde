// The process's telemetry endpoint: /metrics for Prometheus, /healthz and
// /readyz for the kubelet. Read-only, plain text, no stack traces: a failure
// answers a generic line and the details go to the log.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { type HealthCheck, Heartbeat, type ReadinessProbe, renderChecks } from './health.js';
import type { Metrics } from './metrics.js';

export interface HttpServerOptions {
  /** 0 binds an ephemeral port; the bound one is returned. */
  port: number;
  /** Interface to bind; all interfaces when unset. */
  host?: string;
  metrics: Pick<Metrics, 'scrape' | 'contentType'>;
  readiness: ReadinessProbe;
  /** The event-loop heartbeat; by default one is started here and stopped on close. */
  liveness?: Heartbeat;
  log: Logger;
}

export interface TelemetryServer {
  port: number;
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';

export async function startHttpServer(opts: HttpServerOptions): Promise<TelemetryServer> {
  const ownHeartbeat = opts.liveness ? undefined : new Heartbeat().start();
  const heartbeat = opts.liveness ?? ownHeartbeat!;
  const log = opts.log;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err, path: req.url }, 'telemetry request failed');
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  // Probes and scrapes are tiny: a client that dawdles is cut off.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = ROUTES.get(url.pathname);
    if (!route) return send(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    const verbose = url.searchParams.has('verbose');
    switch (route) {
      case 'metrics':
        return send(res, 200, await opts.metrics.scrape(), opts.metrics.contentType);
      case 'healthz': {
        const { status, body } = renderChecks('healthz', [heartbeat.check()], verbose);
        if (status !== 200) log.warn({ body }, 'liveness check failing');
        return send(res, status, body);
      }
      case 'readyz': {
        const { status, body } = renderChecks('readyz', await readinessChecks(), verbose);
        return send(res, status, body);
      }
    }
  }

  /** A probe that throws makes the process not ready; its error is logged, not shown. */
  async function readinessChecks(): Promise<HealthCheck[]> {
    try {
      return (await opts.readiness()).checks;
    } catch (err) {
      log.error({ err }, 'readiness probe failed');
      return [{ name: 'readiness-probe', ok: false, message: 'the readiness probe raised an error' }];
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    ownHeartbeat?.stop();
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `cannot serve telemetry on ${opts.host ?? '*'}:${opts.port}: ${reason} (is another process on that port? --http-port=0 or ALCAZAR_HTTP_PORT=0 picks a free one)`,
      { cause: err },
    );
  });
  server.on('error', (err) => log.error({ err }, 'telemetry server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: opts.host }, 'serving /metrics, /healthz and /readyz');

  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        ownHeartbeat?.stop();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections(); // keep-alive scrapers would hold close() open
      }),
  };
}

const ROUTES = new Map<string, 'metrics' | 'healthz' | 'readyz'>([
  ['/metrics', 'metrics'],
  ['/healthz', 'healthz'],
  ['/readyz', 'readyz'],
]);

function send(res: ServerResponse, status: number, body: string, contentType = TEXT): void {
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
