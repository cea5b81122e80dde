// ServiceAccount → istio.<sa> Secret. Every event only enqueues a key
// (namespace/serviceaccount); a worker reads the caches, asks `plan`, and
// carries out the one decision. Running a key twice changes nothing the
// second time.
import type { V1Namespace, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { SigningAuthority } from '../../ca/authority.js';
import { issueWorkload, type WorkloadMaterial } from '../../ca/issue.js';
import type { CaConfig } from '../../config/ca-spec.js';
import { apiStatus, isNotFound } from '../../kube/client.js';
import type { InvolvedObject } from '../../kube/events.js';
import type { Informer } from '../../kube/informer.js';
import { MERGE_PATCH_CONTENT, type RawApi, secretsPath } from '../../kube/raw.js';
import { WorkQueue } from '../../kube/workqueue.js';
import { normalizeSerialHex } from '../../pki/crl.js';
import { encodePem } from '../../pki/pem.js';
import {
  type DnsNameAuthorisation,
  defaultReservedDnsNames,
  describeRefusedDnsNames,
  type RefusedDnsName,
} from '../../policy/dns-names.js';
import type { IssuanceRecord } from '../../revocation/issuance-record.js';
import { errorReason, type Metrics } from '../../telemetry/metrics.js';
import type { AuthorityState } from '../authority/controller.js';
import type { ControllerContext } from '../context.js';
import { startReconcileLoop } from '../reconcile-loop.js';
import {
  isOwnedSecret,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type ObservedSecret,
  SERVICE_ACCOUNT_ANNOTATION,
  signedByAuthority,
  writtenContent,
} from './observe.js';
import {
  authorisedDnsNames,
  type CaView,
  caViewOf,
  DATA_KEYS,
  type Decision,
  type NamespaceView,
  plan,
  type ServiceAccountView,
  serviceAccountOfSecret,
  spiffeIdFor,
  WORKLOAD_SECRET_TYPE,
  workloadPolicy,
  workloadSecretName,
} from './plan.js';
import { backdateMs, renewAt } from './renewal.js';
import { isManagedNamespace } from './targeting.js';

export interface WorkloadSecretsOptions extends ControllerContext {
  /** The hot write path (Secret create and patch) goes around client-node's serialiser. */
  raw: RawApi;
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

export interface WorkloadCounts {
  managedServiceAccounts: number;
  issuedCertificates: number;
  failingCertificates: number;
}

const splitKey = (key: string) => {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)] as const;
};

export class WorkloadSecretsController {
  readonly queue = new WorkQueue();
  private readonly serviceAccounts: Informer<V1ServiceAccount, ServiceAccountView>;
  private readonly namespaces: Informer<V1Namespace, NamespaceView>;
  private readonly secrets: Informer<V1Secret, ObservedSecret>;
  /** Keys (namespace/serviceaccount) known per namespace, from ServiceAccounts and our Secrets. */
  private readonly keysByNamespace = new Map<string, Set<string>>();
  /** Keys whose last reconcile could not reach the desired state. */
  private readonly failing = new Set<string>();
  /** Bumped by every event of the three caches; invalidates the counts memo. */
  private cacheVersion = 0;
  private countsMemo: { version: number; config: CaConfig; managed: number; issued: number } | undefined;
  /** Keys whose Secret was seen deleted: a create for them heals, rather than serves a new ServiceAccount. */
  private readonly secretDeleted = new Set<string>();
  /** Keys whose Secret we are deleting ourselves: that deletion is no one else's to count. */
  private readonly deletingOurselves = new Set<string>();
  private workers: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly reservedDnsNames: readonly string[];
  /** Per key, the DNS names last refused, so each refusal is counted once, not at every reconcile. */
  private readonly refusedDnsNames = new Map<string, ReadonlySet<string>>();

  /** Serials listed by applied CertificateRevocations, rebuilt after a revocation event. */
  private revokedSerials: Set<string> | undefined;

