// One harness for every integration test file: the admin clients, namespaces
// that are deleted afterwards, controllers that are stopped afterwards, and
// the CertificateAuthority removed afterwards, so a file starts with what it
// is about. Cleanup order: controllers first (so they do not react to the
// rest), then the CertificateAuthority, then whatever was deferred, then the
// namespaces.
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach } from 'vitest';
import { type ControllerProcess, type StartOptions, startController } from './controller.js';
import { adminKubeConfig, createTestNamespace } from './kube.js';
import { deleteCertificateAuthority } from './workload.js';

export interface HarnessOptions {
  /** Clean up after each test ('each') or once after the file ('all', the default). */
  cleanup?: 'each' | 'all';
  /** Delete the CertificateAuthority `default` at cleanup (for files that set one). */
  certificateAuthority?: boolean;
}

export interface Harness {
  kc: KubeConfig;
  core: CoreV1Api;
  customObjects: CustomObjectsApi;
  leases: CoordinationV1Api;
  /** A namespace of its own (`<prefix>-<random>`), deleted at cleanup. */
  namespace(prefix: string, labels?: Record<string, string>): Promise<string>;
  /** A controller process, stopped at cleanup. */
  controller(opts: StartOptions): Promise<ControllerProcess>;
  /** Starts `count` controllers at once; every one that starts is stopped at cleanup, even if another fails. */
  controllers(opts: StartOptions, count: number): Promise<ControllerProcess[]>;
  /** Something else to undo at cleanup, before the namespaces go. */
  defer(undo: () => Promise<void> | void): void;
}

export function useHarness(options: HarnessOptions = {}): Harness {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const customObjects = kc.makeApiClient(CustomObjectsApi);
  const leases = kc.makeApiClient(CoordinationV1Api);
  const running: ControllerProcess[] = [];
  const deferred: Array<() => Promise<void> | void> = [];
  const namespaces: Array<() => Promise<void>> = [];

  const cleanup = async () => {
    await Promise.all(running.splice(0).map((c) => c.stop()));
    if (options.certificateAuthority) await deleteCertificateAuthority(customObjects);
    for (const undo of deferred.splice(0).reverse()) await undo();
    await Promise.all(namespaces.splice(0).map((remove) => remove()));
  };
  if (options.cleanup === 'each') afterEach(cleanup);
  afterAll(cleanup);

  return {
    kc,
    core,
    customObjects,
    leases,
    async namespace(prefix, labels = {}) {
      const ns = await createTestNamespace(core, prefix, labels);
      namespaces.push(ns.remove);
      return ns.name;
    },
    async controller(opts) {
      const proc = await startController(opts);
      running.push(proc);
      return proc;
    },
    async controllers(opts, count) {
      const results = await Promise.allSettled(Array.from({ length: count }, () => startController(opts)));
      for (const result of results) if (result.status === 'fulfilled') running.push(result.value);
      for (const result of results) if (result.status === 'rejected') throw result.reason;
      return results.map((result) => (result as PromiseFulfilledResult<ControllerProcess>).value);
    },
    defer(undo) {
      deferred.push(undo);
    },
  };
}
