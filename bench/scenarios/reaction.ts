// Reaction latency: with a controller running over N managed Secrets,
// ServiceAccounts are created at a steady rate (open loop: each create is
// sent on schedule whether or not earlier ones have returned). Latency runs
// from the moment the create call returned (client clock) to the moment a
// watch on Secrets, started beforehand, received the Secret (same clock).
import { type BenchContext, collectProfile, ensureMinted, startController } from '../context.js';
import { type Controller, cpuSeconds } from '../controller.js';
import { BENCH_LABEL, MANAGED_SELECTOR, OVERRIDE_LABEL } from '../population.js';
import type { ScenarioResult } from '../results.js';
import { percentile, round, summarize } from '../stats.js';

const RUN_LABEL = 'alcazar.dev/bench-run';

interface Sample {
  issuedAt: number;
  returnedAt?: number;
  seenAt?: number;
  failed?: string;
}

async function reactOnce(ctx: BenchContext, namespace: string, run: number) {
  const { api } = ctx;
  const rate = ctx.opts.reactionRate;
  const total = Math.round(rate * ctx.opts.reactionSeconds);
  const samples = new Map<string, Sample>();
  const resourceVersion = await api.resourceVersionOf(`/api/v1/namespaces/${namespace}/secrets`, {
    labelSelector: MANAGED_SELECTOR,
  });
  const watch = await api.watch<{ metadata: { name: string } }>(
    `/api/v1/namespaces/${namespace}/secrets`,
    { labelSelector: MANAGED_SELECTOR, resourceVersion },
    (event) => {
      if (event.type !== 'ADDED') return;
      const sample = samples.get(event.object.metadata.name.replace(/^istio\./, ''));
      if (sample && sample.seenAt === undefined) sample.seenAt = event.at;
    },
    { metadataOnly: true },
  );
  try {
    const pending: Array<Promise<void>> = [];
    const interval = 1000 / rate;
    const t0 = performance.now() + 100;
    for (let k = 0; k < total; k++) {
      const wait = t0 + k * interval - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const name = `r${run}-${String(k).padStart(5, '0')}`;
      const sample: Sample = { issuedAt: Date.now() };
      samples.set(name, sample);
      pending.push(
        api
          .call('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
            metadata: { name, labels: { [BENCH_LABEL]: 'reaction', [RUN_LABEL]: `r${run}` } },
          })
          .then(
            () => {
              sample.returnedAt = Date.now();
            },
            (err: unknown) => {
              sample.failed = (err as Error).message;
            },
          ),
      );
    }
    await Promise.all(pending);
    // A controller slower than the create rate drains its backlog afterwards: wait for that too.
    const deadline = Date.now() + Math.max(60_000, total * 100);
    const outstanding = () => [...samples.values()].filter((s) => !s.failed && s.seenAt === undefined).length;
    while (outstanding() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  } finally {
    watch.stop();
  }
  const list = [...samples.values()];
  const issued = list.map((s) => s.issuedAt);
  const fromReturn = list
    .filter((s) => s.seenAt !== undefined && s.returnedAt !== undefined)
    .map((s) => s.seenAt! - s.returnedAt!);
  const fromIssue = list.filter((s) => s.seenAt !== undefined).map((s) => s.seenAt! - s.issuedAt);
  const createMs = list.filter((s) => s.returnedAt !== undefined).map((s) => s.returnedAt! - s.issuedAt);
  return {
    created: list.filter((s) => s.returnedAt !== undefined).length,
    failedCreates: list.filter((s) => s.failed).length,
    missing: list.filter((s) => !s.failed && s.seenAt === undefined).length,
    achievedRate: round((list.length - 1) / ((Math.max(...issued) - Math.min(...issued)) / 1000), 1),
    p50Ms: percentile(fromReturn, 50),
    p90Ms: percentile(fromReturn, 90),
    p99Ms: percentile(fromReturn, 99),
    maxMs: Math.max(...fromReturn),
    p50FromIssueMs: percentile(fromIssue, 50),
    p99FromIssueMs: percentile(fromIssue, 99),
    createCallP50Ms: percentile(createMs, 50),
    createCallP99Ms: percentile(createMs, 99),
  };
}

