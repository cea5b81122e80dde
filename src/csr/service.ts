/**
 * One CreateCertificate call, from the decoded request to the answer: authenticate, parse, authorize,
 * decide the lifetime, sign. Every refusal is a Refusal with its gRPC code and a message for the
 * caller; every step counts in Citadel's metrics. Knows nothing about gRPC or Kubernetes clients.
 */
import type { Logger } from 'pino';
import type { SigningAuthority } from '../ca/authority.js';
import { serialHex } from '../ca/issue.js';
import type { CaConfig } from '../config/ca-spec.js';
import { normalizeSerialHex } from '../pki/crl.js';
import { CsrError, parseCsrPem } from '../pki/csr.js';
import { encodePem, issueLeafCertificate, randomSerialNumber } from '../pki/index.js';
import type { CsrServerMetrics } from '../telemetry/csr-metrics.js';
import {
  callerOfCertificate,
  chainDersOf,
  claimedServiceAccount,
  jwtExpiry,
  Semaphore,
  type TokenAuthenticator,
} from './authenticate.js';
import { authorizeNames, type Caller, decideValidityMs, Refusal, workloadSpiffeId } from './policy.js';
import type { CertificateRequest } from './protocol.js';
import type { Reservation, SerialReservations } from './reservations.js';

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
  /**
   * When given, onIssued starts while the caller's TokenReview is still out, for the identity the
   * token claims (unverified) and a CSR that would pass for it; a record whose certificate is then
   * not issued (the review fails or names someone else, or signing fails) is handed here to be
   * taken back. README "Use alcazar as the CA of an Istio mesh" says what this trades.
   */
  onWithdrawn?: (record: IssuedCertificateRecord) => void;
  /** Told of each certificate once it is recorded and about to be handed out. */
  afterIssued?: (record: IssuedCertificateRecord) => void;
  /**
   * Serials recorded ahead for identities that ask often (./reservations.ts): a CSR that takes one
   * waits for no record write. Without it, each certificate's record is written on its own path.
   */
  reservations?: SerialReservations;
  /**
   * Whether a certificate serial (canonical hex, normalizeSerialHex) is revoked: a revoked client
   * certificate proves nothing (the caller may still use a token). Without it, none is.
   */
  isRevoked?: (serialHex: string) => boolean;
  now?: () => number;
}

interface Lifetime {
  notAfter: Date;
  notBefore: Date;
  serial: bigint;
}

/** A record started before the caller was proven (see recordEarly). */
interface EarlyRecord {
  claimed: { namespace: string; serviceAccount: string };
  parsed: ReturnType<typeof parseCsrPem>;
  lifetime: Lifetime;
  record: IssuedCertificateRecord;
  recorded: Promise<void>;
  withdraw(): void;
}

/** What the transport hands over: the request, the bearer token (if any), the client certificate (if any). */
export interface IncomingCall {
  request: CertificateRequest;
  bearerToken: string | undefined;
  clientCertificateDer: Buffer | undefined;
  /** Aborted once the caller has been answered without us (the server's deadline): stop there. */
  signal?: AbortSignal;
}

