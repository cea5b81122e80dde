// A real, local Kubernetes control plane: etcd, kube-apiserver and
// kube-controller-manager as background processes on free loopback ports.
// State (pids, ports) lives in <clusterDir>/state.json so `down`, `status` and
// later `up` calls find a running control plane again.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Binaries, type Component, ensureBinaries, KUBERNETES_VERSION } from './binaries.js';
import { type ClusterCredentials, createCredentials, credentialsIn, kubeconfigYaml } from './credentials.js';
import { isAlive, withLock } from './lock.js';
import { clusterDir, kubeconfigPath } from './paths.js';

export interface ClusterState {
  version: string;
  dir: string;
  kubeconfig: string;
  server: string;
  ports: { etcdClient: number; etcdPeer: number; apiserver: number; controllerManager: number };
  pids: Partial<Record<Component, number>>;
  binaries: Binaries;
  startedAt: string;
}

export interface UpResult {
  state: ClusterState;
  /** false when an already running control plane was reused. */
  started: boolean;
}

type Log = (line: string) => void;

const statePath = (dir: string) => join(dir, 'state.json');

export function readState(dir = clusterDir()): ClusterState | undefined {
  if (!existsSync(statePath(dir))) return undefined;
  return JSON.parse(readFileSync(statePath(dir), 'utf8')) as ClusterState;
}

function writeState(state: ClusterState): void {
  writeFileSync(statePath(state.dir), `${JSON.stringify(state, null, 2)}\n`);
}

