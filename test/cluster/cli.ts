// npm run cluster:{build,up,down,status} and npm run local.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
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

const DEFAULT_CA = `apiVersion: alcazar.dev/v1alpha1
kind: CertificateAuthority
metadata:
  name: default
spec: {}
`;

/** Control plane up, CRD and CertificateAuthority applied, the controller in the foreground. */
async function runLocal(): Promise<number> {
  const { state, started } = await up();
  console.log(`${started ? 'started' : 'reusing'} control plane ${state.version} at ${state.server}`);
  const kubectl = (args: string[], input?: string) =>
    execFileSync('kubectl', ['--kubeconfig', state.kubeconfig, ...args], {
      input,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'inherit'],
    });
  kubectl(['apply', '-f', join(repoRoot, 'crds')]);
  kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/certificateauthorities.alcazar.dev']);
  kubectl(['apply', '-f', '-'], DEFAULT_CA);
  console.log(`
The CA controller runs below (JSON logs). In another terminal:
  export KUBECONFIG=${state.kubeconfig}
  kubectl get secrets -A --field-selector type=istio.io/key-and-cert
  kubectl get certificateauthorities
  kubectl create serviceaccount demo && kubectl get secret istio.demo

Stop with Ctrl-C; stop the control plane with: npm run cluster:down
`);
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'src', 'cli', 'main.ts'),
      'controller',
      `--kubeconfig=${state.kubeconfig}`,
      '--ca-namespace=istio-system',
    ],
    { stdio: 'inherit', cwd: repoRoot },
  );
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 0)));
}

async function main(command: string | undefined): Promise<number> {
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
      console.error('usage: cli.ts build|up|down|status|local');
      return 2;
  }
}

main(process.argv[2]).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
