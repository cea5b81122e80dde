/**
 * The gRPC server of Istio's CSR API: HTTP/2 over TLS ≥ 1.2 with alcazar's own serving certificate
 * (swapped in place when it is renewed), a client certificate requested but not required, and
 * limits that keep hostile or slow clients from crowding out good ones or the controller's own work.
 */
import type { PeerCertificate } from 'node:tls';
import {
  experimental,
  type handleUnaryCall,
  logVerbosity,
  Metadata,
  Server,
  type ServerUnaryCall,
  type sendUnaryData,
  setLogger,
  setLogVerbosity,
  type status,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { CsrServerMetrics } from '../telemetry/csr-metrics.js';
import { GrpcCode, type GrpcCodeName, Refusal } from './policy.js';
import {
  type CertificateRequest,
  decodeCertificateRequest,
  encodeCertificateResponse,
  ProtocolError,
  SERVICE_NAME,
} from './protocol.js';
import type { CertificateService } from './service.js';
import type { ServingCertificate } from './serving-certificate.js';

/** Limits, each with why. */
export const CSR_SERVER_LIMITS = {
  /** A CSR is under 2 KiB; 64 KiB leaves room for metadata and refuses anything abusive unread. */
  maxReceiveMessageBytes: 64 * 1024,
  /** Streams one connection may have open: an agent makes one call at a time. */
  maxConcurrentStreams: 16,
  /** Calls in progress across all connections; beyond this, RESOURCE_EXHAUSTED at once. */
  maxCallsInFlight: 256,
  /** A call not answered in this time fails with DEADLINE_EXCEEDED (the agent retries). */
  callDeadlineMs: 10_000,
  keepaliveTimeMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  /** Go clients ping every 30 s while a call is open (Istio's keepalive); accept that. */
  minClientPingIntervalMs: 10_000,
  /** Connections are recycled so clients pick up renewed serving certificates and new replicas. */
  maxConnectionAgeMs: 30 * 60_000,
  maxConnectionAgeGraceMs: 30_000,
  maxConnectionIdleMs: 5 * 60_000,
} as const;

export interface CsrServerOptions {
  host?: string;
  port: number;
  service: CertificateService;
  metrics: CsrServerMetrics;
  log: Logger;
  /** Replaces some of CSR_SERVER_LIMITS (tests). */
  limits?: Partial<Record<keyof typeof CSR_SERVER_LIMITS, number>>;
}

/** Pushes serving certificates into grpc-js's TLS context; grpc-js rebuilds its secure context on each update. */
class ServingIdentityProvider implements experimental.CertificateProvider {
  private latest: experimental.IdentityCertificateUpdate | null = null;
  private readonly listeners = new Set<experimental.IdentityCertificateUpdateListener>();
  /**
   * The roots, so a client sees which CAs its certificate should chain to. The TLS layer does not
   * reject clients that fail it (a client certificate is optional); the service checks it itself.
   */
  private latestCa: experimental.CaCertificateUpdate | null = null;
  private readonly caListeners = new Set<experimental.CaCertificateUpdateListener>();

  update(certificate: ServingCertificate): void {
    this.latestCa = { caCertificate: Buffer.from(certificate.rootBundlePem) };
    for (const listener of this.caListeners) listener(this.latestCa);
    this.latest = {
      certificate: Buffer.from(certificate.certificateChainPem),
      privateKey: Buffer.from(certificate.privateKeyPem),
    };
    for (const listener of this.listeners) listener(this.latest);
  }

  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.listeners.add(listener);
    if (this.latest) listener(this.latest);
  }
  removeIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.listeners.delete(listener);
  }
  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    if (this.latestCa) listener(this.latestCa);
  }
  removeCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }
}

export interface RunningCsrServer {
  port: number;
  /** Installs a (new) serving certificate; new connections use it at once. */
  setServingCertificate(certificate: ServingCertificate): void;
  readonly listening: boolean;
  close(): Promise<void>;
}