async function freePorts(count: number): Promise<number[]> {
  // Hold every listener open until all ports are known, so none repeats.
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      return new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(server));
      });
    }),
  );
  const ports = servers.map((s) => {
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('unexpected listener address');
    return addr.port;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function startProcess(state: ClusterState, component: Component, args: string[]): ChildProcess {
  const logDir = join(state.dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const out = openSync(join(logDir, `${component}.log`), 'a');
  const child = spawn(state.binaries[component], args, {
    detached: true, // own process group: survives the launcher and is killed as a group
    stdio: ['ignore', out, out],
    cwd: state.dir,
  });
  closeSync(out);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${component}`);
  state.pids[component] = child.pid;
  writeState(state);
  return child;
}

function componentArgs(state: ClusterState, creds: ClusterCredentials, component: Component): string[] {
  const { ports, dir } = state;
  switch (component) {
    case 'etcd':
      return [
        '--name=alcazar-local',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${ports.etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${ports.etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
        `--initial-cluster=alcazar-local=http://127.0.0.1:${ports.etcdPeer}`,
        '--unsafe-no-fsync=true', // test data: durability traded for speed
        '--quota-backend-bytes=4294967296',
        '--log-level=warn',
        // Benchmarks that profile the control plane (npm run bench -- --profile-apiserver) read etcd's too.
        ...(process.env.ALCAZAR_APISERVER_PROFILING === 'true' ? ['--enable-pprof=true'] : []),
      ];
    case 'kube-apiserver':
      return [
        `--etcd-servers=http://127.0.0.1:${ports.etcdClient}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--tls-cert-file=${creds.servingCert}`,
        `--tls-private-key-file=${creds.servingKey}`,
        `--client-ca-file=${creds.caCert}`,
        `--secure-port=${ports.apiserver}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        '--service-cluster-ip-range=10.0.0.0/24',
        '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${creds.serviceAccountPub}`,
        `--service-account-signing-key-file=${creds.serviceAccountKey}`,
        // Off, except for benchmarks that profile the API server itself (npm run bench -- --profile-apiserver).
        `--profiling=${process.env.ALCAZAR_APISERVER_PROFILING === 'true'}`,
        '--v=0',
      ];
    case 'kube-controller-manager': {
      const kubeconfig = join(dir, 'controller-manager.kubeconfig');
      return [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--controllers=serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller,namespace-controller,root-ca-certificate-publisher-controller',
        `--service-account-private-key-file=${creds.serviceAccountKey}`,
        `--root-ca-file=${creds.caCert}`,
        '--use-service-account-credentials=true', // each controller acts with its own bootstrap role
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${ports.controllerManager}`,
        '--concurrent-gc-syncs=20',
        '--concurrent-namespace-syncs=10',
        '--v=0',
      ];
    }
  }
}

interface Probe {
  what: string;
  check: () => Promise<boolean>;
}

async function waitUntil(
  probe: Probe,
  state: ClusterState,
  component: Component,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe.check().catch(() => false)) return;
    const pid = state.pids[component];
    if (pid === undefined || !isAlive(pid)) {
      throw new Error(
        `${component} exited while waiting for ${probe.what}; see ${join(state.dir, 'logs', `${component}.log`)}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${probe.what}; see ${join(state.dir, 'logs')}`,
      );
    }
    await sleep(100);
  }
}

function httpGetOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** GET a path on the apiserver as the admin; resolves with status code and body. */
export function apiserverGet(state: ClusterState, path: string): Promise<{ status: number; body: string }> {
  const creds = credentialsIn(join(state.dir, 'pki'));
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${state.server}${path}`,
      {
        ca: readFileSync(creds.caCert),
        cert: readFileSync(creds.adminCert),
        key: readFileSync(creds.adminKey),
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.end();
  });
}

const probes = {
  etcd: (state: ClusterState): Probe => ({
    what: 'etcd /health',
    check: () => httpGetOk(`http://127.0.0.1:${state.ports.etcdClient}/health`),
  }),
  'kube-apiserver': (state: ClusterState): Probe => ({
    what: 'kube-apiserver /readyz',
    check: async () => (await apiserverGet(state, '/readyz')).status === 200,
  }),
  'kube-controller-manager': (state: ClusterState): Probe => ({
    // The controller-manager is ready for us once it has created the default ServiceAccount.
    what: 'the controller-manager to create ServiceAccount default/default',
    check: async () =>
      (await apiserverGet(state, '/api/v1/namespaces/default/serviceaccounts/default')).status === 200,
  }),
} satisfies Record<Component, (state: ClusterState) => Probe>;

const startTimeoutMs: Record<Component, number> = {
  etcd: 30_000,
  'kube-apiserver': 90_000,
  'kube-controller-manager': 60_000,
};

/** Starts one component and waits until it is ready. */
export async function startComponent(state: ClusterState, component: Component): Promise<void> {
  const creds = credentialsIn(join(state.dir, 'pki'));
  startProcess(state, component, componentArgs(state, creds, component));
  await waitUntil(probes[component](state), state, component, startTimeoutMs[component]);
}

/** Stops one component (SIGTERM, then SIGKILL after the grace period) and waits for it to exit. */
export async function stopComponent(
  state: ClusterState,
  component: Component,
  graceMs = 10_000,
): Promise<void> {
  const pid = state.pids[component];
  if (pid === undefined) return;
  await killGroup(pid, graceMs);
  delete state.pids[component];
  writeState(state);
}

async function killGroup(pid: number, graceMs: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) {
    signal('SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
}

/** True when every component's process is alive and the apiserver answers /readyz. */
export async function isHealthy(state: ClusterState): Promise<boolean> {
  const pidsAlive = (['etcd', 'kube-apiserver', 'kube-controller-manager'] as const).every((c) => {
    const pid = state.pids[c];
    return pid !== undefined && isAlive(pid);
  });
  if (!pidsAlive) return false;
  return probes['kube-apiserver'](state)
    .check()
    .catch(() => false);
}

/**
 * Brings the control plane up, or reuses the one already running in the same
 * directory. A stale directory (processes gone) is cleared and started afresh.
 */
export async function up(opts: { dir?: string; log?: Log } = {}): Promise<UpResult> {
  const dir = opts.dir ?? clusterDir();
  const log = opts.log ?? console.error;
  const binaries = await ensureBinaries(log);
  mkdirSync(dir, { recursive: true });
  return withLock(join(dir, '..', `.${dir.split('/').pop()}.lock`), async () => {
    const existing = readState(dir);
    if (existing) {
      if (existing.version === KUBERNETES_VERSION && (await isHealthy(existing))) {
        return { state: existing, started: false };
      }
      log('found a stopped or unhealthy control plane in the state directory; clearing it');
      await teardown(existing);
    }
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const started = Date.now();
    const creds = createCredentials(join(dir, 'pki'));
    const [etcdClient, etcdPeer, apiserver, controllerManager] = (await freePorts(4)) as [
      number,
      number,
      number,
      number,
    ];
    const server = `https://127.0.0.1:${apiserver}`;
    const state: ClusterState = {
      version: KUBERNETES_VERSION,
      dir,
      kubeconfig: kubeconfigPath(dir),
      server,
      ports: { etcdClient, etcdPeer, apiserver, controllerManager },
      pids: {},
      binaries,
      startedAt: new Date().toISOString(),
    };
    writeState(state);
    writeFileSync(
      state.kubeconfig,
      kubeconfigYaml({
        server,
        caCert: creds.caCert,
        cert: creds.adminCert,
        key: creds.adminKey,
        user: 'alcazar-admin',
      }),
      { mode: 0o600 },
    );
    writeFileSync(
      join(dir, 'controller-manager.kubeconfig'),
      kubeconfigYaml({
        server,
        caCert: creds.caCert,
        cert: creds.controllerManagerCert,
        key: creds.controllerManagerKey,
        user: 'system:kube-controller-manager',
      }),
      { mode: 0o600 },
    );
    try {
      for (const component of ['etcd', 'kube-apiserver', 'kube-controller-manager'] as const) {
        await startComponent(state, component);
      }
    } catch (err) {
      await teardown(state);
      throw err;
    }
    log(`control plane ${KUBERNETES_VERSION} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { state, started: true };
  });
}

async function teardown(state: ClusterState): Promise<void> {
  for (const component of ['kube-controller-manager', 'kube-apiserver', 'etcd'] as const) {
    await stopComponent(state, component);
  }
}

/** Stops every component and deletes the state directory. Safe to call when nothing runs. */
export async function down(opts: { dir?: string } = {}): Promise<boolean> {
  const dir = opts.dir ?? clusterDir();
  const state = readState(dir);
  if (state) await teardown(state);
  const existed = existsSync(dir);
  rmSync(dir, { recursive: true, force: true });
  return state !== undefined || existed;
}