/** Nobody waits for the answer any more: nothing more is signed or recorded for the call. */
function checkAbandoned(call: IncomingCall): void {
  if (call.signal?.aborted)
    throw new Refusal('DEADLINE_EXCEEDED', 'Abandoned', 'the call was answered at its deadline; not issued');
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
    if (authority.signer.notAfter.getTime() <= this.now()) {
      // A self-signed root stays loaded past its end for its rotation; it can only issue expired leaves.
      throw new Refusal(
        'UNAVAILABLE',
        'SignerExpired',
        `the signing certificate ended at ${authority.signer.notAfter.toISOString()}; nothing is issued until it is replaced`,
      );
    }
    const config = this.opts.config();

    const authenticated = this.authenticate(call, authority, config.trustDomain);
    const early = this.recordEarly(call, authority, config);
    const caller = await authenticated.catch((err: unknown) => {
      early?.withdraw();
      if (err instanceof Refusal && err.code === 'UNAUTHENTICATED') metrics.authenticationFailed();
      throw err;
    });
    const confirmed =
      early?.claimed.namespace === caller.namespace && early.claimed.serviceAccount === caller.serviceAccount
        ? early
        : undefined;
    if (early && !confirmed) early.withdraw();
    try {
      return await this.issue(call, caller, authority, config, confirmed);
    } catch (err) {
      confirmed?.withdraw();
      throw err;
    }
  }

  /**
   * Starts recording, before the caller is proven, the certificate a token's claimed identity would
   * get for this CSR; undefined when there is nothing to start (no hook, a client certificate, a
   * token that claims no ServiceAccount, or a request that would be refused anyway).
   */
  private recordEarly(
    call: IncomingCall,
    authority: SigningAuthority,
    config: CaConfig,
  ): EarlyRecord | undefined {
    const { onIssued, onWithdrawn } = this.opts;
    if (!onIssued || !onWithdrawn || call.clientCertificateDer || call.bearerToken === undefined) return;
    const claimed = claimedServiceAccount(call.bearerToken);
    if (!claimed || this.opts.isManagedNamespace(claimed.namespace) !== true) return;
    // A token that says it has expired is refused before any review: nothing to record for it.
    const expiry = jwtExpiry(call.bearerToken);
    if (expiry !== undefined && expiry <= this.now()) return; // (legacy tokens carry no exp)
    let parsed: ReturnType<typeof parseCsrPem>;
    let validityMs: number;
    try {
      parsed = parseCsrPem(call.request.csr);
      authorizeNames(parsed.names, workloadSpiffeId(config.trustDomain, claimed));
      validityMs = this.validityOf(call, config);
    } catch {
      return; // refused again, with its metric, once the caller is known
    }
    const lifetime = this.lifetime(authority, config, validityMs);
    const reserved = this.takeReservation(claimed, lifetime);
    const record = this.recordOf(claimed, lifetime);
    const recorded = reserved ? Promise.resolve() : Promise.resolve(onIssued(record));
    recorded.catch(() => {}); // awaited (and its error answered) only if the certificate is issued
    let withdrawn = false;
    return {
      claimed,
      parsed,
      lifetime,
      record,
      recorded,
      withdraw: () => {
        if (withdrawn) return;
        withdrawn = true;
        if (reserved) this.opts.reservations?.putBack(claimed.namespace, claimed.serviceAccount, reserved);
        else onWithdrawn(record);
      },
    };
  }

  /** Takes the identity's reserved serial into `lifetime` if one covers it (already recorded). */
  private takeReservation(
    who: { namespace: string; serviceAccount: string },
    lifetime: Lifetime,
  ): Reservation | undefined {
    const reserved = this.opts.reservations?.take(
      who.namespace,
      who.serviceAccount,
      lifetime.notAfter.getTime(),
    );
    if (reserved) lifetime.serial = reserved.serial;
    return reserved;
  }

  private async issue(
    call: IncomingCall,
    caller: Caller,
    authority: SigningAuthority,
    config: CaConfig,
    early: EarlyRecord | undefined,
  ): Promise<string[]> {
    const { metrics } = this.opts;
    let parsed: ReturnType<typeof parseCsrPem>;
    try {
      parsed = early?.parsed ?? parseCsrPem(call.request.csr);
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
    checkAbandoned(call);
    const lifetime = early?.lifetime ?? this.lifetime(authority, config, this.validityOf(call, config));
    const reserved = early ? undefined : this.takeReservation(caller, lifetime);
    const { notAfter, notBefore, serial } = lifetime;
    let leafPem: string;
    try {
      leafPem = (
        await this.signing.run(() => {
          checkAbandoned(call); // it may have waited for a signing slot past its deadline
          return issueLeafCertificate({
            publicKey: parsed.publicKey,
            spiffeId,
            notBefore,
            notAfter,
            issuer: { certificate: authority.signerCertificateDer, privateKey: authority.signerKey },
            serialNumber: serial,
          });
        })
      ).pem;
    } catch (err) {
      if (reserved) this.opts.reservations?.putBack(caller.namespace, caller.serviceAccount, reserved);
      if (err instanceof Refusal) throw err;
      metrics.signFailed();
      this.opts.log.error(
        { err, namespace: caller.namespace, serviceAccount: caller.serviceAccount },
        'signing failed',
      );
      throw new Refusal('INTERNAL', 'SignFailed', 'the CA failed to sign the certificate');
    }
    // Abandoned while signing: not handed out. A reserved serial is not put back: it is in a
    // certificate now, even one that never leaves this process.
    checkAbandoned(call);

    const chain = responseChain(leafPem, authority);
    const record = early?.record ?? this.recordOf(caller, { notAfter, notBefore, serial });
    if (early) await early.recorded;
    else if (!reserved) await this.opts.onIssued?.(record);
    // Abandoned while its record was written (a slow API server): recorded, but not handed out.
    checkAbandoned(call);
    metrics.certificateIssued();
    this.opts.reservations?.issued(caller.namespace, caller.serviceAccount);
    this.opts.afterIssued?.(record);
    this.opts.log.info(
      {
        namespace: caller.namespace,
        serviceAccount: caller.serviceAccount,
        serial: record.serial,
        notAfter: notAfter.toISOString(),
        keyType: parsed.keyDescription,
        authenticatedBy: caller.via,
      },
      'issued certificate for CSR',
    );
    return chain;
  }

  private validityOf(call: IncomingCall, config: CaConfig): number {
    return decideValidityMs(call.request.validityDurationSeconds, {
      defaultMs: config.csr.defaultValidityMs,
      maxMs: config.csr.maxValidityMs,
    });
  }

  private lifetime(authority: SigningAuthority, config: CaConfig, validityMs: number): Lifetime {
    const now = this.now();
    return {
      // A leaf never outlives its signer (Istio #18990).
      notAfter: new Date(Math.min(now + validityMs, authority.signer.notAfter.getTime())),
      notBefore: new Date(now - Math.min(config.workload.clockSkewMs, validityMs / 10)),
      serial: randomSerialNumber(),
    };
  }

  private recordOf(
    who: { namespace: string; serviceAccount: string },
    lifetime: Lifetime,
  ): IssuedCertificateRecord {
    return {
      namespace: who.namespace,
      serviceAccount: who.serviceAccount,
      serial: serialHex(lifetime.serial),
      notAfter: lifetime.notAfter,
    };
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
      // A leaked key stays useless once revoked: it must not buy a fresh certificate.
      const serial = caller?.certificateSerialHex && normalizeSerialHex(caller.certificateSerialHex);
      const revoked = !!serial && this.opts.isRevoked?.(serial) === true;
      if (caller && !revoked) return caller;
      if (caller && call.bearerToken === undefined)
        throw new Refusal(
          'UNAUTHENTICATED',
          'CertificateRevoked',
          `the client certificate (serial ${serial}) has been revoked; present a token instead`,
        );
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
