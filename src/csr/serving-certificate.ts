/**
 * The CSR API's own TLS certificate, issued by alcazar's CA (agents trust it through
 * istio-ca-root-cert) and swapped into the running server without a restart: when half its
 * lifetime has passed, and whenever the authority changes (a new signer, a new root bundle during
 * a rotation). A keyed reconciler with one key on the shared work queue type, requeued for the
 * next renewal.
 */
import type { Logger } from 'pino';
import type { SigningAuthority } from '../ca/authority.js';
import { runWorkers, WorkQueue } from '../kube/workqueue.js';
import { generateKeyPair, issueLeafCertificate, privateKeyToPem } from '../pki/index.js';
import type { AuthorityView } from './service.js';

export const SERVING_LIFETIME_MS = 24 * 3_600_000;
const KEY = 'serving-certificate';

export interface ServingCertificate {
  certificateChainPem: string;
  privateKeyPem: string;
  /** The roots clients are expected to chain to (sent as acceptable CAs when asking for a client certificate). */
  rootBundlePem: string;
  notBefore: number;
  notAfter: number;
  /** The authority generation that issued it. */
  generation: string;
}

export type ServingPlan =
  | { action: 'issue'; why: string }
  | { action: 'wait'; recheckInMs: number | undefined };

/**
 * Issue when there is none, when the authority changed, or once half the lifetime has passed. A
 * certificate never outlives its signer, so one that ends with it is not renewed (a new one could
 * end no later: in the signer's last minute that was a new certificate per pass, without end), and
 * nothing is issued once the signer has ended. A new signer wakes it (enqueue).
 */
export function planServingCertificate(
  current: Pick<ServingCertificate, 'notBefore' | 'notAfter' | 'generation'> | undefined,
  authority: AuthorityView,
  now: number,
): ServingPlan {
  if (authority.status !== 'ready') return { action: 'wait', recheckInMs: undefined };
  const signerEnd = authority.authority.signer.notAfter.getTime();
  if (signerEnd <= now) return { action: 'wait', recheckInMs: undefined };
  if (current === undefined) return { action: 'issue', why: 'none yet' };
  if (current.generation !== authority.authority.generation)
    return { action: 'issue', why: 'the CA changed' };
  if (current.notAfter >= signerEnd) return { action: 'wait', recheckInMs: undefined };
  const renewAt = current.notBefore + (current.notAfter - current.notBefore) / 2;
  if (now >= renewAt) return { action: 'issue', why: 'half its lifetime has passed' };
  return { action: 'wait', recheckInMs: renewAt - now };
}

export interface ServingCertificateOptions {
  authority: () => AuthorityView;
  trustDomain: () => string;
  caNamespace: string;
  dnsNames: readonly string[];
  log: Logger;
  onIssued: (certificate: ServingCertificate) => void;
  now?: () => number;
}

export class ServingCertificateController {
  readonly queue = new WorkQueue();
  private current: ServingCertificate | undefined;
  private running: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: ServingCertificateOptions) {
    this.now = opts.now ?? Date.now;
  }

  get certificate(): ServingCertificate | undefined {
    return this.current;
  }

  /** Whether a certificate is loaded and valid now. */
  get valid(): boolean {
    const now = this.now();
    return this.current !== undefined && this.current.notBefore <= now && now < this.current.notAfter;
  }

  start(): void {
    this.running = runWorkers(
      this.queue,
      1,
      () => this.reconcile(),
      (_, err, retryInMs) =>
        this.opts.log.warn({ err, retryInMs }, 'issuing the CSR API serving certificate failed; will retry'),
    );
    this.enqueue();
  }

  /** Look again now (the authority changed). */
  enqueue(): void {
    this.queue.add(KEY);
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await this.running;
  }

  private async reconcile(): Promise<void> {
    const state = this.opts.authority();
    const plan = planServingCertificate(this.current, state, this.now());
    if (plan.action === 'wait') {
      if (plan.recheckInMs !== undefined) this.queue.addAfter(KEY, plan.recheckInMs);
      return;
    }
    if (state.status !== 'ready') return;
    this.current = await this.issue(state.authority);
    this.opts.onIssued(this.current);
    this.opts.log.info(
      {
        why: plan.why,
        notAfter: new Date(this.current.notAfter).toISOString(),
        dnsNames: this.opts.dnsNames,
      },
      'CSR API serving certificate issued',
    );
    this.queue.addAfter(KEY, (this.current.notAfter - this.current.notBefore) / 2);
  }

  private async issue(authority: SigningAuthority): Promise<ServingCertificate> {
    const now = this.now();
    const keys = await generateKeyPair('ECDSA_P256');
    const notBefore = now - 60_000;
    const notAfter = Math.min(now + SERVING_LIFETIME_MS, authority.signer.notAfter.getTime());
    const leaf = await issueLeafCertificate({
      publicKey: keys.publicKey,
      spiffeId: `spiffe://${this.opts.trustDomain()}/ns/${this.opts.caNamespace}/sa/alcazar`,
      dnsNames: this.opts.dnsNames,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      issuer: { certificate: authority.signerCertificateDer, privateKey: authority.signerKey },
    });
    return {
      certificateChainPem: leaf.pem + authority.chainPem,
      privateKeyPem: privateKeyToPem(keys.privateKey),
      rootBundlePem: authority.rootBundlePem,
      notBefore,
      notAfter,
      generation: authority.generation,
    };
  }
}
