/**
 * Istio's CSR API in the controller process: builds the token authenticator, the service, the gRPC
 * server and its serving certificate from what the controller already has (the loaded authority,
 * the configuration, the namespace cache). Every replica serves: signing needs the loaded CA, not
 * the Lease.
 */

import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { CaConfig } from '../config/ca-spec.js';
import type { ProcessSettings } from '../config/process.js';
import type { CsrServerMetrics } from '../telemetry/csr-metrics.js';
import { TokenAuthenticator, type TokenReviewer } from './authenticate.js';
import type { SerialReservations } from './reservations.js';
import { startCsrServer } from './server.js';
import {
  type AuthorityView,
  CertificateService,
  type IssuedCertificateRecord,
  type NamespaceTargetingView,
} from './service.js';
import { ServingCertificateController } from './serving-certificate.js';
import { kubeTokenReviewer } from './token-review.js';

export type { IssuedCertificateRecord } from './service.js';

export interface CsrApiOptions {
  kubeConfig: KubeConfig;
  settings: ProcessSettings['csr'];
  caNamespace: string;
  authority: () => AuthorityView;
  /** Where authority changes are heard of (the shared state): each re-issues the serving certificate. */
  authorityChanges?: { subscribe(fn: () => void): void };
  config: () => CaConfig;
  isManagedNamespace: NamespaceTargetingView;
  metrics: CsrServerMetrics;
  log: Logger;
  /** Called for every certificate issued through the API (the issuance record). */
  onIssued?: (record: IssuedCertificateRecord) => void | Promise<void>;
  /** A record started early whose certificate was not issued (see CertificateServiceOptions). */
  onWithdrawn?: (record: IssuedCertificateRecord) => void;
  /** Told of each certificate recorded and about to be handed out. */
  afterIssued?: (record: IssuedCertificateRecord) => void;
  /** Serials recorded ahead for identities that ask often (./reservations.ts). */
  reservations?: SerialReservations;
  /** Whether a certificate serial is revoked (see CertificateServiceOptions). */
  isRevoked?: (serialHex: string) => boolean;
  /** Replaces the API server's TokenReview (tests). */
  review?: TokenReviewer;
}

export interface CsrApi {
  port: number;
  /** The authority changed: re-issue the serving certificate now. */
  authorityChanged(): void;
  readiness(): { name: string; ok: boolean; message?: string };
  stop(): Promise<void>;
}

export async function startCsrApi(opts: CsrApiOptions): Promise<CsrApi> {
  const reviewer = opts.review ? undefined : kubeTokenReviewer({ kubeConfig: opts.kubeConfig });
  const tokens = new TokenAuthenticator({
    review: opts.review ?? reviewer!.review,
    audiences: opts.settings.tokenAudiences,
    onReview: (outcome) => opts.metrics.tokenReviewed(outcome),
  });
  const service = new CertificateService({
    authority: opts.authority,
    config: opts.config,
    isManagedNamespace: opts.isManagedNamespace,
    tokens,
    metrics: opts.metrics,
    log: opts.log,
    onIssued: opts.onIssued,
    onWithdrawn: opts.onWithdrawn,
    afterIssued: opts.afterIssued,
    reservations: opts.reservations,
    isRevoked: opts.isRevoked,
  });
  const server = await startCsrServer({
    port: opts.settings.port,
    service,
    metrics: opts.metrics,
    log: opts.log,
  });
  const serving = new ServingCertificateController({
    authority: opts.authority,
    trustDomain: () => opts.config().trustDomain,
    caNamespace: opts.caNamespace,
    dnsNames: opts.settings.dnsNames,
    log: opts.log,
    onIssued: (certificate) => server.setServingCertificate(certificate),
  });
  serving.start();
  opts.authorityChanges?.subscribe(() => serving.enqueue());
  return {
    port: server.port,
    authorityChanged: () => serving.enqueue(),
    readiness: () => {
      if (!server.listening) return { name: 'csr-api', ok: false, message: 'not listening' };
      if (serving.valid) return { name: 'csr-api', ok: true, message: `port ${server.port}` };
      // Like ca-loaded: no certificate because no CA yet is the CA's problem, reported there.
      return opts.authority().status === 'ready'
        ? { name: 'csr-api', ok: false, message: 'no valid serving certificate' }
        : { name: 'csr-api', ok: true, message: 'waiting for the CA' };
    },
    stop: async () => {
      await serving.stop();
      await server.close();
      reviewer?.close();
    },
  };
}
