// One harness for every integration test file: the admin clients, namespaces
// that are deleted afterwards, controllers and API proxies that are stopped
// afterwards, and the CertificateAuthority removed afterwards, so a file
// starts with what it is about. Cleanup order: controllers first (so they do
// not react to the rest), then the proxies, then whatever was deferred (in
// reverse, e.g. an apiserver restored to its standard flags, which the rest
// needs), then the CertificateAuthority, then the namespaces.
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeEach, inject } from 'vitest';
import { type ClusterState, readState } from '../../cluster/controlplane.js';
import { type ApiProxy, startApiProxy } from './api-proxy.js';
import { type ControllerProcess, type StartOptions, startController } from './controller.js';
import {
  adminKubeConfig,
  createNamedTestNamespace,
  createTestNamespace,
  deleteNamespaceIfPresent,
} from './kube.js';
import { deleteCertificateAuthority } from './workload.js';

export interface HarnessOptions {
  /**
   * 'each': what a test creates is cleaned up after that test; what a beforeAll creates stays until
   * cleanUp() (a describe's afterAll) or the end of the file. 'all' (the default): everything at
   * cleanUp() or the end of the file.
   */
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
  /** A namespace by its exact name (an unusual name under test), deleted at cleanup. */
  namespaceNamed(name: string, labels?: Record<string, string>): Promise<string>;
  /** A namespace the test creates itself (or not at all), deleted at cleanup if it exists. */
  trackNamespace(name: string): void;
  /** A controller process, stopped at cleanup. */
  controller(opts: StartOptions): Promise<ControllerProcess>;
  /** Starts `count` controllers at once; every one that starts is stopped at cleanup, even if another fails. */
  controllers(opts: StartOptions, count: number): Promise<ControllerProcess[]>;
  /** A fault-injecting proxy in front of the API server, closed at cleanup. */
  apiProxy(): Promise<ApiProxy>;
  /** The test control plane (its files, its components), checked to be the one the tests talk to. */
  controlPlane(): ClusterState;
  /** Something else to undo at cleanup, before the CertificateAuthority and the namespaces go. */
  defer(undo: () => Promise<void> | void): void;
  /** Cleans up everything so far now: for the afterAll of a describe whose beforeAll started things. */
  cleanUp(): Promise<void>;
}

/** What is to be undone, by kind, in cleanup order. */
class Undo {
  readonly controllers: ControllerProcess[] = [];
  readonly proxies: ApiProxy[] = [];
  readonly deferred: Array<() => Promise<void> | void> = [];
  readonly namespaces: Array<() => Promise<void>> = [];

  async run(deleteCa: (() => Promise<void>) | undefined): Promise<void> {
    await Promise.all(this.controllers.splice(0).map((c) => c.stop()));
    await Promise.all(this.proxies.splice(0).map((p) => p.close()));
    for (const undo of this.deferred.splice(0).reverse()) await undo();
    await deleteCa?.();
    await Promise.all(this.namespaces.splice(0).map((remove) => remove()));
  }
}

export function useHarness(options: HarnessOptions = {}): Harness {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const customObjects = kc.makeApiClient(CustomObjectsApi);
  const leases = kc.makeApiClient(CoordinationV1Api);
  const deleteCa = options.certificateAuthority ? () => deleteCertificateAuthority(customObjects) : undefined;
  /** What beforeAll hooks (or a test, with cleanup 'all') created. */
  const suite = new Undo();
  /** What the running test created, with cleanup 'each'. */
  const test = new Undo();
  let inTest = false;
  const scope = () => (inTest ? test : suite);

  if (options.cleanup === 'each') {
    beforeEach(() => {
      inTest = true;
    });
    afterEach(async () => {
      inTest = false;
      await test.run(deleteCa);
    });
  }
  const cleanUp = async () => {
    await test.run(undefined);
    await suite.run(deleteCa);
  };
  afterAll(cleanUp);

  const controlPlane = () => {
    const state = readState();
    if (!state || state.kubeconfig !== inject('kubeconfig'))
      throw new Error(
        'the test control plane state (ALCAZAR_CLUSTER_DIR) does not match the kubeconfig in use',
      );
    return state;
  };

  return {
    kc,
    core,
    customObjects,
    leases,
    async namespace(prefix, labels = {}) {
      const ns = await createTestNamespace(core, prefix, labels);
      scope().namespaces.push(ns.remove);
      return ns.name;
    },
    async namespaceNamed(name, labels = {}) {
      const ns = await createNamedTestNamespace(core, name, labels);
      scope().namespaces.push(ns.remove);
      return ns.name;
    },
    trackNamespace(name) {
      scope().namespaces.push(() => deleteNamespaceIfPresent(core, name));
    },
    async controller(opts) {
      const proc = await startController(opts);
      scope().controllers.push(proc);
      return proc;
    },
    async controllers(opts, count) {
      const results = await Promise.allSettled(Array.from({ length: count }, () => startController(opts)));
      for (const result of results) if (result.status === 'fulfilled') scope().controllers.push(result.value);
      for (const result of results) if (result.status === 'rejected') throw result.reason;
      return results.map((result) => (result as PromiseFulfilledResult<ControllerProcess>).value);
    },
    async apiProxy() {
      const proxy = await startApiProxy(controlPlane());
      scope().proxies.push(proxy);
      return proxy;
    },
    controlPlane,
    defer(undo) {
      scope().deferred.push(undo);
    },
    cleanUp,
  };
}
