// ServiceAccount → istio.<sa> Secret. Every event only enqueues a key
// (namespace/serviceaccount, key-index.ts); a worker reads the caches, asks
// `plan`, and carries out the one decision through the writers. Running a
// key twice changes nothing the second time.
import type { SigningAuthority } from '../../ca/authority.js';
import { systemClock } from '../../kube/clock.js';
import type { InvolvedObject } from '../../kube/events.js';
import { WorkQueue } from '../../kube/workqueue.js';
import { spiffeIdFor, workloadSecretName } from '../../model/names.js';
import { isManagedNamespace } from '../../model/targeting.js';
import { normalizeSerialHex } from '../../pki/crl.js';
import {
  defaultReservedDnsNames,
  describeRefusedDnsNames,
  type RefusedDnsName,
} from '../../policy/dns-names.js';
import type { IssuanceRecord } from '../../revocation/issuance-record.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { AuthorityState } from '../authority/state.js';
import type { ControllerContext } from '../context.js';
import { startReconcileLoop } from '../reconcile-loop.js';
import { WorkloadKeyIndex } from './key-index.js';
import { type ObservedSecret, signedByAuthority } from './observe.js';
import {
  authorisedDnsNames,
  type CaView,
  caViewOf,
  createForbiddenIsExpected,
  type Decision,
  plan,
  planCreateConflict,
  type SecretView,
  workloadPolicy,
} from './plan.js';
import { splitKey, type WorkloadCounts, WorkloadQueries } from './queries.js';
import { WorkloadSecretWriter, type WorkloadTarget } from './writers.js';

export type { WorkloadCounts } from './queries.js';

export interface WorkloadSecretsOptions extends ControllerContext {
  /** The hot write path (Secret create and patch) goes around client-node's serialiser. */
  raw: import('../../kube/raw.js').ApiRequester;
  /** How long to wait before looking again at a ServiceAccount whose name is taken by a foreign Secret. */
  foreignRecheckMs: number;
  metrics?: Metrics;
  /** Where superseded certificates that are still valid are recorded, so revoking their identity covers them. */
  record?: Pick<IssuanceRecord, 'record'>;
  now?: () => number;
  /**
   * Names alcazar serves itself (the CSR API's serving certificate): never given to a workload
   * unless an allow rule names them. Default: defaultReservedDnsNames(caNamespace).
   */
  reservedDnsNames?: readonly string[];
}

interface Reconciling extends Omit<WorkloadTarget, 'authority'> {
  key: string;
  authority?: SigningAuthority;
  log: ControllerContext['log'];
  involved: InvolvedObject;
}

export class WorkloadSecretsController {
  readonly queue: WorkQueue;
  /** Read-only questions for the status, the metrics and root rotation. */
  readonly queries: WorkloadQueries;
  /** Keys whose last reconcile could not reach the desired state (shared: the status counts them). */
  private readonly failing: Set<string>;
  private readonly keys: WorkloadKeyIndex;
  private readonly writer: WorkloadSecretWriter;
  private workers: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly reservedDnsNames: readonly string[];
  /** Per key, the DNS names last refused, so each refusal is counted once, not at every reconcile. */
  private readonly refusedDnsNames = new Map<string, ReadonlySet<string>>();

  /** Serials listed by applied CertificateRevocations, rebuilt after a revocation event. */
  private revokedSerials: Set<string> | undefined;