const passThrough = (value: Buffer) => value;

/**
 * grpc-js writes its own lines to stderr ("E 2026-… No address added out of total 1 resolved"),
 * outside the JSON log and next to alcazar's own explanation. Its errors go to the log as
 * warnings from component grpc-js instead; the bind failure, which startCsrServer explains, at debug.
 */
function routeGrpcLogs(log: Logger): void {
  const grpcLog = log.child({ component: 'grpc-js' });
  const write =
    (level: 'warn' | 'info' | 'debug') =>
    (...args: unknown[]) => {
      const text = args.map(String).join(' ');
      grpcLog[/No address added/.test(text) ? 'debug' : level](text);
    };
  setLogger({ error: write('warn'), warn: write('warn'), info: write('debug'), debug: write('debug') });
  setLogVerbosity(logVerbosity.ERROR);
}

export async function startCsrServer(opts: CsrServerOptions): Promise<RunningCsrServer> {
  routeGrpcLogs(opts.log);
  const limits = { ...CSR_SERVER_LIMITS, ...opts.limits };
  const server = new Server({
    'grpc.max_receive_message_length': limits.maxReceiveMessageBytes,
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    'grpc.keepalive_time_ms': limits.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': limits.keepaliveTimeoutMs,
    'grpc.http2.min_ping_interval_without_data_ms': limits.minClientPingIntervalMs,
    'grpc.max_connection_age_ms': limits.maxConnectionAgeMs,
    'grpc.max_connection_age_grace_ms': limits.maxConnectionAgeGraceMs,
    'grpc.max_connection_idle_ms': limits.maxConnectionIdleMs,
  });
  let inFlight = 0;

  const handler: handleUnaryCall<Buffer, Buffer> = (call, callback) => {
    const started = performance.now();
    inFlight++;
    const finish = (code: GrpcCodeName | 'OK', send: () => void) => {
      opts.metrics.observe(code, performance.now() - started);
      send();
    };
    opts.metrics.requestReceived();
    // The slot is held until the work itself ends, not the answer: a call answered at its deadline
    // goes on to a stop (its TokenReview, a signing slot), and the callers retrying meanwhile must
    // meet maxCallsInFlight rather than pile up behind abandoned work.
    const work = { done: Promise.resolve() as Promise<unknown> };
    const answer = handle(call, inFlight, work);
    const release = () => {
      const settled = () => {
        inFlight--;
      };
      work.done.then(settled, settled);
    };
    answer.then(release, release);
    answer
      .then((chain) => finish('OK', () => callback(null, encodeCertificateResponse(chain))))
      .catch((err: unknown) => {
        const refusal = asRefusal(err, opts.log);
        if (refusal.code !== 'UNAVAILABLE' && refusal.code !== 'RESOURCE_EXHAUSTED') {
          opts.log.info(
            { code: refusal.code, reason: refusal.reason, message: refusal.message, peer: call.getPeer() },
            'refused CSR',
          );
        }
        finish(refusal.code, () => reply(callback, refusal));
      });
  };

  const handle = async (
    call: ServerUnaryCall<Buffer, Buffer>,
    active: number,
    started: { done: Promise<unknown> },
  ): Promise<string[]> => {
    if (active > limits.maxCallsInFlight) {
      throw new Refusal('RESOURCE_EXHAUSTED', 'TooManyCalls', 'the CA is busy; retry with backoff');
    }
    let request: CertificateRequest;
    try {
      request = decodeCertificateRequest(call.request);
    } catch (err) {
      if (err instanceof ProtocolError) {
        opts.metrics.csrUnparsable();
        throw new Refusal(
          'INVALID_ARGUMENT',
          'BadMessage',
          `the request is not an IstioCertificateRequest: ${err.message}`,
        );
      }
      throw err;
    }
    const abandoned = new AbortController();
    const work = opts.service.createCertificate({
      request,
      bearerToken: bearerTokenOf(call.metadata),
      clientCertificateDer: peerCertificateOf(call),
      signal: abandoned.signal,
    });
    started.done = work;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abandoned.abort(); // nothing more is signed or recorded for it
        reject(
          new Refusal(
            'DEADLINE_EXCEEDED',
            'ServerDeadline',
            `no answer within ${limits.callDeadlineMs} ms; retry`,
          ),
        );
      }, limits.callDeadlineMs);
    });
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  };

  server.addService(
    {
      CreateCertificate: {
        path: `/${SERVICE_NAME}/CreateCertificate`,
        requestStream: false,
        responseStream: false,
        requestSerialize: passThrough,
        requestDeserialize: passThrough,
        responseSerialize: passThrough,
        responseDeserialize: passThrough,
      },
    },
    { CreateCertificate: handler },
  );

  const identity = new ServingIdentityProvider();
  // grpc-js's parameter names are swapped: the first provider is the identity, the second the CA.
  const credentials = experimental.createCertificateProviderServerCredentials(identity, identity, false);
  let listening = false;
  const address = `${opts.host ?? '0.0.0.0'}:${opts.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (err, bound) => (err ? reject(err) : resolve(bound))),
  ).catch((err: unknown) => {
    // grpc-js says only "No address added out of total 1 resolved": name the API, the address
    // and the ways out.
    throw new Error(
      `cannot serve the CSR API on ${address}: ${err instanceof Error ? err.message : String(err)} ` +
        '(is another process on that port? --csr-port=0 or ALCAZAR_CSR_PORT=0 picks a free one, ' +
        '--csr-enabled=false or ALCAZAR_CSR_ENABLED=false turns the CSR API off)',
      { cause: err },
    );
  });
  listening = true;
  opts.log.info({ port, ...limitsForLog() }, 'serving the CSR API (istio.v1.auth.IstioCertificateService)');

  return {
    port,
    get listening() {
      return listening;
    },
    setServingCertificate: (certificate) => identity.update(certificate),
    close: () =>
      new Promise<void>((resolve) => {
        listening = false;
        server.tryShutdown(() => resolve());
        // Calls still open after the grace period are cut.
        setTimeout(() => server.forceShutdown(), 5_000).unref();
      }),
  };
}

function limitsForLog() {
  const { maxReceiveMessageBytes, maxConcurrentStreams, maxCallsInFlight, callDeadlineMs } =
    CSR_SERVER_LIMITS;
  return { maxReceiveMessageBytes, maxConcurrentStreams, maxCallsInFlight, callDeadlineMs };
}

function bearerTokenOf(metadata: Metadata): string | undefined {
  const values = metadata.get('authorization');
  for (const value of values) {
    const text = typeof value === 'string' ? value : value.toString('utf8');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(text);
    if (match) return match[1];
  }
  return undefined;
}

function peerCertificateOf(call: ServerUnaryCall<Buffer, Buffer>): Buffer | undefined {
  const certificate: PeerCertificate | undefined = call.getAuthContext?.()?.sslPeerCertificate;
  return certificate?.raw && certificate.raw.length > 0 ? certificate.raw : undefined;
}

function asRefusal(err: unknown, log: Logger): Refusal {
  if (err instanceof Refusal) return err;
  // A failed TokenReview (the API server unreachable) and anything unexpected: the agent retries.
  // The reason goes to the log only: the caller is not yet authenticated, and the text can carry
  // the API server's answer (an RBAC message, names).
  log.warn({ err }, 'CSR failed');
  return new Refusal('UNAVAILABLE', 'Unavailable', 'the CA could not process the request; retry');
}

function reply(callback: sendUnaryData<Buffer>, refusal: Refusal): void {
  const metadata = new Metadata();
  metadata.set('alcazar-reason', refusal.reason);
  callback({ code: GrpcCode[refusal.code] as status, details: refusal.message, metadata });
}
