// Starts the real control plane once per integration run (or reuses one that
// `npm run cluster:up` left running) and hands its kubeconfig to the tests.
import type { TestProject } from 'vitest/node';
import { down, up } from '../cluster/controlplane.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { state, started } = await up({ log: (line) => console.log(`[cluster] ${line}`) });
  console.log(`[cluster] ${started ? 'started' : 'reusing'} control plane at ${state.server}`);
  project.provide('kubeconfig', state.kubeconfig);
  return async () => {
    // Leave a control plane the developer started themselves; stop only our own.
    if (started && process.env.ALCAZAR_KEEP_CLUSTER !== '1') await down();
  };
}