  constructor(private readonly opts: WorkloadSecretsOptions) {
    const clock = opts.clock ?? systemClock;
    this.now = opts.now ?? (() => clock.now());
    this.queue = new WorkQueue({ clock });
    this.failing = opts.caches.state.failingWorkloads;
    this.queries = new WorkloadQueries(opts.caches, opts.caNamespace);
    this.keys = new WorkloadKeyIndex(opts.caches, this.queue, this.now);
    this.writer = new WorkloadSecretWriter(opts.raw, opts.caches, opts.metrics);
    this.reservedDnsNames = opts.reservedDnsNames ?? defaultReservedDnsNames(opts.caNamespace);
    // A new configuration, a new CA or a new leader: every ServiceAccount is looked at again.
    const { state } = opts.caches;
    state.config.subscribe(() => this.enqueueAll());
    state.authority.subscribe(() => this.enqueueAll());
    state.leading.subscribe((leading) => leading && this.enqueueAll());
    state.configHeld.subscribe((held) => !held && this.enqueueAll());
    // An applied revocation: the ServiceAccounts it lists are reissued.
    const onRevocation = (
      _: string,
      view: { revoked: { namespace?: string; serviceAccount?: string }[] },
    ) => {
      this.revokedSerials = undefined;
      for (const entry of view.revoked) {
        if (entry.namespace && entry.serviceAccount)
          this.keys.enqueue(`${entry.namespace}/${entry.serviceAccount}`);
      }
    };
    opts.caches.revocations.subscribe({
      added: onRevocation,
      updated: (key, _, view) => onRevocation(key, view),
      deleted: () => {
        this.revokedSerials = undefined;
      },
    });
    opts.caches.serviceAccounts.subscribe({ deleted: (key) => this.refusedDnsNames.delete(key) });
  }

  /** Starts the workers; the shared caches must have synced. */
  start(): void {
    this.workers = startReconcileLoop({
      queue: this.queue,
      workers: this.opts.workers,
      reconcile: (key) => this.reconcile(key),
      metrics: this.opts.metrics,
      log: this.opts.log,
      describeKey: (key) => {
        const [namespace, serviceAccount] = splitKey(key);
        return { namespace, serviceAccount };
      },
      onError: (key) => this.failing.add(key),
      idleDetails: () => ({ ...this.counts() }),
    });
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await this.workers;
  }

  /** Re-examines every ServiceAccount and Secret (after a CA or config change). */
  enqueueAll(): void {
    this.keys.enqueueAll();
  }

  counts(): WorkloadCounts {
    return this.queries.counts();
  }

  /** For root rotation: of the managed workload Secrets, how many carry the bundle and come from the signer. */
  rotationProgress(authority: SigningAuthority): {
    total: number;
    bundleCurrent: number;
    signedByActive: number;
  } {
    return this.queries.rotationProgress(authority);
  }

  /** notAfter (ms) of every certificate in the cache, for the expiry metric. */
  certificateExpiries(): Iterable<number> {
    return this.queries.certificateExpiries();
  }

  private isRevoked(serial: string): boolean {
    if (!this.revokedSerials) {
      this.revokedSerials = new Set();
      for (const [, view] of this.opts.caches.revocations.entries())
        for (const entry of view.revoked) this.revokedSerials.add(entry.serial);
    }
    if (this.revokedSerials.size === 0) return false;
    const canonical = normalizeSerialHex(serial);
    return canonical !== undefined && this.revokedSerials.has(canonical);
  }