  constructor(private readonly opts: WorkloadSecretsOptions) {
    this.now = opts.now ?? Date.now;
    this.reservedDnsNames = opts.reservedDnsNames ?? defaultReservedDnsNames(opts.caNamespace);
    const onRevocation = (
      _: string,
      view: { revoked: { namespace?: string; serviceAccount?: string }[] },
    ) => {
      this.revokedSerials = undefined;
      for (const entry of view.revoked) {
        if (entry.namespace && entry.serviceAccount)
          this.enqueue(`${entry.namespace}/${entry.serviceAccount}`);
      }
    };
    opts.caches.revocations.subscribe({
      added: onRevocation,
      updated: (key, _, view) => onRevocation(key, view),
      deleted: () => {
        this.revokedSerials = undefined;
      },
    });
    this.serviceAccounts = opts.caches.serviceAccounts;
    this.namespaces = opts.caches.namespaces;
    this.secrets = opts.caches.workloadSecrets;
    const bump = () => {
      this.cacheVersion++;
    };
    for (const informer of [opts.caches.serviceAccounts, opts.caches.namespaces, opts.caches.workloadSecrets])
      informer.subscribe({ added: bump, updated: bump, deleted: bump });
    this.serviceAccounts.subscribe({
      added: (key) => this.track(key),
      updated: (key) => this.queue.add(key),
      deleted: (key) => this.untrack(key),
    });
    this.namespaces.subscribe({
      added: (ns) => this.enqueueNamespace(ns),
      updated: (ns, before, after) => {
        if (before.terminating !== after.terminating || !sameLabels(before.labels, after.labels)) {
          this.enqueueNamespace(ns);
        }
      },
      deleted: (ns) => this.enqueueNamespace(ns),
    });
    this.secrets.subscribe({
      added: (key) => this.enqueueSecret(key, true),
      updated: (key) => this.enqueueSecret(key, false),
      deleted: (key) => {
        const sa = serviceAccountOfSecret(splitKey(key)[1]);
        const saKey = sa && `${splitKey(key)[0]}/${sa}`;
        if (saKey && !this.deletingOurselves.delete(saKey)) this.secretDeleted.add(saKey);
        this.enqueueSecret(key, false);
      },
    });
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
    for (const keys of this.keysByNamespace.values()) for (const key of keys) this.enqueue(key);
  }

  /**
   * The status refresh asks every 5 s. Walking 10,000 ServiceAccounts each time was most of what
   * an idle controller allocated (and so most of its GC and RSS swing): the walk is redone only
   * after a cache event or a configuration change.
   */
  counts(): WorkloadCounts {
    const config = this.opts.config();
    let memo = this.countsMemo;
    if (!memo || memo.version !== this.cacheVersion || memo.config !== config) {
      let managed = 0;
      let issued = 0;
      for (const [key] of this.serviceAccounts.entries()) {
        const [namespace, name] = splitKey(key);
        const ns = this.namespaces.get(namespace);
        if (!ns || !isManaged(namespace, ns, config, this.opts.caNamespace)) continue;
        managed++;
        if (this.secrets.get(`${namespace}/${workloadSecretName(name)}`)?.certificate) issued++;
      }
      memo = { version: this.cacheVersion, config, managed, issued };
      this.countsMemo = memo;
    }
    return {
      managedServiceAccounts: memo.managed,
      issuedCertificates: memo.issued,
      failingCertificates: this.failing.size,
    };
  }

  /** For root rotation: of the managed workload Secrets, how many carry the bundle and come from the signer. */
  rotationProgress(authority: SigningAuthority): {
    total: number;
    bundleCurrent: number;
    signedByActive: number;
  } {
    const config = this.opts.config();
    let total = 0;
    let bundleCurrent = 0;
    let signedByActive = 0;
    for (const [key, secret] of this.secrets.entries()) {
      const [namespace, name] = splitKey(key);
      const sa = serviceAccountOfSecret(name);
      const ns = this.namespaces.get(namespace);
      if (!sa || !ns || ns.terminating || !this.serviceAccounts.get(`${namespace}/${sa}`)) continue;
      if (!isManaged(namespace, ns, config, this.opts.caNamespace)) continue;
      total++;
      if (secret.rootBundleHash === authority.rootBundleHash) bundleCurrent++;
      if (signedByAuthority(secret, authority)) signedByActive++;
    }
    return { total, bundleCurrent, signedByActive };
  }

  private track(key: string): void {
    const [namespace] = splitKey(key);
    const keys = this.keysByNamespace.get(namespace) ?? new Set<string>();
    this.keysByNamespace.set(namespace, keys);
    keys.add(key);
    this.enqueue(key);
  }

  private untrack(key: string): void {
    this.secretDeleted.delete(key);
    this.refusedDnsNames.delete(key);
    const [namespace, name] = splitKey(key);
    if (!this.secrets.get(`${namespace}/${workloadSecretName(name)}`))
      this.keysByNamespace.get(namespace)?.delete(key);
    this.queue.add(key);
  }

