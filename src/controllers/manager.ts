// Wires the controllers together. Start order: configuration (it decides the
// CA mode), the CA, the shared caches, then the workers. With leader
// election every replica keeps warm caches; only the Lease holder writes.
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { PLUGGED_IN_SECRET, SELF_SIGNED_SECRET } from '../ca/authority.js';
import { crlSigners, operatorCrlPem } from '../ca/crl-signers.js';
import { ACCEPT_NEW_ROOT_ANNOTATION } from '../ca/root-history.js';
import type { ProcessSettings } from '../config/process.js';
import { type CsrApi, type IssuedCertificateRecord, startCsrApi } from '../csr/index.js';
import { EventRecorder } from '../kube/events.js';
import { LeaderElector } from '../kube/leader-election.js';
import { eventsPath, RawApi } from '../kube/raw.js';
import { fencedApiClient, WriteFence } from '../kube/write-fence.js';
import { defaultReservedDnsNames } from '../policy/dns-names.js';
import { IssuanceRecord } from '../revocation/issuance-record.js';
import { startHttpServer, type TelemetryServer } from '../telemetry/http.js';
import { createMetrics, type Metrics } from '../telemetry/metrics.js';
import { RootContinuity } from './authority/continuity.js';
import { AuthorityController, type AuthorityState } from './authority/controller.js';
import { SharedCaches } from './caches.js';
import { CertificateAuthorityController } from './certificate-authority/controller.js';
import { CrlController } from './crl/controller.js';
import { CrlPublisher } from './crl/publisher.js';
import { HeapCompactor } from './heap-compactor.js';
import { RevocationController } from './revocation/controller.js';
import { ROTATE_REQUEST_ANNOTATION, RootRotationController } from './root-rotation/controller.js';
import { TrustBundleController } from './trust-bundle/controller.js';
import { WorkloadSecretsController } from './workload-secrets/controller.js';
import { isManagedNamespace } from './workload-secrets/targeting.js';

export interface RunningController {
  ready(): boolean;
  /** The bound /metrics, /healthz, /readyz port. */
  httpPort: number;
  metrics: Metrics;
  /** The bound CSR API port; undefined when the API is off. */
  csrPort?: number;
  stop(): Promise<void>;
}

export interface ControllerHooks {
  /** Every certificate issued through the CSR API (for the issuance record). */
  onCsrIssued?: (record: IssuedCertificateRecord) => void;
}