  async reconcile(key: string): Promise<void> {
    if (!this.opts.canWrite()) return;
    const { caches } = this.opts;
    const [namespace, serviceAccount] = splitKey(key);
    const config = this.opts.config();
    const state = this.opts.authority();
    const sa = caches.serviceAccounts.get(key);
    const cached = caches.workloadSecrets.get(`${namespace}/${workloadSecretName(serviceAccount)}`);
    const now = this.now();
    const ns = caches.namespaces.get(namespace);
    const policy = workloadPolicy(config, this.reservedDnsNames);
    const decision = plan({
      namespace,
      serviceAccount,
      sa,
      ns,
      secret: cached && withSigner(cached, state),
      ca: caView(state),
      policy,
      targeting: config.namespaces,
      caNamespace: this.opts.caNamespace,
      revoked: cached?.certificate !== undefined && this.isRevoked(cached.certificate.serial),
      now,
    });
    const managed =
      sa !== undefined &&
      ns !== undefined &&
      !ns.terminating &&
      isManagedNamespace(namespace, ns.labels, config.namespaces, this.opts.caNamespace);
    const dnsNames = managed ? authorisedDnsNames(namespace, sa, ns, policy) : { allowed: [], refused: [] };
    // Made when first used: most reconciles (every key at each resync) log nothing, and a pino
    // child per reconcile was 8% of a resync's CPU at 100,000 ServiceAccounts.
    let child: ControllerContext['log'] | undefined;
    const log = () => (child ??= this.opts.log.child({ namespace, serviceAccount }));
    const involved: InvolvedObject = {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      namespace,
      name: serviceAccount,
      uid: sa?.uid,
    };
    if (sa?.dnsNamesError) this.opts.events.record(involved, 'Warning', 'InvalidDnsNames', sa.dnsNamesError);
    this.reportRefusedDnsNames(key, involved, log, dnsNames.refused);
    const authority = state.status === 'ready' ? state.authority : undefined;
    const target = {
      key,
      namespace,
      serviceAccount,
      sa,
      secret: cached,
      config,
      authority,
      now,
      get log() {
        return log();
      },
      involved,
      dnsNames: dnsNames.allowed,
    };
    await this.execute(decision, target);
    if (this.opts.log.isLevelEnabled('debug'))
      log().debug(
        { action: decision.action, reason: 'reason' in decision ? decision.reason : undefined },
        'reconciled',
      );
    if (decision.action !== 'report') this.failing.delete(key);
    if (decision.action === 'none' && decision.recheckAt !== undefined) {
      this.queue.addAfter(key, decision.recheckAt - now);
    }
  }

  /**
   * Refused names: a Warning Event on the ServiceAccount (the recorder writes the same one at most
   * once per window) and the metric, counted once per name newly refused.
   */
  private reportRefusedDnsNames(
    key: string,
    involved: InvolvedObject,
    log: () => ControllerContext['log'],
    refused: readonly RefusedDnsName[],
  ): void {
    const before = this.refusedDnsNames.get(key);
    if (refused.length === 0) {
      this.refusedDnsNames.delete(key);
      return;
    }
    const message = `DNS names left out of the certificate: ${describeRefusedDnsNames(refused)}`;
    this.opts.events.record(involved, 'Warning', 'DNSNameRefused', message);
    const fresh = refused.filter((r) => !before?.has(r.name));
    if (fresh.length === 0) return;
    log().warn({ refused: fresh.map((r) => ({ name: r.name, reason: r.reason })) }, 'DNS names refused');
    for (const r of fresh) this.opts.metrics?.dnsNameRefused(r.reason);
    this.refusedDnsNames.set(key, new Set(refused.map((r) => r.name)));
  }

