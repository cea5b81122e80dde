// Wires the controllers together. Start order: configuration (it decides the
// CA mode), the CA, the shared caches, then the workers. With leader
// election every replica keeps warm caches; only the Lease holder writes.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { serialHex } from '../ca/issue.js';
import { ACCEPT_NEW_ROOT_ANNOTATION } from '../ca/root-history.js';
import { certificateAuthorityResource } from '../config/ca-resource.js';
import type { ProcessSettings } from '../config/process.js';
import { type CsrApi, type IssuedCertificateRecord, startCsrApi } from '../csr/index.js';
import { SerialReservations } from '../csr/reservations.js';
import { describeApiError } from '../kube/client.js';
import { systemClock } from '../kube/clock.js';
import { EventRecorder } from '../kube/events.js';
import { LeaderElector } from '../kube/leader-election.js';
import { eventsPath, RawApi } from '../kube/raw.js';
import { fencedApiClient, WriteFence } from '../kube/write-fence.js';
import { CERTIFICATE_AUTHORITY_NAME } from '../model/names.js';
import { isManagedNamespace } from '../model/targeting.js';
import { randomSerialNumber } from '../pki/index.js';
import { defaultReservedDnsNames } from '../policy/dns-names.js';
import { IssuanceRecord } from '../revocation/issuance-record.js';
import { startHttpServer, type TelemetryServer } from '../telemetry/http.js';
import { createMetrics, type Metrics } from '../telemetry/metrics.js';
import { RootContinuity } from './authority/continuity.js';
import { AuthorityController } from './authority/controller.js';
import type { AuthorityState } from './authority/state.js';
import { SharedCaches } from './caches.js';
import { CertificateAuthorityController } from './certificate-authority/controller.js';
import { CrlController } from './crl/controller.js';
import { CrlPublisher } from './crl/publisher.js';
import { HeapCompactor } from './heap-compactor.js';
import { RevocationController } from './revocation/controller.js';
import { RevokedSerials } from './revocation/revoked-serials.js';
import { RootRotationController } from './root-rotation/controller.js';
import { TrustBundleController } from './trust-bundle/controller.js';
import { WorkloadSecretsController } from './workload-secrets/controller.js';

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
  const timing = {
    resyncPeriodMs: settings.resyncPeriodMs,
    relistPeriodMs: settings.relistPeriodMs,
    stallTimeoutMs: settings.watchStallTimeoutMs,
  };
  const clock = systemClock;
  const caches = new SharedCaches({
    kubeConfig,
    raw,
    caNamespace: settings.caNamespace,
    log: log.child({ controller: 'caches' }),
    onWatchRestart: (informer, reason) => metrics.watchRestarted(informer, reason),
    clock,
    secretWatch: settings.secretWatch,
    ...timing,
  });
  const { state } = caches;
  const election = settings.leaderElection;
  // Leadership is shared state like any other: each controller looks at everything again when it leads.
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
        clock,
        onStartedLeading: () => {
          metrics.setLeader(true);
          state.leading.set(true);
        },
        onStoppedLeading: () => {
          fence.revoke('stopped leading');
          metrics.setLeader(false);
          state.leading.set(false);
        },
      })
    : undefined;
  const canWrite = elector ? () => elector.isLeader() : () => true;
  // What acts on the configuration waits while none is in effect (SharedState.configHeld); the
  // status still says why.
  const canAct = () => canWrite() && !state.configHeld.current;
  state.leading.set(!elector);
  leading = canWrite;
  metrics.setLeader(!elector);
  state.authority.subscribe((next) => reportAuthority(metrics, next));

  // Not fenced: every replica's CSR API records what it issues (merge patches that only add keys,
  // so concurrent writers are safe), and a follower must be able to, or it could not issue at all.
  const issuanceRecord = new IssuanceRecord({
    raw: new RawApi(kubeConfig),
    namespace: settings.caNamespace,
    onSweepError: (err) =>
      log.warn(
        { err: describeApiError(err) },
        'issuance record: could not sweep expired shards; trying again later',
      ),
  });
  // Each controller subscribes to the caches and shared state it watches; none calls another.
  const workloads = new WorkloadSecretsController({
    caches,
    core,
    raw,
    log: log.child({ controller: 'workload-secrets' }),
    events,
    caNamespace: settings.caNamespace,
    config: () => state.config.current,
    authority: () => state.authority.current,
    canWrite: canAct,
    workers: settings.workers,
    foreignRecheckMs: settings.resyncPeriodMs,
    metrics,
    clock,
    // The CSR API's serving names (and alcazar's defaults) are never a workload's to have.
    reservedDnsNames: [
      ...new Set([...defaultReservedDnsNames(settings.caNamespace), ...settings.csr.dnsNames]),
    ],
    record: issuanceRecord,
  });
  const trustBundles = new TrustBundleController({
    caches,
    core,
    raw,
    log: log.child({ controller: 'trust-bundle' }),
    events,
    caNamespace: settings.caNamespace,
    config: () => state.config.current,
    authority: () => state.authority.current,
    canWrite: canAct,
    workers: 2,
    clock,
  });
  const configuration = new CertificateAuthorityController({
    caches,
    raw,
    log: log.child({ controller: 'certificateauthority' }),
    canWrite,
    workloads: workloads.queries,
    events,
    caNamespace: settings.caNamespace,
    clock,
  });
  const authority = new AuthorityController({
    caches,
    raw,
    namespace: settings.caNamespace,
    log: log.child({ controller: 'authority' }),
    canWrite: canAct,
    clock,
    continuity: new RootContinuity({
      core,
      namespace: settings.caNamespace,
      log: log.child({ controller: 'authority' }),
      events,
      canWrite: canAct,
      acceptRequest: () => caches.certificateAuthority?.annotations[ACCEPT_NEW_ROOT_ANNOTATION],
      statusFingerprints: () => {
        const status = caches.certificateAuthority?.status;
        if (status?.caNamespace !== settings.caNamespace) return [];
        return (status.roots ?? []).map((root) => root.fingerprintSha256);
      },
      now: () => clock.now(),
    }),
  });
  const crlContext = {
    caches,
    core,
    raw,
    events,
    caNamespace: settings.caNamespace,
    config: () => state.config.current,
    authority: () => state.authority.current,
    canWrite: canAct,
    clock,
  };
  const crl = new CrlController({
    ...crlContext,
    log: log.child({ controller: 'crl' }),
    workers: 1,
    metrics,
  });
  const crlPublisher = new CrlPublisher(
    { ...crlContext, log: log.child({ controller: 'crl-publisher' }), workers: 2 },
    crl,
  );
  const revocations = new RevocationController({
    ...crlContext,
    log: log.child({ controller: 'revocation' }),
    workers: 1,
    record: issuanceRecord,
  });
  const rotation = new RootRotationController({
    caches,
    raw,
    namespace: settings.caNamespace,
    log: log.child({ controller: 'root-rotation' }),
    events,
    workloads: workloads.queries,
    canWrite: canAct,
    checkIntervalMs: settings.rootRotation.checkIntervalMs,
    dwellMs: settings.rootRotation.propagationDelayMs,
    clock,
  });

  // Serials recorded ahead for identities that ask often; a revocation seen in a namespace drops
  // the ones made there before it (src/csr/reservations.ts says why).
  const reservations = new SerialReservations({
    record: ({ serial, ...entry }) => issuanceRecord.recordSoon({ ...entry, serial: serialHex(serial) }),
    newSerial: randomSerialNumber,
    defaultValidityMs: () => state.config.current.csr.defaultValidityMs,
    caNamespace: settings.caNamespace,
  });
  caches.revocations.subscribe({ added: (key) => reservations.revocationSeen(key.split('/')[0]!) });
  const revokedSerials = new RevokedSerials(caches.revocations);

  const csr: CsrApi | undefined = settings.csr.enabled
    ? await startCsrApi({
        kubeConfig,
        settings: settings.csr,
        caNamespace: settings.caNamespace,
        authority: () => state.authority.current,
        authorityChanges: state.authority,
        config: () => state.config.current,
        isManagedNamespace: (namespace) => {
          if (!caches.namespaces.hasSynced) return undefined;
          const ns = caches.namespaces.get(namespace);
          if (!ns || ns.terminating) return false;
          return isManagedNamespace(
            namespace,
            ns.labels,
            state.config.current.namespaces,
            settings.caNamespace,
          );
        },
        metrics: metrics.csr,
        log: log.child({ subsystem: 'csr-api' }),
        // Recorded before the chain is returned, so revoking the ServiceAccount covers it too.
        onIssued: (record) => issuanceRecord.record({ ...record, issuedAt: new Date() }),
        // The record write starts while the TokenReview is out; taken back if it fails.
        onWithdrawn: (record) => issuanceRecord.withdraw(record),
        afterIssued: (record) => hooks.onCsrIssued?.(record),
        reservations,
        isRevoked: (serial) => revokedSerials.has(serial),
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
  await caches.startCa();
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
  const compactor = new HeapCompactor({
    log: log.child({ subsystem: 'heap' }),
    onHeapHigh: (used, limit) =>
      events.record(
        {
          apiVersion: `${certificateAuthorityResource.group}/${certificateAuthorityResource.version}`,
          kind: certificateAuthorityResource.kind,
          name: CERTIFICATE_AUTHORITY_NAME,
        },
        'Warning',
        'HeapNearLimit',
        `the live heap is ${Math.round(used / 2 ** 20)} MiB of its ${Math.round(limit / 2 ** 20)} MiB limit after a full collection: raise --max-old-space-size and the memory limit for this many ServiceAccounts (README, "Sizing")`,
      ),
  });
  void Promise.all([workloads.queue.whenIdle(), trustBundles.queue.whenIdle()]).then(() => {
    compactor.request('start-up');
    caches.onRelisted(() => compactor.request('relist'));
  });
  // The status waits for this first rotation check: before it, it would show zero counts and no rotation.
  await rotation.start();
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

/** The CA's readiness and roots as metrics; no CA loaded: no roots (the Citadel gauge 0, as README says). */
export function reportAuthority(metrics: Metrics, state: AuthorityState): void {
  metrics.setCaReady(
    state.status === 'ready',
    state.status === 'ready' ? state.authority.signer.notAfter : undefined,
  );
  if (state.status !== 'ready') {
    metrics.setRoots([]);
    return;
  }
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
