// Starts the real control plane once per integration run (or reuses one that
// `npm run cluster:up` left running) and hands its kubeconfig to the tests.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { down, up } from '../cluster/controlplane.js';
import { clusterDir, repoRoot } from '../cluster/paths.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { state, started } = await up({ log: (line) => console.log(`[cluster] ${line}`) });
  console.log(`[cluster] ${started ? 'started' : 'reusing'} control plane at ${state.server}`);
  project.provide('kubeconfig', state.kubeconfig);
  try {
    prepare(state.kubeconfig);
  } catch (err) {
    // No teardown is handed back when setup throws: stop what was started here, or it outlives the run.
    if (started) await down();
    throw err;
  }
  return async () => {
    // Leave a control plane the developer started themselves; stop only our own.
    if (started && process.env.ALCAZAR_KEEP_CLUSTER !== '1') await down();
  };
}

/** The CRDs installed and established, no CertificateAuthority left over, this run's log folder empty. */
function prepare(kubeconfig: string): void {
  // Users install the CRD with kubectl; so do the tests.
  execFileSync('kubectl', ['--kubeconfig', kubeconfig, 'apply', '-f', join(repoRoot, 'crds')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  execFileSync(
    'kubectl',
    ['--kubeconfig', kubeconfig, 'wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  // A reused control plane may hold a CertificateAuthority someone edited by hand (`npm run local`):
  // every run starts from none, so each test file sets the spec it needs.
  execFileSync(
    'kubectl',
    ['--kubeconfig', kubeconfig, 'delete', 'certificateauthorities', '--all', '--ignore-not-found'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  // Controller output of this run only, for the key-leak scan.
  rmSync(`${clusterDir()}-test-logs`, { recursive: true, force: true });
}
