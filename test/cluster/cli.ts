// npm run cluster:{build,up,down,status} and npm run local.
import { ensureBinaries } from './binaries.js';
import { down, isHealthy, readState, up } from './controlplane.js';
import { clusterDir } from './paths.js';

function printUsage(kubeconfig: string): void {
  console.log(`
Use it with kubectl:
  export KUBECONFIG=${kubeconfig}
  kubectl version
  kubectl get serviceaccounts -A

Stop it (and delete its state) with: npm run cluster:down`);
}

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case 'build': {
      const bins = await ensureBinaries();
      console.log(Object.values(bins).join('\n'));
      return 0;
    }
    case 'up':
    case 'local': {
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