/** A managed namespace of its own per run, so the runs cannot disturb each other. */
async function createRunNamespace(ctx: BenchContext, run: number): Promise<string> {
  const name = `bench-react-${Date.now().toString(36)}-r${run}`;
  await ctx.api.call('POST', '/api/v1/namespaces', {
    metadata: { name, labels: { [BENCH_LABEL]: 'reaction', [OVERRIDE_LABEL]: 'true' } },
  });
  return name;
}

/** Deletes a run's namespace and waits until it is gone and the controller has caught up. */
async function removeRunNamespace(
  ctx: BenchContext,
  namespace: string,
  controller: Controller,
): Promise<void> {
  await ctx.api.call('DELETE', `/api/v1/namespaces/${namespace}`, undefined, { accept: [404] });
  const deadline = Date.now() + 300_000;
  while ((await ctx.api.send('GET', `/api/v1/namespaces/${namespace}`)).status !== 404) {
    if (Date.now() > deadline) throw new Error(`namespace ${namespace} was not deleted`);
    await new Promise((r) => setTimeout(r, 500));
  }
  await controller.waitQuiet(300_000);
}

export async function reaction(ctx: BenchContext): Promise<ScenarioResult> {
  const { opts } = ctx;
  await ensureMinted(ctx, opts.reactionN, 'ECDSA_P256');
  const { controller, profileDir } = startController(ctx, `reaction-${opts.reactionN}`, {
    profile: opts.profile,
  });
  const runs: Array<
    Awaited<ReturnType<typeof reactOnce>> & { controllerCpuSeconds: number; reconcileFailures: number }
  > = [];
  try {
    await controller.initialReconcile(120_000 + opts.reactionN * 50);
    for (let i = 1; i <= opts.runs; i++) {
      const namespace = await createRunNamespace(ctx, i);
      // The namespace's `default` ServiceAccount gets its Secret first; start from a quiet controller.
      await controller.waitQuiet(60_000);
      const cpuBefore = cpuSeconds(controller.pid);
      const failuresBefore = controller.count('reconcile failed; will retry');
      const result = {
        ...(await reactOnce(ctx, namespace, i)),
        controllerCpuSeconds: 0,
        reconcileFailures: 0,
      };
      result.controllerCpuSeconds = round(cpuSeconds(controller.pid) - cpuBefore, 2);
      result.reconcileFailures = controller.count('reconcile failed; will retry') - failuresBefore;
      runs.push(result);
      ctx.log(
        `  reaction ${opts.reactionRate}/s for ${opts.reactionSeconds} s run ${i}: p50 ${result.p50Ms} ms, ` +
          `p90 ${result.p90Ms} ms, p99 ${result.p99Ms} ms, max ${result.maxMs} ms ` +
          `(from send: p50 ${result.p50FromIssueMs}, p99 ${result.p99FromIssueMs}; create call p99 ${result.createCallP99Ms} ms), ` +
          `achieved ${result.achievedRate}/s, missing ${result.missing}, failed creates ${result.failedCreates}, ` +
          `reconcile failures ${result.reconcileFailures}, controller cpu ${result.controllerCpuSeconds} s`,
      );
      await removeRunNamespace(ctx, namespace, controller);
    }
    await controller.stop();
  } finally {
    await controller.stop();
  }
  const profile = collectProfile(ctx, profileDir);
  const metric = (pick: (r: (typeof runs)[number]) => number) => summarize(runs.map(pick));
  return {
    scenario: 'reaction',
    key: `reaction rate=${opts.reactionRate} seconds=${opts.reactionSeconds}`,
    params: {
      rate: opts.reactionRate,
      seconds: opts.reactionSeconds,
      backgroundSecrets: opts.reactionN,
      latencyFrom: 'create call returned (client clock)',
      latencyTo: 'Secret ADDED event received by a watch (client clock)',
    },
    summary: {
      p50Ms: metric((r) => r.p50Ms),
      p90Ms: metric((r) => r.p90Ms),
      p99Ms: metric((r) => r.p99Ms),
      maxMs: metric((r) => r.maxMs),
      p99FromIssueMs: metric((r) => r.p99FromIssueMs),
      createCallP99Ms: metric((r) => r.createCallP99Ms),
      achievedRate: metric((r) => r.achievedRate),
      missing: metric((r) => r.missing),
      controllerCpuSeconds: metric((r) => r.controllerCpuSeconds),
      reconcileFailures: metric((r) => r.reconcileFailures),
    },
    runs,
    notes: opts.profile ? ['profiled: the controller ran under --cpu-prof for every run'] : [],
    ...(profile ? { profile } : {}),
  };
}
