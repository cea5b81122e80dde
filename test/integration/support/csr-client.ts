// A CSR API client for tests: @grpc/grpc-js with messages from protos/…/ca.proto through
// @grpc/proto-loader (protobufjs), so it shares no code with the server's hand-written codec.
// Tokens come from the TokenRequest API, as a projected ServiceAccount token would.
import { join } from 'node:path';
import {
  type ChannelCredentials,
  type Client,
  credentials,
  loadPackageDefinition,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { CoreV1Api } from '@kubernetes/client-node';
import { repoRoot } from '../../cluster/paths.js';
import type { ControllerProcess } from './controller.js';

const definition = loadSync(join(repoRoot, 'protos/istio/v1/auth/ca.proto'), {
  longs: String,
  defaults: true,
});
type ServiceClient = new (
  address: string,
  creds: ChannelCredentials,
  options?: object,
) => Client & {
  CreateCertificate(
    request: object,
    metadata: Metadata,
    options: { deadline: Date },
    callback: (err: ServiceError | null, response?: { certChain: string[] }) => void,
  ): void;
};
const IstioCertificateService = (
  loadPackageDefinition(definition) as unknown as {
    istio: { v1: { auth: { IstioCertificateService: ServiceClient } } };
  }
).istio.v1.auth.IstioCertificateService;

export interface CsrClientOptions {
  port: number;
  /** PEM roots that should verify the server. */
  roots: string;
  /** The name the server's certificate must carry (default the test's --csr-dns-names). */
  serverName: string;
  clientCertificate?: { cert: string; key: string };
  /** Extra grpc-js channel options (the benchmark gives each client its own connection). */
  channelOptions?: Record<string, string | number>;
  /** How long a call may take (default 20 s). */
  deadlineMs?: number;
}

export type CsrOutcome = { ok: true; chain: string[] } | { ok: false; code: number; details: string };

export class CsrClient {
  private readonly client: InstanceType<ServiceClient>;
  private readonly deadlineMs: number;

  constructor(opts: CsrClientOptions) {
    this.deadlineMs = opts.deadlineMs ?? 20_000;
    const creds = credentials.createSsl(
      Buffer.from(opts.roots),
      opts.clientCertificate ? Buffer.from(opts.clientCertificate.key) : null,
      opts.clientCertificate ? Buffer.from(opts.clientCertificate.cert) : null,
    );
    this.client = new IstioCertificateService(`127.0.0.1:${opts.port}`, creds, {
      'grpc.ssl_target_name_override': opts.serverName,
      'grpc.default_authority': opts.serverName,
      'grpc.max_send_message_length': 4 * 1024 * 1024,
      ...opts.channelOptions,
    });
  }

  /** Resolves once the channel is connected (TLS handshake done), so a timed call does not pay for it. */
  connect(timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.waitForReady(new Date(Date.now() + timeoutMs), (err) => (err ? reject(err) : resolve())),
    );
  }

  call(request: { csr: string; validityDuration?: number }, token?: string): Promise<CsrOutcome> {
    const metadata = new Metadata();
    if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
    return new Promise((resolve) => {
      this.client.CreateCertificate(
        { csr: request.csr, validityDuration: String(request.validityDuration ?? 0) },
        metadata,
        { deadline: new Date(Date.now() + this.deadlineMs) },
        (err, response) => {
          if (err) resolve({ ok: false, code: err.code, details: err.details });
          else resolve({ ok: true, chain: response!.certChain });
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

/** A ServiceAccount token from the TokenRequest API. */
export async function requestToken(
  core: CoreV1Api,
  namespace: string,
  serviceAccount: string,
  audiences = ['istio-ca'],
  expirationSeconds = 3600,
): Promise<string> {
  const response = await core.createNamespacedServiceAccountToken({
    namespace,
    name: serviceAccount,
    body: { spec: { audiences, expirationSeconds } },
  });
  return response.status!.token;
}

/** The CSR API port the controller logged. */
export async function csrPort(proc: ControllerProcess): Promise<number> {
  const line = await proc.waitForLog('the CSR API port', (l) => l.msg.startsWith('serving the CSR API'));
  return line.port as number;
}
