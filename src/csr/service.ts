/**
 * One CreateCertificate call, from the decoded request to the answer: authenticate, parse, authorize,
 * decide the lifetime, sign. Every refusal is a Refusal with its gRPC code and a message for the
 * caller; every step counts in Citadel's metrics. Knows nothing about gRPC or Kubernetes clients.
 */
import type { Logger } from 'pino';
import type { SigningAuthority } from '../ca/authority.js';
import { serialHex } from '../ca/issue.js';
import type { CaConfig } from '../config/ca-spec.js';
import { CsrError, parseCsrPem } from '../pki/csr.js';
import { encodePem, issueLeafCertificate, randomSerialNumber } from '../pki/index.js';
import type { CsrServerMetrics } from '../telemetry/csr-metrics.js';
import { callerOfCertificate, chainDersOf, Semaphore, type TokenAuthenticator } from './authenticate.js';
import { authorizeNames, type Caller, decideValidityMs, Refusal, workloadSpiffeId } from './policy.js';
import type { CertificateRequest } from './protocol.js';

/** What the issuance record (revocation) needs to know about each certificate issued. */
export interface IssuedCertificateRecord {
  namespace: string;
  serviceAccount: string;
  /** Lowercase hex, as `alcazar inspect` shows it. */
  serial: string;
  notAfter: Date;
}

export type AuthorityView =
  | { status: 'ready'; authority: SigningAuthority }
  | { status: 'failed' | 'pending'; message: string };

/** Whether alcazar manages a namespace: undefined while its caches are not synced. */
export type NamespaceTargetingView = (namespace: string) => boolean | undefined;

export interface CertificateServiceOptions {
  authority: () => AuthorityView;
  config: () => CaConfig;
  isManagedNamespace: NamespaceTargetingView;
  tokens: TokenAuthenticator;
  metrics: CsrServerMetrics;
  log: Logger;
  /** Signatures at once (default 4): the controller's own issuing shares the same threadpool. */
  maxConcurrentSignatures?: number;
  /** Awaited before the chain is returned: a certificate that cannot be recorded is not handed out. */
  onIssued?: (record: IssuedCertificateRecord) => void | Promise<void>;
  now?: () => number;
}

/** What the transport hands over: the request, the bearer token (if any), the client certificate (if any). */
export interface IncomingCall {
  request: CertificateRequest;
  bearerToken: string | undefined;
  clientCertificateDer: Buffer | undefined;
}

export class CertificateService {
  private readonly signing: Semaphore;
  private readonly now: () => number;

  constructor(private readonly opts: CertificateServiceOptions) {
    this.signing = new Semaphore(opts.maxConcurrentSignatures ?? 4);
    this.now = opts.now ?? Date.now;
  }

  /** The response's cert_chain, or throws a Refusal. */
  async createCertificate(call: IncomingCall): Promise<string[]> {
    const { metrics } = this.opts;
    const state = this.opts.authority();
    if (state.status !== 'ready') {
      throw new Refusal('UNAVAILABLE', 'CaNotReady', `the CA cannot sign yet: ${state.message}`);
    }
    const { authority } = state;
    const config = this.opts.config();

    const caller = await this.authenticate(call, authority, config.trustDomain).catch((err: unknown) => {
      if (err instanceof Refusal && err.code === 'UNAUTHENTICATED') metrics.authenticationFailed();
      throw err;
    });

    let parsed: ReturnType<typeof parseCsrPem>;
    try {
      parsed = parseCsrPem(call.request.csr);
    } catch (err) {
      if (!(err instanceof CsrError)) throw err;
      metrics.csrUnparsable();
      throw new Refusal('INVALID_ARGUMENT', `Csr${err.reason}`, err.message);
    }

    const managed = this.opts.isManagedNamespace(caller.namespace);
    if (managed === undefined) {
      throw new Refusal('UNAVAILABLE', 'CachesNotSynced', 'the CA has not yet read the namespaces; retry');
    }
    if (!managed) {
      throw new Refusal(
        'PERMISSION_DENIED',
        'NamespaceNotManaged',
        `namespace ${caller.namespace} is not managed by this CA (labels ca.istio.io/override, ca.istio.io/env, or CertificateAuthority spec.namespaces)`,
      );
    }

    const spiffeId = workloadSpiffeId(config.trustDomain, caller);
    try {
      authorizeNames(parsed.names, spiffeId);
    } catch (err) {
      metrics.identityMismatch();
      throw err;
    }
    const validityMs = decideValidityMs(call.request.validityDurationSeconds, {
      defaultMs: config.csr.defaultValidityMs,
      maxMs: config.csr.maxValidityMs,
    });

    const now = this.now();
    // A leaf never outlives its signer (Istio #18990).
    const notAfter = new Date(Math.min(now + validityMs, authority.signer.notAfter.getTime()));
    const notBefore = new Date(now - Math.min(config.workload.clockSkewMs, validityMs / 10));
    const serial = randomSerialNumber();
    let leafPem: string;
    try {
      leafPem = (
        await this.signing.run(() =>
          issueLeafCertificate({
            publicKey: parsed.publicKey,
            spiffeId,
            notBefore,
            notAfter,
            issuer: { certificate: authority.signerCertificateDer, privateKey: authority.signerKey },
            serialNumber: serial,
          }),
        )
      ).pem;
    } catch (err) {
      metrics.signFailed();
      this.opts.log.error(
        { err, namespace: caller.namespace, serviceAccount: caller.serviceAccount },
        'signing failed',
      );
      throw new Refusal('INTERNAL', 'SignFailed', 'the CA failed to sign the certificate');
    }

    const chain = responseChain(leafPem, authority);
    const record: IssuedCertificateRecord = {
      namespace: caller.namespace,
      serviceAccount: caller.serviceAccount,
      serial: serialHex(serial),
      notAfter,
    };
    metrics.certificateIssued();
    this.opts.log.info(
      {
        namespace: caller.namespace,
        serviceAccount: caller.serviceAccount,
        serial: record.serial,
        notAfter: notAfter.toISOString(),
        key: parsed.keyDescription,
        authenticatedBy: caller.via,
      },
      'issued certificate for CSR',
    );
    await this.opts.onIssued?.(record);
    return chain;
  }

  private async authenticate(
    call: IncomingCall,
    authority: SigningAuthority,
    trustDomain: string,
  ): Promise<Caller> {
    if (call.clientCertificateDer) {
      const caller = callerOfCertificate(
        call.clientCertificateDer,
        authority,
        trustDomain,
        new Date(this.now()),
      );
      if (caller) return caller;
    }
    if (call.bearerToken === undefined) {
      throw new Refusal(
        'UNAUTHENTICATED',
        'NoCredentials',
        'no "authorization: Bearer <token>" metadata and no valid client certificate issued by this CA',
      );
    }
    return this.opts.tokens.authenticate(call.bearerToken);
  }
}

/**
 * Leaf, each CA certificate after it, and last the root bundle as one element: every root the mesh
 * trusts. The agent takes the last element as its trust anchors, so during a root rotation it
 * trusts the old and the new root alike, whichever signed its peer.
 */
export function responseChain(leafPem: string, authority: SigningAuthority): string[] {
  const withNewline = (pem: string) => (pem.endsWith('\n') ? pem : `${pem}\n`);
  const intermediates = chainDersOf(authority).map((der) => encodePem('CERTIFICATE', der));
  return [leafPem, ...intermediates, authority.rootBundlePem].map(withNewline);
}
