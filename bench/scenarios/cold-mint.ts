// Cold mint: N ServiceAccounts exist, none has a Secret; start the controller
// and time until every Secret exists (seen by a watch started beforehand),
// then check each one from the API.

import { waitUntil } from '../api.js';
import { readRequestCounts, writesBetween } from '../apiserver-metrics.js';
import { type BenchContext, collectProfile, startController } from '../context.js';
import { controlPlaneCpuSeconds, cpuSeconds } from '../controller.js';
import {
  deleteWorkloadSecrets,
  ensurePopulation,
  type KeyAlgorithm,
  MANAGED_SELECTOR,
  type ManagedServiceAccount,
  setCertificateAuthority,
} from '../population.js';
import type { ScenarioResult } from '../results.js';
import { round, summarize } from '../stats.js';
import { type Verification, verifyWorkloadSecrets } from '../verify.js';
import { rsaKeygenRate, rsaKeygenRateAllCores } from './rsa-keygen.js';

/** How long the all-core keygen ceiling is measured before each RSA run: ~300 keys, about ±4%. */
const CEILING_SECONDS = 30;

export interface ColdMintRun {
  /** Controller process spawned → its 'controller started' line (node + tsx startup, CA load, cache sync). */
  startupMs: number;
  /** 'controller started' → the watch has seen all N Secrets. The headline number. */
  mintMs: number;
  /** The controller's own 'initial reconcile finished' durationMs. */
  reconcileLogMs: number;
  /** Spawn → all N Secrets seen. */
  endToEndMs: number;
  secretsPerSecond: number;
  controllerCpuSeconds: number;
  /** kube-apiserver + etcd CPU seconds from 'controller started' to the last Secret seen. */
  controlPlaneCpuSeconds: number;
  /** CPU seconds spent before 'controller started' (module loading, CA, cache sync). */
  startupCpuSeconds: number;
  secretWrites: number;
  eventWrites: number;
  allWrites: number;
  reconcileFailures: number;
  valid: number;
  found: number;
  /** RSA only: one core's native keygen rate measured just before this run, and the run's rate over it. */
  keygenPerSecond?: number;
  ratioToKeygen?: number;
  /** RSA only: native keygen on every core at once, measured just before this run, and the run's share of it. */
  ceilingPerSecond?: number;
  ratioToCeiling?: number;
}

/** Watches workload Secrets and resolves when every expected one has been added. */
async function watchForAll(ctx: BenchContext, expected: Set<string>) {
  const seen = new Set<string>();
  let allAt: number | undefined;
  let stopped = false;
  let resourceVersion = await ctx.api.resourceVersionOf('/api/v1/secrets', {
    labelSelector: MANAGED_SELECTOR,
  });
  type Watched = { metadata: { namespace: string; name: string; resourceVersion?: string } };
  const open = () =>
    ctx.api.watch<Watched>(
      '/api/v1/secrets',
      { labelSelector: MANAGED_SELECTOR, resourceVersion },
      (event) => {
        if (event.object.metadata?.resourceVersion) resourceVersion = event.object.metadata.resourceVersion;
        if (event.type !== 'ADDED') return;
        const key = `${event.object.metadata.namespace}/${event.object.metadata.name}`;
        if (!expected.has(key) || seen.has(key)) return;
        seen.add(key);
        if (seen.size === expected.size) allAt = event.at;
      },
      { metadataOnly: true },
    );
  // The API server closes a watch it finds too slow (a loaded 2-core machine): resume from the last
  // resourceVersion seen instead of waiting for events that will never come.
  let current = await open();
  let resumed = 0;
  const keepOpen = async () => {
    for (;;) {
      await current.ended;
      if (stopped || resumed >= 20) return;
      resumed++;
      current = await open();
    }
  };
  void keepOpen().catch((err: unknown) => ctx.log(`cold-mint watch could not be resumed: ${String(err)}`));
  const watch = {
    stop: () => {
      stopped = true;
      current.stop();
    },
  };
  return { watch, allSeenAt: () => allAt, seen: () => `${seen.size}, watch resumed ${resumed}×` };
}