  /** Carries out one decision; what the API answers is handed back to `plan` functions, never judged here. */
  private async execute(decision: Decision, r: Reconciling): Promise<void> {
    const secretName = workloadSecretName(r.serviceAccount);
    switch (decision.action) {
      case 'none':
        return;
      case 'report':
        this.failing.add(r.key);
        if (decision.reason === 'CANotReady') {
          r.log.debug({ reason: decision.reason }, decision.message); // the CR status and the CA log say it once
          return;
        }
        r.log.warn({ reason: decision.reason }, decision.message);
        this.opts.events.record(r.involved, 'Warning', decision.reason, decision.message);
        if (decision.reason === 'ForeignSecret') this.queue.addAfter(r.key, this.opts.foreignRecheckMs);
        return;
      case 'delete':
      case 'recreate':
        this.keys.deleting(r.key, true);
        try {
          await this.writer.delete(r.namespace, r.secret!, secretName);
        } catch (err) {
          this.keys.deleting(r.key, false);
          throw err;
        }
        r.log.info({ reason: decision.reason, secret: secretName }, 'deleted workload Secret');
        if (decision.reason === 'ServiceAccountDeleted') this.opts.metrics?.serviceAccountSecretDeleted();
        if (decision.action === 'delete' && r.sa) {
          this.opts.events.record(
            r.involved,
            'Normal',
            decision.reason,
            `deleted Secret ${secretName}: ${decision.reason}`,
          );
        }
        return;
      case 'create': {
        const t = signing(r);
        const material = await this.writer.mint(t);
        const outcome = await this.writer.create(t, material);
        if (outcome.result === 'conflict') {
          await this.execute(planCreateConflict(r.serviceAccount, outcome), r);
          return;
        }
        if (outcome.result === 'forbidden') {
          if (createForbiddenIsExpected(this.opts.caches.namespaces.get(r.namespace))) return;
          throw outcome.error;
        }
        this.opts.metrics?.workloadSecretCreated(
          this.keys.takeSecretDeleted(r.key) ? 'secretDeleted' : 'serviceAccount',
        );
        this.issued(r, decision.reason, material.serialHex, material.notAfter);
        return;
      }
      case 'reissue': {
        const t = signing(r);
        await this.recordSuperseded(r);
        const material = await this.writer.mint(t);
        await this.writer.reissue(t, material);
        this.issued(r, decision.reason, material.serialHex, material.notAfter);
        if (decision.reason === 'DnsNameNotAllowed' && decision.message) {
          this.opts.events.record(r.involved, 'Warning', 'DNSNameRemoved', `reissued: ${decision.message}`);
        }
        return;
      }
      case 'refreshBundle':
        await this.writer.refreshBundle(signing(r));
        r.log.info({ reason: decision.reason }, 'refreshed root bundle of workload Secret');
        return;
    }
  }

  /**
   * The certificate being replaced may still be valid and in use: record it, so that revoking its
   * ServiceAccount later covers it too. Best effort: a failure is logged, the reissue goes on.
   */
  private async recordSuperseded(r: Reconciling): Promise<void> {
    const cert = r.secret?.certificate;
    if (!this.opts.record || !cert || cert.notAfter <= r.now) return;
    try {
      await this.opts.record.record({
        namespace: r.namespace,
        serviceAccount: r.serviceAccount,
        serial: cert.serial,
        notAfter: new Date(cert.notAfter),
        issuedAt: new Date(cert.notBefore),
      });
    } catch (err) {
      r.log.warn({ err: (err as Error).message }, 'could not record the superseded certificate');
    }
  }

  private issued(r: Reconciling, reason: string, serialHex: string, notAfter: Date): void {
    this.opts.metrics?.certificateIssued(reason, reason === 'RenewalDue');
    const message = `issued certificate serial ${serialHex} for ${spiffeIdFor(r.config.trustDomain, r.namespace, r.serviceAccount)}, valid until ${notAfter.toISOString()} (${reason})`;
    r.log.info(
      { reason, serial: serialHex, notAfter: notAfter.toISOString() },
      'issued workload certificate',
    );
    this.opts.events.record(r.involved, 'Normal', 'CertificateIssued', message);
  }
}

/** Only decisions taken with a ready CA sign anything. */
function signing(r: Reconciling): WorkloadTarget {
  if (!r.authority) throw new Error('the CA is not ready');
  return { ...r, authority: r.authority };
}

function caView(state: AuthorityState): CaView {
  return state.status === 'ready'
    ? caViewOf(state.authority)
    : { ready: false, notReadyReason: state.message };
}

/** The cached view with the signer it was checked against; the cache's own object is left as it is. */
function withSigner(secret: ObservedSecret, state: AuthorityState): SecretView {
  if (!secret.certificate || state.status !== 'ready') return secret;
  const signedBy = signedByAuthority(secret, state.authority)
    ? state.authority.signer.fingerprintSha256
    : undefined;
  return { ...secret, certificate: { ...secret.certificate, signedBy } };
}