  private enqueueNamespace(namespace: string): void {
    for (const key of this.keysByNamespace.get(namespace) ?? []) this.enqueue(key);
  }

  private enqueueSecret(secretKey: string, added: boolean): void {
    const [namespace, name] = splitKey(secretKey);
    const sa = serviceAccountOfSecret(name);
    if (!sa) return;
    const key = `${namespace}/${sa}`;
    if (added) this.track(key);
    else this.enqueue(key);
  }

  /** Expired or due certificates (e.g. found at start-up after downtime) go before everything else. */
  private enqueue(key: string): void {
    const [namespace, sa] = splitKey(key);
    const certificate = this.secrets.get(`${namespace}/${workloadSecretName(sa)}`)?.certificate;
    if (certificate && this.isDue(certificate)) this.queue.addUrgent(key);
    else this.queue.add(key);
  }

  private isDue(certificate: { notBefore: number; notAfter: number; serial: string }): boolean {
    const { workload } = this.opts.config();
    return renewAt(certificate, workload) <= this.now();
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

  private caView(): { view: CaView; state: AuthorityState } {
    const state = this.opts.authority();
    if (state.status !== 'ready') return { view: { ready: false, notReadyReason: state.message }, state };
    return { view: caViewOf(state.authority), state };
  }

  async reconcile(key: string): Promise<void> {
    if (!this.opts.canWrite()) return;
    const [namespace, serviceAccount] = splitKey(key);
    const config = this.opts.config();
    const { view: ca, state } = this.caView();
    const sa = this.serviceAccounts.get(key);
    const secret = this.secrets.get(`${namespace}/${workloadSecretName(serviceAccount)}`);
    if (secret?.certificate && state.status === 'ready') {
      secret.certificate.signedBy = signedByAuthority(secret, state.authority)
        ? state.authority.signer.fingerprintSha256
        : undefined;
    }
    const now = this.now();
    const ns = this.namespaces.get(namespace);
    const policy = workloadPolicy(config, this.reservedDnsNames);
    const decision = plan({
      namespace,
      serviceAccount,
      sa,
      ns,
      secret,
      ca,
      policy,
      targeting: config.namespaces,
      caNamespace: this.opts.caNamespace,
      revoked: secret?.certificate !== undefined && this.isRevoked(secret.certificate.serial),
      now,
    });
    const managed =
      sa !== undefined &&
      ns !== undefined &&
      !ns.terminating &&
      isManaged(namespace, ns, config, this.opts.caNamespace);
    const dnsNames = managed ? authorisedDnsNames(namespace, sa, ns, policy) : { allowed: [], refused: [] };
    const log = this.opts.log.child({ namespace, serviceAccount });
    const involved: InvolvedObject = {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      namespace,
      name: serviceAccount,
      uid: sa?.uid,
    };
    if (sa?.dnsNamesError) this.opts.events.record(involved, 'Warning', 'InvalidDnsNames', sa.dnsNamesError);
    this.reportRefusedDnsNames(key, involved, log, dnsNames.refused);

    await this.execute(decision, {
      namespace,
      serviceAccount,
      key,
      sa,
      secret,
      config,
      state,
      log,
      involved,
      dnsNames,
      now,
    });
    log.debug(
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
    log: Logger,
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
    log.warn({ refused: fresh.map((r) => ({ name: r.name, reason: r.reason })) }, 'DNS names refused');
    for (const r of fresh) this.opts.metrics?.dnsNameRefused(r.reason);
    this.refusedDnsNames.set(key, new Set(refused.map((r) => r.name)));
  }

  private async execute(decision: Decision, ctx: ExecutionContext): Promise<void> {
    const { namespace, secret, log } = ctx;
    const secretName = workloadSecretName(ctx.serviceAccount);
    switch (decision.action) {
      case 'none':
        return;
      case 'report':
        this.failing.add(ctx.key);
        if (decision.reason === 'CANotReady') {
          log.debug({ reason: decision.reason }, decision.message); // the CR status and the CA log say it once
          return;
        }
        log.warn({ reason: decision.reason }, decision.message);
        this.opts.events.record(ctx.involved, 'Warning', decision.reason, decision.message);
        if (decision.reason === 'ForeignSecret') this.queue.addAfter(ctx.key, this.opts.foreignRecheckMs);
        return;
      case 'delete':
      case 'recreate':
        this.deletingOurselves.add(ctx.key);
        try {
          await this.deleteSecret(namespace, secretName, secret!);
        } catch (err) {
          this.deletingOurselves.delete(ctx.key);
          throw err;
        }
        log.info({ reason: decision.reason, secret: secretName }, 'deleted workload Secret');
        if (decision.reason === 'ServiceAccountDeleted') this.opts.metrics?.serviceAccountSecretDeleted();
        if (decision.action === 'delete' && ctx.sa) {
          this.opts.events.record(
            ctx.involved,
            'Normal',
            decision.reason,
            `deleted Secret ${secretName}: ${decision.reason}`,
          );
        }
        return;
      case 'create':
        await this.create(ctx, decision.reason);
        return;
      case 'reissue':
        await this.reissue(ctx, decision.reason);
        if (decision.reason === 'DnsNameNotAllowed' && decision.message) {
          this.opts.events.record(ctx.involved, 'Warning', 'DNSNameRemoved', `reissued: ${decision.message}`);
        }
        return;
      case 'refreshBundle':
        await this.refreshBundle(ctx, decision.reason);
        return;
    }
  }

  private async mint(ctx: ExecutionContext) {
    if (ctx.state.status !== 'ready') throw new Error('the CA is not ready');
    const { workload } = ctx.config;
    try {
      return await issueWorkload(ctx.state.authority, {
        spiffeId: spiffeIdFor(ctx.config.trustDomain, ctx.namespace, ctx.serviceAccount),
        dnsNames: ctx.dnsNames.allowed,
        keyAlgorithm: workload.keyAlgorithm,
        ttlMs: workload.ttlMs,
        backdateMs: backdateMs(workload.ttlMs, workload.clockSkewMs),
        now: new Date(ctx.now),
      });
    } catch (err) {
      this.opts.metrics?.certificateSignFailed(errorReason(err));
      throw err;
    }
  }

  /** notAfter (ms) of every certificate in the cache, for the expiry metric. */
  *certificateExpiries(): Iterable<number> {
    for (const [, secret] of this.secrets.entries())
      if (secret.certificate) yield secret.certificate.notAfter;
  }

  private issuedEvent(ctx: ExecutionContext, reason: string, serialHex: string, notAfter: Date): void {
    this.opts.metrics?.certificateIssued(reason, reason === 'RenewalDue');
    const message = `issued certificate serial ${serialHex} for ${spiffeIdFor(ctx.config.trustDomain, ctx.namespace, ctx.serviceAccount)}, valid until ${notAfter.toISOString()} (${reason})`;
    ctx.log.info(
      { reason, serial: serialHex, notAfter: notAfter.toISOString() },
      'issued workload certificate',
    );
    this.opts.events.record(ctx.involved, 'Normal', 'CertificateIssued', message);
  }

  private async create(ctx: ExecutionContext, reason: string): Promise<void> {
    const secretName = workloadSecretName(ctx.serviceAccount);
    const material = await this.mint(ctx);
    const data = this.remember(ctx, material);
    try {
      await this.opts.raw.request('POST', secretsPath(ctx.namespace), {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: secretName,
          namespace: ctx.namespace,
          labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
          annotations: { [SERVICE_ACCOUNT_ANNOTATION]: ctx.serviceAccount },
          ownerReferences: [
            {
              apiVersion: 'v1',
              kind: 'ServiceAccount',
              name: ctx.serviceAccount,
              uid: ctx.sa!.uid,
              controller: true,
            },
          ],
        },
        type: WORKLOAD_SECRET_TYPE,
        data,
      });
    } catch (err) {
      const status = apiStatus(err);
      if (status === 409) {
        // Either our own Secret the cache has not shown yet, or someone else's: look.
        const existing = await this.opts.core.readNamespacedSecret({
          namespace: ctx.namespace,
          name: secretName,
        });
        if (!isOwnedSecret(existing)) {
          await this.execute(
            {
              action: 'report',
              reason: 'ForeignSecret',
              message: `Secret ${secretName} exists but is not managed by alcazar; it is left untouched and no certificate is issued`,
            },
            ctx,
          );
        }
        return;
      }
      if (status === 403 && this.namespaces.get(ctx.namespace)?.terminating !== false) return; // namespace going away
      throw err;
    }
    this.opts.metrics?.workloadSecretCreated(
      this.secretDeleted.delete(ctx.key) ? 'secretDeleted' : 'serviceAccount',
    );
    this.issuedEvent(ctx, reason, material.serialHex, material.notAfter);
  }

  private async reissue(ctx: ExecutionContext, reason: string): Promise<void> {
    await this.recordSuperseded(ctx);
    const material = await this.mint(ctx);
    await this.patchSecret(ctx, this.remember(ctx, material));
    this.issuedEvent(ctx, reason, material.serialHex, material.notAfter);
  }

  /**
   * The certificate being replaced may still be valid and in use: record it, so that revoking its
   * ServiceAccount later covers it too. Best effort: a failure is logged, the reissue goes on.
   */
  private async recordSuperseded(ctx: ExecutionContext): Promise<void> {
    const cert = ctx.secret?.certificate;
    if (!this.opts.record || !cert || cert.notAfter <= ctx.now) return;
    try {
      await this.opts.record.record({
        namespace: ctx.namespace,
        serviceAccount: ctx.serviceAccount,
        serial: cert.serial,
        notAfter: new Date(cert.notAfter),
        issuedAt: new Date(cert.notBefore),
      });
    } catch (err) {
      ctx.log.warn({ err: (err as Error).message }, 'could not record the superseded certificate');
    }
  }

  /** The Secret data (base64) for freshly minted material, remembered so its watch event is not parsed again. */
  private remember(ctx: ExecutionContext, material: WorkloadMaterial): Record<string, string> {
    const data = base64Values(material.data);
    if (ctx.state.status === 'ready') {
      this.opts.caches.writtenSecrets.remember(
        data,
        writtenContent(material.leafDer, ctx.config.workload.keyAlgorithm, ctx.state.authority),
      );
    }
    return data;
  }

  /** New root bundle and chain, same key and leaf: nothing a workload must re-handshake for. */
  private async refreshBundle(ctx: ExecutionContext, reason: string): Promise<void> {
    if (ctx.state.status !== 'ready' || !ctx.secret?.leafDer)
      throw new Error('cannot refresh: no CA or no leaf');
    await this.patchSecret(
      ctx,
      base64Values({
        'cert-chain.pem': encodePem('CERTIFICATE', ctx.secret.leafDer) + ctx.state.authority.chainPem,
        'root-cert.pem': ctx.state.authority.rootBundlePem,
      }),
    );
    ctx.log.info({ reason }, 'refreshed root bundle of workload Secret');
  }

  /**
   * Merge-patches our Secret, guarded by the resourceVersion we decided on: if
   * it changed meanwhile the API answers 409 and the key is retried against
   * the new state. Data keys that are not ours are removed.
   */
  private async patchSecret(ctx: ExecutionContext, base64Data: Record<string, string>): Promise<void> {
    const secret = ctx.secret!;
    const patchData: Record<string, string | null> = {};
    for (const key of secret.dataKeys)
      if (!(DATA_KEYS as readonly string[]).includes(key)) patchData[key] = null;
    for (const [key, value] of Object.entries(base64Data)) patchData[key] = value;
    await this.opts.raw.request(
      'PATCH',
      secretsPath(ctx.namespace, workloadSecretName(ctx.serviceAccount)),
      {
        metadata: {
          resourceVersion: secret.resourceVersion,
          labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
          annotations: { [SERVICE_ACCOUNT_ANNOTATION]: ctx.serviceAccount },
        },
        data: patchData,
      },
      MERGE_PATCH_CONTENT,
    );
  }

  private async deleteSecret(namespace: string, name: string, secret: ObservedSecret): Promise<void> {
    try {
      await this.opts.core.deleteNamespacedSecret({
        namespace,
        name,
        // Only the exact object we decided about: never a newer one someone else created.
        body: { preconditions: { uid: secret.uid, resourceVersion: secret.resourceVersion } },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

interface ExecutionContext {
  namespace: string;
  serviceAccount: string;
  key: string;
  sa: ServiceAccountView | undefined;
  secret: ObservedSecret | undefined;
  config: CaConfig;
  state: AuthorityState;
  log: Logger;
  involved: InvolvedObject;
  /** The requested DNS names as authorised: only `allowed` goes into a certificate. */
  dnsNames: DnsNameAuthorisation;
  now: number;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

function isManaged(namespace: string, ns: NamespaceView, config: CaConfig, caNamespace: string): boolean {
  return isManagedNamespace(namespace, ns.labels, config.namespaces, caNamespace);
}

function base64Values(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
}