export async function coldMintOnce(
  ctx: BenchContext,
  serviceAccounts: readonly ManagedServiceAccount[],
  algorithm: KeyAlgorithm,
  workers: number,
  opts: { profile?: boolean; label: string },
): Promise<{ run: ColdMintRun; verification: Verification; profile?: ScenarioResult['profile'] }> {
  const { api } = ctx;
  const n = serviceAccounts.length;
  await deleteWorkloadSecrets(api);
  await setCertificateAuthority(api, algorithm);
  const expected = new Set(serviceAccounts.map((sa) => `${sa.namespace}/istio.${sa.name}`));
  const { watch, allSeenAt, seen } = await watchForAll(ctx, expected);
  const before = await readRequestCounts(api);
  const { controller, profileDir } = startController(ctx, opts.label, { workers, profile: opts.profile });
  try {
    const timeoutMs = 120_000 + n * (algorithm === 'RSA_2048' ? 1000 : 50);
    const started = await controller.waitForLog(
      'controller started',
      (l) => l.msg === 'controller started',
      120_000,
    );
    const startupCpu = cpuSeconds(controller.pid);
    const controlPlaneAtStart = controlPlaneCpuSeconds(ctx.state.pids);
    const finished = await controller.initialReconcile(timeoutMs);
    const allAt = await waitUntil(`all ${n} Secrets in the watch (seen ${seen()})`, allSeenAt, 60_000, 20);
    const cpu = cpuSeconds(controller.pid);
    const controlPlaneCpu = controlPlaneCpuSeconds(ctx.state.pids) - controlPlaneAtStart;
    // Events are written in the background (rate-limited): count once their number stops growing.
    let writes = writesBetween(before, await readRequestCounts(api));
    const settleUntil = Date.now() + 10_000;
    for (let last = -1; Date.now() < settleUntil; ) {
      const events = writes.byVerb['POST events'] ?? 0;
      if (events === last || events >= n) break;
      last = events;
      await new Promise((r) => setTimeout(r, 1_000));
      writes = writesBetween(before, await readRequestCounts(api));
    }
    const verification = await verifyWorkloadSecrets(api, serviceAccounts, algorithm);
    const mintMs = allAt - started.at;
    const run: ColdMintRun = {
      startupMs: started.at - controller.spawnedAt,
      mintMs,
      reconcileLogMs: Number(finished.durationMs),
      endToEndMs: allAt - controller.spawnedAt,
      secretsPerSecond: round(n / (mintMs / 1000)),
      controllerCpuSeconds: round(cpu, 2),
      controlPlaneCpuSeconds: round(controlPlaneCpu, 2),
      startupCpuSeconds: round(startupCpu, 2),
      secretWrites: writes.byResource.secrets ?? 0,
      eventWrites: writes.byResource.events ?? 0,
      allWrites: writes.total,
      reconcileFailures: controller.count('reconcile failed; will retry'),
      valid: verification.valid,
      found: verification.found,
    };
    await controller.stop();
    return { run, verification, profile: collectProfile(ctx, profileDir) };
  } finally {
    watch.stop();
    await controller.stop();
  }
}

