// ServiceAccount → istio.<sa> Secret. Every event only enqueues a key
// (namespace/serviceaccount, key-index.ts); a worker reads the caches, asks
// `plan`, and carries out the one decision through the writers. Running a
// key twice changes nothing the second time.
import type { SigningAuthority } from '../../ca/authority.js';
import { systemClock } from '../../kube/clock.js';
import type { InvolvedObject } from '../../kube/events.js';
import { WorkQueue } from '../../kube/workqueue.js';
import { spiffeIdFor, workloadSecretName } from '../../model/names.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { AuthorityState } from '../authority/state.js';
import type { ControllerContext } from '../context.js';
import { startReconcileLoop } from '../reconcile-loop.js';
import { WorkloadKeyIndex } from './key-index.js';
import { type ObservedSecret, signedByAuthority } from './observe.js';
import {
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
  now?: () => number;
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

  constructor(private readonly opts: WorkloadSecretsOptions) {
    const clock = opts.clock ?? systemClock;
    this.now = opts.now ?? (() => clock.now());
    this.queue = new WorkQueue({ clock });
    this.failing = opts.caches.state.failingWorkloads;
    this.queries = new WorkloadQueries(opts.caches, opts.caNamespace);
    this.keys = new WorkloadKeyIndex(opts.caches, this.queue, this.now);
    this.writer = new WorkloadSecretWriter(opts.raw, opts.caches, opts.metrics);
    // A new configuration, a new CA or a new leader: every ServiceAccount is looked at again.
    const { state } = opts.caches;
    state.config.subscribe(() => this.enqueueAll());
    state.authority.subscribe(() => this.enqueueAll());
    state.leading.subscribe((leading) => leading && this.enqueueAll());
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

  async reconcile(key: string): Promise<void> {
    if (!this.opts.canWrite()) return;
    const { caches } = this.opts;
    const [namespace, serviceAccount] = splitKey(key);
    const config = this.opts.config();
    const state = this.opts.authority();
    const sa = caches.serviceAccounts.get(key);
    const cached = caches.workloadSecrets.get(`${namespace}/${workloadSecretName(serviceAccount)}`);
    const now = this.now();
    const decision = plan({
      namespace,
      serviceAccount,
      sa,
      ns: caches.namespaces.get(namespace),
      secret: cached && withSigner(cached, state),
      ca: caView(state),
      policy: workloadPolicy(config),
      targeting: config.namespaces,
      caNamespace: this.opts.caNamespace,
      now,
    });
    const log = this.opts.log.child({ namespace, serviceAccount });
    const involved: InvolvedObject = {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      namespace,
      name: serviceAccount,
      uid: sa?.uid,
    };
    if (sa?.dnsNamesError) this.opts.events.record(involved, 'Warning', 'InvalidDnsNames', sa.dnsNamesError);
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
      log,
      involved,
    };
    await this.execute(decision, target);
    log.debug(
      { action: decision.action, reason: 'reason' in decision ? decision.reason : undefined },
      'reconciled',
    );
    if (decision.action !== 'report') this.failing.delete(key);
    if (decision.action === 'none' && decision.recheckAt !== undefined) {
      this.queue.addAfter(key, decision.recheckAt - now);
    }
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
        await this.writer.delete(r.namespace, r.secret!, secretName);
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
        const material = await this.writer.mint(t);
        await this.writer.reissue(t, material);
        this.issued(r, decision.reason, material.serialHex, material.notAfter);
        return;
      }
      case 'refreshBundle':
        await this.writer.refreshBundle(signing(r));
        r.log.info({ reason: decision.reason }, 'refreshed root bundle of workload Secret');
        return;
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
