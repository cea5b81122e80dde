// What every scenario gets: the API, the control plane, the options, and
// helpers to start a controller (logged and optionally profiled) and to bring
// the cluster to "N valid Secrets exist".
import { join } from 'node:path';
import type { ClusterState } from '../test/cluster/controlplane.js';
import { repoRoot } from '../test/cluster/paths.js';
import { type Api, ApiError } from './api.js';
import { Controller } from './controller.js';
import type { NodeRuntime } from './node-runtime.js';
import type { BenchOptions } from './options.js';
import {
  countWorkloadSecrets,
  ensurePopulation,
  type KeyAlgorithm,
  type ManagedServiceAccount,
  setCertificateAuthority,
} from './population.js';
import { formatProfile, profilesIn, readProfile, summarizeProfile } from './profile.js';
import { resultsDir, type ScenarioResult } from './results.js';
import { verifyWorkloadSecrets } from './verify.js';

export interface BenchContext {
  api: Api;
  state: ClusterState;
  opts: BenchOptions;
  /** Identifies this invocation in file names. */
  stamp: string;
  /** Node arguments that start the controller CLI (see prepareEntry). */
  entry: string[];
  /** How node runs the controller: the image's flags and the Deployment's NODE_OPTIONS (or --node-args). */
  node: NodeRuntime;
  log: (line: string) => void;
}

let started = 0;

export function startController(
  ctx: BenchContext,
  label: string,
  opts: { workers?: number; args?: string[]; profile?: boolean } = {},
): { controller: Controller; profileDir?: string } {
  const name = `${String(++started).padStart(2, '0')}-${label}`;
  const profileDir = opts.profile ? join(resultsDir, 'profiles', ctx.stamp, name) : undefined;
  const controller = new Controller({
    kubeconfig: ctx.state.kubeconfig,
    entry: ctx.entry,
    node: ctx.node,
    workers: opts.workers,
    args: opts.args,
    cpuProfileDir: profileDir,
    logFile: join(repoRoot, '.local', 'bench-logs', ctx.stamp, `${name}.log`),
  });
  return { controller, profileDir };
}

/** Summarises the profile a stopped controller wrote, prints it, and returns it for the results. */
export function collectProfile(
  ctx: BenchContext,
  profileDir: string | undefined,
  window?: { fromMs: number; toMs: number },
): ScenarioResult['profile'] {
  if (!profileDir) return undefined;
  const [file] = profilesIn(profileDir);
  if (!file) {
    ctx.log(`no CPU profile was written to ${profileDir} (did the controller exit cleanly?)`);
    return undefined;
  }
  const summary = summarizeProfile(readProfile(file), 25, window);
  const span = window
    ? ` (${(window.fromMs / 1000).toFixed(1)}–${(window.toMs / 1000).toFixed(1)} s after start)`
    : '';
  ctx.log(`CPU profile ${file}${span}:\n${formatProfile(summary)}`);
  return {
    file: file.slice(repoRoot.length + 1),
    top: summary.top,
    byOrigin: summary.byOrigin,
    busyMs: summary.busyMs,
  };
}

/**
 * Brings the cluster to exactly `n` managed ServiceAccounts, each with a valid Secret of `algorithm`:
 * runs a controller until its first pass is done when anything is missing or stale.
 */
export async function ensureMinted(
  ctx: BenchContext,
  n: number,
  algorithm: KeyAlgorithm,
): Promise<ManagedServiceAccount[]> {
  const serviceAccounts = await ensurePopulation(ctx.api, n, ctx.log);
  await setCertificateAuthority(ctx.api, algorithm);
  // A fresh control plane has no CA yet: nothing can be valid, mint.
  const check = await verifyWorkloadSecrets(ctx.api, serviceAccounts, algorithm).catch((err: unknown) => {
    if (err instanceof ApiError && err.status === 404) return { valid: 0 };
    throw err;
  });
  const total = await countWorkloadSecrets(ctx.api);
  if (check.valid === n && total === n) return serviceAccounts;
  ctx.log(`minting ${n} ${algorithm} Secrets first (${check.valid} valid, ${total} present)`);
  const { controller } = startController(ctx, `mint-${n}`, { workers: 16 });
  try {
    await controller.initialReconcile(600_000 + n * (algorithm === 'RSA_2048' ? 1000 : 50));
    // Secrets of namespaces no longer managed are deleted in the same pass; wait for the count to settle.
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const after = await verifyWorkloadSecrets(ctx.api, serviceAccounts, algorithm);
      if (after.valid === n && (await countWorkloadSecrets(ctx.api)) === n) return serviceAccounts;
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error(`could not bring the cluster to ${n} valid ${algorithm} Secrets`);
  } finally {
    await controller.stop();
  }
}