export async function coldMint(
  ctx: BenchContext,
  n: number,
  algorithm: KeyAlgorithm,
  workers: number,
): Promise<ScenarioResult> {
  const serviceAccounts = await ensurePopulation(ctx.api, n, ctx.log);
  const runs: ColdMintRun[] = [];
  const notes: string[] = [];
  let profile: ScenarioResult['profile'];
  const total = ctx.opts.runs + (ctx.opts.profile ? 1 : 0);
  for (let i = 0; i < total; i++) {
    // One extra, profiled run: the profiler's own overhead must not skew the counted ones.
    const profiled = ctx.opts.profile && i === total - 1;
    const label = `cold-mint-${algorithm}-${n}-w${workers}-r${i + 1}${profiled ? '-prof' : ''}`;
    // The machine is shared: measure the RSA keygen yardstick right next to each run.
    const keygen = algorithm === 'RSA_2048' && !profiled ? rsaKeygenRate() : undefined;
    const ceiling = keygen ? await rsaKeygenRateAllCores(CEILING_SECONDS) : undefined;
    const result = await coldMintOnce(ctx, serviceAccounts, algorithm, workers, { profile: profiled, label });
    if (keygen && ceiling) {
      result.run.keygenPerSecond = keygen.keysPerSecond;
      result.run.ratioToKeygen = round(result.run.secretsPerSecond / keygen.keysPerSecond, 2);
      result.run.ceilingPerSecond = ceiling.keysPerSecond;
      result.run.ratioToCeiling = round(result.run.secretsPerSecond / ceiling.keysPerSecond, 3);
    }
    if (profiled) profile = result.profile;
    else runs.push(result.run);
    const r = result.run;
    ctx.log(
      `  cold-mint ${algorithm} n=${n} workers=${workers} run ${i + 1}${profiled ? ' (profiled, not counted)' : ''}: ` +
        `mint ${(r.mintMs / 1000).toFixed(2)} s (${r.secretsPerSecond}/s), startup ${(r.startupMs / 1000).toFixed(1)} s, ` +
        `log ${(r.reconcileLogMs / 1000).toFixed(2)} s, cpu ${r.controllerCpuSeconds} s (startup ${r.startupCpuSeconds} s), apiserver+etcd cpu ${r.controlPlaneCpuSeconds} s, writes secrets=${r.secretWrites} ` +
        `events=${r.eventWrites}, failures=${r.reconcileFailures}, valid ${r.valid}/${n}` +
        (keygen
          ? `; keygen just before ${keygen.keysPerSecond}/s on one core → ${r.ratioToKeygen}×, ` +
            `${r.ceilingPerSecond}/s on all cores (${CEILING_SECONDS} s) → ${Math.round((r.ratioToCeiling ?? 0) * 1000) / 10}% of the ceiling`
          : ''),
    );
    if (r.valid !== n)
      notes.push(`run ${i + 1}: only ${r.valid}/${n} valid: ${result.verification.problems.join('; ')}`);
  }
  const metric = (pick: (r: ColdMintRun) => number) => summarize(runs.map(pick));
  return {
    scenario: 'cold-mint',
    key: `cold-mint ${algorithm} n=${n} workers=${workers}`,
    params: { algorithm, n, workers },
    summary: {
      mintSeconds: metric((r) => r.mintMs / 1000),
      secretsPerSecond: metric((r) => r.secretsPerSecond),
      reconcileLogSeconds: metric((r) => r.reconcileLogMs / 1000),
      startupSeconds: metric((r) => r.startupMs / 1000),
      endToEndSeconds: metric((r) => r.endToEndMs / 1000),
      controllerCpuSeconds: metric((r) => r.controllerCpuSeconds),
      cpuMsPerSecret: metric((r) => round(((r.controllerCpuSeconds - r.startupCpuSeconds) * 1000) / n, 2)),
      controlPlaneCpuMsPerSecret: metric((r) => round((r.controlPlaneCpuSeconds * 1000) / n, 2)),
      secretWrites: metric((r) => r.secretWrites),
      eventWrites: metric((r) => r.eventWrites),
      reconcileFailures: metric((r) => r.reconcileFailures),
      ...(algorithm === 'RSA_2048'
        ? {
            keygenPerSecond: metric((r) => r.keygenPerSecond ?? Number.NaN),
            ratioToKeygen: metric((r) => r.ratioToKeygen ?? Number.NaN),
            ceilingPerSecond: metric((r) => r.ceilingPerSecond ?? Number.NaN),
            ratioToCeiling: metric((r) => r.ratioToCeiling ?? Number.NaN),
          }
        : {}),
    },
    runs: runs as unknown as Array<Record<string, unknown>>,
    notes,
    ...(profile ? { profile } : {}),
  };
}
