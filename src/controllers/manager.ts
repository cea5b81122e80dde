// Wires the controllers together: configuration first (it decides the CA
// mode), then the CA, then the workload Secrets.
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ProcessSettings } from '../config/process.js';
import { EventRecorder } from '../kube/events.js';
import { AuthorityController } from './authority/controller.js';
import { SharedCaches } from './caches.js';
import { CertificateAuthorityController } from './certificate-authority/controller.js';
import { TrustBundleController } from './trust-bundle/controller.js';
import { WorkloadSecretsController } from './workload-secrets/controller.js';

export interface RunningController {
  ready(): boolean;
  stop(): Promise<void>;
}

export async function startController(
  kubeConfig: KubeConfig,
  settings: ProcessSettings,
  log: Logger,
): Promise<RunningController> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
  const events = new EventRecorder(core, log, {
    instance: settings.leaderElection.identity,
    eventNamespace: settings.caNamespace,
  });
  const canWrite = () => true;
  const timing = { resyncPeriodMs: settings.resyncPeriodMs, stallTimeoutMs: settings.watchStallTimeoutMs };

  // The three reference each other through callbacks; they are all built before any starts.
  const configuration: CertificateAuthorityController = new CertificateAuthorityController({
    kubeConfig,
    customObjects,
    log: log.child({ controller: 'certificateauthority' }),
    canWrite,
    onConfigChange: () => {
      void authority.reevaluate();
      workloads.enqueueAll();
      trustBundles.enqueueAll();
    },
    authority: () => authority.current,
    counts: () => workloads.counts(),
    ...timing,
  });
  const authority: AuthorityController = new AuthorityController({
    kubeConfig,
    core,
    namespace: settings.caNamespace,
    log: log.child({ controller: 'authority' }),
    config: () => configuration.current,
    canWrite,
    onChange: () => {
      workloads.enqueueAll();
      trustBundles.enqueueAll();
      configuration.requestStatusUpdate();
    },
    ...timing,
  });
  const caches = new SharedCaches({ kubeConfig, core, log: log.child({ controller: 'caches' }), ...timing });
  const workloads: WorkloadSecretsController = new WorkloadSecretsController({
    caches,
    core,
    log: log.child({ controller: 'workload-secrets' }),
    events,
    caNamespace: settings.caNamespace,
    config: () => configuration.current,
    authority: () => authority.current,
    canWrite,
    workers: settings.workers,
    foreignRecheckMs: settings.resyncPeriodMs,
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

  await configuration.start();
  await authority.start();
  await caches.start();
  log.info(
    {
      namespaces: caches.namespaces.size,
      serviceAccounts: caches.serviceAccounts.size,
      secrets: caches.workloadSecrets.size,
      trustBundles: caches.trustBundles.size,
    },
    'caches synced',
  );
  workloads.start();
  trustBundles.start();
  log.info('controller started');
  return {
    ready: () => caches.hasSynced && authority.current.status === 'ready',
    stop: async () => {
      await Promise.all([workloads.stop(), trustBundles.stop()]);
      await Promise.all([caches.stop(), authority.stop(), configuration.stop()]);
    },
  };
}