export async function startController(
  kubeConfig: KubeConfig,
  settings: ProcessSettings,
  log: Logger,
  hooks: ControllerHooks = {},
): Promise<RunningController> {
  // Every write carries the fence's signal: refused unless leading, aborted when leadership ends.
  let leading = () => true;
  const fence = new WriteFence(() => leading());
  const core = fencedApiClient(kubeConfig, CoreV1Api, fence);
  const customObjects = fencedApiClient(kubeConfig, CustomObjectsApi, fence);
  const metrics = createMetrics({ log });
  const raw = new RawApi(kubeConfig, undefined, fence);
  const events = new EventRecorder(
    (namespace, event) => raw.request('POST', eventsPath(namespace), event),
    log,
    {
      instance: settings.leaderElection.identity,
      limits: settings.events,
      onDropped: (type) => metrics.eventDropped(type),
    },
  );
  const timing = { resyncPeriodMs: settings.resyncPeriodMs, stallTimeoutMs: settings.watchStallTimeoutMs };
  const election = settings.leaderElection;
  const elector = election.enabled
    ? new LeaderElector({
        kubeConfig,
        namespace: settings.caNamespace,
        leaseName: election.leaseName,
        identity: election.identity,
        leaseDurationMs: election.leaseDurationMs,
        renewDeadlineMs: election.renewDeadlineMs,
        retryPeriodMs: election.retryPeriodMs,
        log: log.child({ subsystem: 'leader-election' }),
        onStartedLeading: () => {
          metrics.setLeader(true);
          // Followers decided nothing: look at everything now.
          void authority.reevaluate();
          workloads.enqueueAll();
          trustBundles.enqueueAll();
          crl.enqueue();
          crlPublisher.enqueueAll();
          revocations.enqueueAll();
          configuration.requestStatusUpdate();
          void rotation.check();
        },
        onStoppedLeading: () => {
          fence.revoke('stopped leading');
          metrics.setLeader(false);
        },
      })
    : undefined;
  let settled = false;
  const canWrite = elector ? () => elector.isLeader() : () => true;
  leading = canWrite;
  metrics.setLeader(!elector);

  // The controllers reference each other through callbacks; all are built before any starts.
  const configuration: CertificateAuthorityController = new CertificateAuthorityController({
    kubeConfig,
    customObjects,
    log: log.child({ controller: 'certificateauthority' }),
    canWrite,
    statusSettled: () => settled,
    onRequest: () => {
      void authority.reevaluate();
      void rotation.check();
    },
    onConfigChange: () => {
      void authority.reevaluate();
      workloads.enqueueAll();
      trustBundles.enqueueAll();
      crl.enqueue();
      void rotation.check();
    },
    authority: () => authority.current,
    counts: () => workloads.counts(),
    rotation: () => rotation.status,
    crl: () => crl.health,
    events,
    caNamespace: settings.caNamespace,
    ...timing,
  });
  const authority: AuthorityController = new AuthorityController({
    kubeConfig,
    core,
    namespace: settings.caNamespace,
    log: log.child({ controller: 'authority' }),
    config: () => configuration.current,
    canWrite,
    continuity: new RootContinuity({
      core,
      namespace: settings.caNamespace,
      log: log.child({ controller: 'authority' }),
      events,
      canWrite,
      acceptRequest: () => configuration.annotation(ACCEPT_NEW_ROOT_ANNOTATION),
      statusFingerprints: () => configuration.statusRootFingerprints(settings.caNamespace),
    }),
    onChange: (state) => {
      reportAuthority(metrics, state);
      csr?.authorityChanged();
      workloads.enqueueAll();
      trustBundles.enqueueAll();
      crl.enqueue();
      crlPublisher.enqueueAll();
      configuration.requestStatusUpdate();
    },
    ...timing,
  });
  const caches = new SharedCaches({
    kubeConfig,
    raw,
    log: log.child({ controller: 'caches' }),
    onWatchRestart: (informer, reason) => metrics.watchRestarted(informer, reason),
    caNamespace: settings.caNamespace,
    ...timing,
  });
  // Not fenced: every replica's CSR API records what it issues (shard merges retry on 409, so
  // concurrent writers are safe), and a follower must be able to, or it could not issue at all.
  const issuanceRecord = new IssuanceRecord({
    core: kubeConfig.makeApiClient(CoreV1Api),
    namespace: settings.caNamespace,
  });
  const workloads: WorkloadSecretsController = new WorkloadSecretsController({
    caches,
    core,
    raw,
    log: log.child({ controller: 'workload-secrets' }),
    events,
    caNamespace: settings.caNamespace,
    config: () => configuration.current,
    authority: () => authority.current,
    canWrite,
    workers: settings.workers,
    foreignRecheckMs: settings.resyncPeriodMs,
    metrics,
    // The CSR API's serving names (and alcazar's defaults) are never a workload's to have.
    reservedDnsNames: [
      ...new Set([...defaultReservedDnsNames(settings.caNamespace), ...settings.csr.dnsNames]),
    ],
    record: issuanceRecord,
  });
  const trustBundles: TrustBundleController = new TrustBundleController({
    caches,
    core,
    log: log.child({ controller: 'trust-bundle' }),
    events,
    caNamespace: settings.caNamespace,
    config: () => configuration.current,
    authority: () => authority.current,
    canWrite,
    workers: 2,
  });
  const crlContext = {
    caches,
    core,
    events,
    caNamespace: settings.caNamespace,
    config: () => configuration.current,
    authority: () => authority.current,
    canWrite,
  };
  const crl: CrlController = new CrlController({
    ...crlContext,
    log: log.child({ controller: 'crl' }),
    workers: 1,
    metrics,
    sources: () => {
      const state = authority.current;
      if (state.status !== 'ready') return undefined;
      const secretName = state.authority.mode === 'SelfSigned' ? SELF_SIGNED_SECRET : PLUGGED_IN_SECRET;
      const data = authority.caSecret(secretName)?.data;
      return {
        signers: crlSigners(state.authority, data),
        operatorPem: operatorCrlPem(state.authority, data),
      };
    },
  });
  const crlPublisher = new CrlPublisher(
    { ...crlContext, log: log.child({ controller: 'crl-publisher' }), workers: 2 },
    crl,
  );
  const revocations = new RevocationController({
    ...crlContext,
    log: log.child({ controller: 'revocation' }),
    workers: 1,
    raw,
    record: issuanceRecord,
  });
  const rotation: RootRotationController = new RootRotationController({
    core,
    namespace: settings.caNamespace,
    log: log.child({ controller: 'root-rotation' }),
    events,
    authority,
    config: () => configuration.current,
    rotateRequest: () => configuration.annotation(ROTATE_REQUEST_ANNOTATION),
    progress: (signing) => {
      const secrets = workloads.rotationProgress(signing);
      const bundles = trustBundles.progress(signing.rootBundleHash);
      return {
        bundleCurrent: secrets.bundleCurrent + bundles.current,
        bundleTotal: secrets.total + bundles.total,
        signedByActive: secrets.signedByActive,
        signedTotal: secrets.total,
      };
    },
    canWrite,
    checkIntervalMs: settings.rootRotation.checkIntervalMs,
    dwellMs: settings.rootRotation.propagationDelayMs,
    onStatusChange: () => configuration.requestStatusUpdate(),
  });

  const csr: CsrApi | undefined = settings.csr.enabled
    ? await startCsrApi({
        kubeConfig,
        settings: settings.csr,
        caNamespace: settings.caNamespace,
        authority: () => authority.current,
        config: () => configuration.current,
        isManagedNamespace: (namespace) => {
          if (!caches.namespaces.hasSynced) return undefined;
          const ns = caches.namespaces.get(namespace);
          if (!ns || ns.terminating) return false;
          return isManagedNamespace(
            namespace,
            ns.labels,
            configuration.current.namespaces,
            settings.caNamespace,
          );
        },
        metrics: metrics.csr,
        log: log.child({ subsystem: 'csr-api' }),
        // Recorded before the chain is returned, so revoking the ServiceAccount covers it too.
        onIssued: async (record) => {
          await issuanceRecord.record({ ...record, issuedAt: new Date() });
          hooks.onCsrIssued?.(record);
        },
      })
    : undefined;

  metrics.setQueueProbe(() => ({ depth: workloads.queue.depth, scheduled: workloads.queue.scheduled }));
  metrics.setCertificateExpiryProbe(() => workloads.certificateExpiries());
  metrics.setManagedServiceAccountsProbe(() => workloads.counts().managedServiceAccounts);
  const http: TelemetryServer = await startHttpServer({
    port: settings.httpPort,
    metrics,
    log: log.child({ subsystem: 'http' }),
    readiness: () => ({
      checks: [
        caches.syncCheck(),
        authorityCheck(authority.current, canWrite()),
        ...(elector ? [{ name: 'leader-election', ...elector.health() }] : []),
        ...(csr ? [csr.readiness()] : []),
      ],
    }),
  });

  elector?.start();
  await configuration.start();
  await authority.start();
  await caches.start();
  log.info(
    {
      namespaces: caches.namespaces.size,
      serviceAccounts: caches.serviceAccounts.size,
      secrets: caches.workloadSecrets.size,
      trustBundles: caches.trustBundles.size,
      revocations: caches.revocations.size,
    },
    'caches synced',
  );
  workloads.start();
  trustBundles.start();
  revocations.start();
  crl.start();
  crlPublisher.start();
  // The start-up burst is over once both first passes are; later bursts are the periodic relists.
  const compactor = new HeapCompactor({ log: log.child({ subsystem: 'heap' }) });
  void Promise.all([workloads.queue.whenIdle(), trustBundles.queue.whenIdle()]).then(() => {
    compactor.request('start-up');
    caches.onRelisted(() => compactor.request('relist'));
  });
  await rotation.start();
  // Until now the status would have shown zero counts and no rotation state: one write, now, instead.
  settled = true;
  configuration.requestStatusUpdate();
  log.info('controller started');
  return {
    ready: () => caches.hasSynced && authority.current.status === 'ready',
    httpPort: http.port,
    metrics,
    csrPort: csr?.port,
    stop: async () => {
      await csr?.stop();
      // Drain every path that writes, then release the Lease so a successor takes over at
      // once without an in-flight write of ours landing after it starts.
      await rotation.stop();
      await Promise.all([
        workloads.stop(),
        trustBundles.stop(),
        revocations.stop(),
        crl.stop(),
        crlPublisher.stop(),
      ]);
      await Promise.all([authority.stop(), configuration.stop()]);
      await elector?.stop();
      compactor.stop();
      await caches.stop();
      await http.close();
    },
  };
}

function reportAuthority(metrics: Metrics, state: AuthorityState): void {
  metrics.setCaReady(state.status === 'ready');
  if (state.status !== 'ready') return;
  const { roots, activeRootFingerprint } = state.authority;
  metrics.setRoots(
    roots.map((r) => ({
      fingerprintSha256: r.fingerprintSha256,
      notAfter: r.notAfter,
      active: r.fingerprintSha256 === activeRootFingerprint,
    })),
  );
}

/** A follower waiting for the leader to create the CA is healthy; a CA that cannot sign is not. */
function authorityCheck(state: AuthorityState, leading: boolean) {
  if (state.status === 'ready') return { name: 'ca-loaded', ok: true };
  if (state.status === 'pending' && !leading) return { name: 'ca-loaded', ok: true, message: state.message };
  return { name: 'ca-loaded', ok: false, message: state.message };
}
