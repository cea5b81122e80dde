// istiod (pilot-discovery, built from the same pinned istio.io/istio module as the agent the
// integration tests run, by hack/istio/build.sh) as a local process against the bench's
// kube-apiserver, with its built-in CA: a self-signed root in the Secret istio-ca-secret of its
// own namespace (RSA-2048, istiod's default), third-party JWTs with audience istio-ca checked by a
// TokenReview per call (istiod keeps no cache of them). Its mesh config selects only its own
// namespaces (discoverySelectors), so it writes istio-ca-root-cert nowhere alcazar does.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { repoRoot } from '../../test/cluster/paths.js';
import { type Api, waitUntil } from '../api.js';

/** The label istiod's discoverySelectors match: its own namespace and its clients'. */
export const ISTIOD_SELECTOR_LABEL = 'alcazar.dev/bench-istiod';

export function istiodBinary(log: (line: string) => void): string {
  log(
    'pilot-discovery: hack/istio/build.sh pilot-discovery (cached after the first build; waits for one in progress)',
  );
  return execFileSync('bash', [join(repoRoot, 'hack/istio/build.sh'), 'pilot-discovery'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 90 * 60_000,
  })
    .trim()
    .split('\n')
    .pop()!;
}

/** A port nothing listens on right now (another process may still take it before istiod does). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** The mesh config istiod reads: the default trust domain, and only our namespaces discovered. */
export function istiodMeshConfig(): string {
  return [
    'trustDomain: cluster.local',
    'discoverySelectors:',
    '- matchLabels:',
    `    ${ISTIOD_SELECTOR_LABEL}: "true"`,
    '',
  ].join('\n');
}

export interface RunningIstiod {
  pid: number;
  /** The CSR API (istiod's secure gRPC port, 15012 in a cluster). */
  port: number;
  /** The name its serving certificate carries (istiod.<namespace>.svc). */
  serverName: string;
  /** PEM roots that verify it: root-cert.pem of the istio-ca-root-cert ConfigMap it wrote. */
  roots: string;
  stop(): Promise<void>;
}

export async function startIstiod(opts: {
  api: Api;
  binary: string;
  kubeconfig: string;
  namespace: string;
  workDir: string;
  logFile: string;
  log: (line: string) => void;
}): Promise<RunningIstiod> {
  const [http, grpc, secureGrpc, https, monitoring, ctrlz] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const meshFile = join(opts.workDir, 'etc/istio/config/mesh');
  mkdirSync(join(meshFile, '..'), { recursive: true });
  writeFileSync(meshFile, istiodMeshConfig());
  mkdirSync(join(opts.logFile, '..'), { recursive: true });
  const out = createWriteStream(opts.logFile);
  const child: ChildProcess = spawn(
    opts.binary,
    [
      'discovery',
      `--kubeconfig=${opts.kubeconfig}`,
      `--namespace=${opts.namespace}`,
      `--meshConfig=${meshFile}`,
      `--httpAddr=127.0.0.1:${http}`,
      `--grpcAddr=127.0.0.1:${grpc}`,
      `--secureGRPCAddr=127.0.0.1:${secureGrpc}`,
      `--httpsAddr=127.0.0.1:${https}`,
      `--monitoringAddr=127.0.0.1:${monitoring}`,
      `--ctrlz_port=${ctrlz}`,
    ],
    {
      // ./etc/cacerts (a plugged-in CA) and ./var/run/secrets/tokens (its own token) are absent here:
      // the self-signed CA, and TokenReview for every caller.
      cwd: opts.workDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: opts.workDir,
        POD_NAMESPACE: opts.namespace,
        POD_NAME: 'istiod-bench-0',
        CLUSTER_ID: 'Kubernetes',
        JWT_POLICY: 'third-party-jwt',
        TOKEN_AUDIENCES: 'istio-ca',
        ENABLE_CA_SERVER: 'true',
        PILOT_CERT_PROVIDER: 'istiod',
      },
    },
  );
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (code) => {
      exitCode = code;
      out.end();
      resolve();
    }),
  );
  const stop = async () => {
    if (exitCode !== undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitUntil(
      `istiod ready on 127.0.0.1:${http}/ready (log ${opts.logFile})`,
      async () => {
        if (exitCode !== undefined) throw new Error(`istiod exited with ${exitCode}; see ${opts.logFile}`);
        const res = await fetch(`http://127.0.0.1:${http}/ready`).catch(() => undefined);
        return res?.status === 200;
      },
      120_000,
      250,
    );
    const roots = await waitUntil(
      `istio-ca-root-cert in ${opts.namespace}`,
      async () => {
        const res = await opts.api.send<{ data?: Record<string, string> }>(
          'GET',
          `/api/v1/namespaces/${opts.namespace}/configmaps/istio-ca-root-cert`,
        );
        return res.status === 200 ? res.body.data?.['root-cert.pem'] : undefined;
      },
      60_000,
      250,
    );
    opts.log(`istiod (pid ${child.pid}) ready: CSR API on 127.0.0.1:${secureGrpc}, log ${opts.logFile}`);
    return { pid: child.pid!, port: secureGrpc, serverName: `istiod.${opts.namespace}.svc`, roots, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
