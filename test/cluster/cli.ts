// npm run cluster:{build,up,down,status} and npm run local.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ensureBinaries } from './binaries.js';
import { down, isHealthy, readState, up } from './controlplane.js';
import { clusterDir, repoRoot } from './paths.js';

function printUsage(kubeconfig: string): void {
  console.log(`
Use it with kubectl:
  export KUBECONFIG=${kubeconfig}
  kubectl version
  kubectl get serviceaccounts -A

Stop it (and delete its state) with: npm run cluster:down`);
}

/** Control plane up, CRD and CertificateAuthority applied, the controller in the foreground. */
const osSignals: Record<string, number> = constants.signals;

async function runLocal(): Promise<number> {
  const { state, started } = await up();
  console.log(`${started ? 'started' : 'reusing'} control plane ${state.version} at ${state.server}`);
  const kubectl = (args: string[], input?: string) =>
    execFileSync('kubectl', ['--kubeconfig', state.kubeconfig, ...args], {
      input,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'inherit'],
    });
  // What `kubectl apply -f crds/ -f manifests/` gives a cluster, less the Deployment (the
  // controller runs here instead): the CRD, the CA namespace and the default CertificateAuthority.
  kubectl(['apply', '-f', join(repoRoot, 'crds')]);
  kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/certificateauthorities.alcazar.dev']);
  for (const file of LOCAL_MANIFESTS) kubectl(['apply', '-f', join(repoRoot, 'manifests', file)]);
  console.log(`
The CA controller runs below. In another terminal:
  export KUBECONFIG=${state.kubeconfig}
  kubectl get secrets -A --field-selector type=istio.io/key-and-cert
  kubectl create serviceaccount demo && kubectl wait --for=create secret/istio.demo --timeout=30s
  kubectl get certificateauthorities
  npm run inspect -- default/demo

Stop with Ctrl-C; stop the control plane with: npm run cluster:down
`);
  // The controller gets a process group of its own, so a Ctrl-C reaches it once, from us, and
  // not a second time straight from the terminal (a second signal means "hurry up" to it).
  const child = spawn(
    process.execPath,
    [
      ...controllerEntryPoint(),
      'controller',
      `--kubeconfig=${state.kubeconfig}`,
      '--ca-namespace=istio-system',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'], cwd: repoRoot, detached: true },
  );
  // One Ctrl-C can reach us more than once (from the terminal, and relayed by npm and tsx): what
  // arrives within DUPLICATE_SIGNAL_MS of a forwarded signal is the same keypress.
  let lastForwardedAt = Number.NEGATIVE_INFINITY;
  const forward = (signal: NodeJS.Signals) => () => {
    const now = performance.now();
    if (now - lastForwardedAt < DUPLICATE_SIGNAL_MS) return;
    lastForwardedAt = now;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  process.on('SIGINT', forward('SIGINT'));
  process.on('SIGTERM', forward('SIGTERM'));
  process.on('SIGHUP', forward('SIGTERM'));
  // If we die without a signal to forward, the controller must not outlive us.
  process.on('exit', () => forward('SIGTERM')());
  return new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      // A controller that could not start ends with its error as the last log line: say what is
      // left running, or the user is back at the prompt with a control plane they may not expect.
      if (lastForwardedAt === Number.NEGATIVE_INFINITY && code !== 0) {
        console.error(
          `\nthe controller exited (${code === null ? `signal ${signal}` : `code ${code}`}); the control plane is still running (npm run cluster:down stops it)`,
        );
      }
      resolve(code ?? (signal ? 128 + (osSignals[signal] ?? 0) : 0));
    }),
  );
}

/**
 * dist/ built from the sources (so the controller starts faster and `npm run inspect` runs the
 * built code too), or the sources through tsx when the build fails on work in progress.
 */
function controllerEntryPoint(): string[] {
  console.log('building dist/ (npm run build) ...');
  const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const build = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  if (build.status === 0) return [join(repoRoot, 'dist', 'cli', 'main.js')];
  console.log('the build failed; running the controller from the sources instead');
  return ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts')];
}

const DUPLICATE_SIGNAL_MS = 500;

/** manifests/ files `npm run local` applies: the namespace and the CertificateAuthority. */
const LOCAL_MANIFESTS = ['00-namespace.yaml', '40-certificateauthority.yaml'];

const CLUSTER_USAGE = `usage: npm run <script>

  npm run cluster:build    build kube-apiserver, kube-controller-manager and etcd from Go modules (cached)
  npm run cluster:up       start a local control plane in the background (or reuse the running one)
  npm run cluster:status   print its state as JSON; exit 1 when nothing healthy runs
  npm run cluster:down     stop it and delete its state
  npm run local            control plane up, crds/ and the CA namespace and CertificateAuthority
                           from manifests/ applied, the controller in the foreground (Ctrl-C stops it)

ALCAZAR_CLUSTER_DIR moves the state directory (default .local/cluster);
ALCAZAR_CACHE_DIR replaces ~/.cache for the binary cache (default ~/.cache/alcazar).`;

async function main(command: string | undefined, rest: string[]): Promise<number> {
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(CLUSTER_USAGE);
    return 0;
  }
  switch (command) {
    case 'build': {
      const bins = await ensureBinaries();
      console.log(Object.values(bins).join('\n'));
      return 0;
    }
    case 'local':
      return runLocal();
    case 'up': {
      const { state, started } = await up();
      console.log(
        started
          ? `control plane ${state.version} is up at ${state.server}`
          : `a control plane is already running at ${state.server}; reusing it`,
      );
      console.log(`kubeconfig: ${state.kubeconfig}\nlogs:       ${state.dir}/logs/`);
      printUsage(state.kubeconfig);
      return 0;
    }
    case 'down': {
      const stopped = await down();
      console.log(
        stopped ? `control plane stopped; ${clusterDir()} removed` : 'no control plane was running',
      );
      return 0;
    }
    case 'status': {
      const state = readState();
      if (!state) {
        console.log('no control plane');
        return 1;
      }
      const healthy = await isHealthy(state);
      console.log(JSON.stringify({ healthy, ...state }, null, 2));
      return healthy ? 0 : 1;
    }
    default:
      console.error(CLUSTER_USAGE);
      return 2;
  }
}

main(process.argv[2], process.argv.slice(3)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
