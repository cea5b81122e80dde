// CertificateRevocation objects: each is decided once, applied or refused, and the decision is
// written to its status. What an applied revocation lists is acted on elsewhere, through the
// shared cache: the workload Secrets controller reissues, the CRL controller signs.
import type { Logger } from 'pino';
import {
  parseCertificateRevocationSpec,
  certificateRevocationResource as resource,
} from '../../config/revocation-spec.js';
import { isNotFound } from '../../kube/client.js';
import { systemClock } from '../../kube/clock.js';
import { type ApiRequester, MERGE_PATCH_CONTENT } from '../../kube/raw.js';
import { WorkQueue } from '../../kube/workqueue.js';
import { normalizeSerialHex } from '../../pki/crl.js';
import type { IssuanceRecord } from '../../revocation/issuance-record.js';
import type { ControllerContext } from '../context.js';
import { startReconcileLoop } from '../reconcile-loop.js';
import { serviceAccountOfSecret, workloadSecretName } from '../workload-secrets/plan.js';
import { APPLIED, REFUSED, type RevocationCondition, type RevocationStatus } from './observe.js';
import { type IssuedCertificate, planRevocation, type RevocationDecision } from './plan.js';

export interface RevocationControllerOptions extends ControllerContext {
  raw: ApiRequester;
  record: IssuanceRecord;
  now?: () => number;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export class RevocationController {
  readonly queue: WorkQueue;
  private workers: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: RevocationControllerOptions) {
    const clock = opts.clock ?? systemClock;
    this.now = opts.now ?? (() => clock.now());
    this.queue = new WorkQueue({ clock });
    const enqueue = (key: string) => this.queue.add(key);
    opts.caches.revocations.subscribe({ added: enqueue, updated: enqueue });
    // Followers decide nothing: a new leader looks at every revocation.
    opts.caches.state.leading.subscribe((leading) => leading && this.enqueueAll());
    opts.caches.state.configHeld.subscribe((held) => !held && this.enqueueAll());
  }

  start(): void {
    this.workers = startReconcileLoop({
      queue: this.queue,
      workers: 1,
      reconcile: (key) => this.reconcile(key),
      log: this.opts.log,
      describeKey: (key) => ({ revocation: key }),
    });
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await this.workers;
  }

  enqueueAll(): void {
    for (const [key] of this.opts.caches.revocations.entries()) this.queue.add(key);
  }

  /** What the Secrets hold now: the current certificate of every workload Secret (a walk of all). */
  private secretCertificates(filter: (serial: string) => boolean) {
    const found: IssuedCertificate[] = [];
    for (const [key] of this.opts.caches.workloadSecrets.entries()) {
      const cert = this.secretCertificate(key);
      if (cert && filter(cert.serial)) found.push(cert);
    }
    return found;
  }

  /** The certificate one workload Secret (namespace/name) holds now, if it is one of ours. */
  private secretCertificate(key: string): IssuedCertificate | undefined {
    const cert = this.opts.caches.workloadSecrets.get(key)?.certificate;
    const [namespace, name] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
    const serviceAccount = serviceAccountOfSecret(name);
    const serial = cert && normalizeSerialHex(cert.serial);
    if (!cert || !serviceAccount || !serial) return undefined;
    return { serial, namespace, serviceAccount, notAfter: cert.notAfter, issuedAt: cert.notBefore };
  }

  async reconcile(key: string): Promise<void> {
    if (!this.opts.canWrite()) return;
    const view = this.opts.caches.revocations.get(key);
    if (!view || (view.decided && view.decided.generation === view.generation)) return;
    const [namespace, name] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
    const request = parseCertificateRevocationSpec(view.spec);
    const sa = request.ok ? request.request.serviceAccountName : undefined;
    const serials = request.ok ? request.request.serials : [];

    const issuedToServiceAccount: IssuedCertificate[] = [];
    if (sa !== undefined) {
      // Its one Secret, read by key: walking every Secret for it made a burst of K revocations cost
      // K times all of them.
      const secret = this.secretCertificate(`${namespace}/${workloadSecretName(sa)}`);
      if (secret) issuedToServiceAccount.push(secret);
      issuedToServiceAccount.push(...(await this.opts.record.forIdentity(namespace, sa)));
    }
    const issuedBySerial = new Map<string, IssuedCertificate>();
    if (serials.length > 0) {
      const wanted = new Set(serials);
      for (const cert of this.secretCertificates((serial) => wanted.has(serial)))
        issuedBySerial.set(cert.serial, cert);
      const missing = serials.filter((s) => !issuedBySerial.has(s));
      for (const [serial, cert] of await this.opts.record.findSerials(missing))
        issuedBySerial.set(serial, cert);
    }
    const now = this.now();
    const decision = planRevocation({
      namespace,
      caNamespace: this.opts.caNamespace,
      createdAt: view.createdAt,
      request,
      serviceAccountExists:
        sa !== undefined && this.opts.caches.serviceAccounts.get(`${namespace}/${sa}`) !== undefined,
      issuedToServiceAccount,
      issuedBySerial,
      now,
    });
    const log = this.opts.log.child({ namespace, revocation: name });
    await this.writeStatus(namespace, name, statusOf(decision, view.generation, now), log);
    const involved = {
      apiVersion: `${resource.group}/${resource.version}`,
      kind: resource.kind,
      namespace,
      name,
      uid: view.uid,
    };
    if (decision.action === 'apply') {
      log.info({ serials: decision.revoked.map((r) => r.serial) }, decision.message);
      this.opts.events.record(involved, 'Normal', 'Revoked', decision.message);
    } else {
      log.warn({ reason: decision.reason }, `revocation refused: ${decision.message}`);
      this.opts.events.record(involved, 'Warning', decision.reason, decision.message);
    }
  }

  private async writeStatus(
    namespace: string,
    name: string,
    status: RevocationStatus,
    log: Logger,
  ): Promise<void> {
    const path = `/apis/${resource.group}/${resource.version}/namespaces/${encodeURIComponent(namespace)}/${resource.plural}/${encodeURIComponent(name)}/status`;
    try {
      await this.opts.raw.request('PATCH', path, { status }, MERGE_PATCH_CONTENT);
    } catch (err) {
      if (isNotFound(err)) {
        log.debug('revocation deleted before its status was written');
        return;
      }
      throw err;
    }
  }
}

export function statusOf(decision: RevocationDecision, generation: number, now: number): RevocationStatus {
  const condition = (
    type: RevocationCondition['type'],
    ok: boolean,
    reason: string,
    message: string,
  ): RevocationCondition => ({
    type,
    status: ok ? 'True' : 'False',
    reason,
    message,
    lastTransitionTime: iso(now),
    observedGeneration: generation,
  });
  if (decision.action === 'refuse') {
    return {
      observedGeneration: generation,
      revokedCount: 0,
      revoked: [],
      conditions: [
        condition(APPLIED, false, decision.reason, decision.message),
        condition(REFUSED, true, decision.reason, decision.message),
      ],
    };
  }
  return {
    observedGeneration: generation,
    revokedAt: iso(now),
    revokedCount: decision.revoked.length,
    revoked: decision.revoked.map((r) => ({
      serialNumber: r.serial,
      notAfter: iso(r.notAfter),
      ...(r.namespace !== undefined && { namespace: r.namespace }),
      ...(r.serviceAccount !== undefined && { serviceAccount: r.serviceAccount }),
    })),
    conditions: [
      condition(APPLIED, true, 'Revoked', decision.message),
      condition(REFUSED, false, 'Accepted', 'the revocation is within what this namespace may revoke'),
    ],
  };
}
