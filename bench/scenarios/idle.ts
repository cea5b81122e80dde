// Idle cost: N valid Secrets, nothing due. Start the controller, let its first
// pass finish and start-up settle, then watch a window: API writes from the
// apiserver's metrics, the controller's CPU share from /proc/<pid>/stat, its
// RSS from /proc/<pid>/status. The start-up RSS peak (spawn to window) is
// reported on its own: it is what a cold start needs, not what idling costs.
import { readRequestCounts, writesBetween } from '../apiserver-metrics.js';
import { type BenchContext, collectProfile, ensureMinted, startController } from '../context.js';
import { controlPlaneCpuSeconds, cpuSeconds, rssMb, sampleRss } from '../controller.js';
import type { ScenarioResult } from '../results.js';
import { round, summarize } from '../stats.js';

/** From the end of the first pass to the window: start-up includes the heap compaction 10 s after it. */
const SETTLE_MS = 30_000;

export async function idle(ctx: BenchContext): Promise<ScenarioResult> {
  const n = ctx.opts.idleN;
  const windowMs = ctx.opts.idleMinutes * 60_000;
  const runs: Array<Record<string, number>> = [];
  const notes: string[] = [];
  let profile: ScenarioResult['profile'];
  const total = ctx.opts.runs + (ctx.opts.profile ? 1 : 0);
  for (let i = 0; i < total; i++) {
    const profiled = ctx.opts.profile && i === total - 1;
    await ensureMinted(ctx, n, 'ECDSA_P256');
    const { controller, profileDir } = startController(ctx, `idle-${n}-r${i + 1}${profiled ? '-prof' : ''}`, {
      profile: profiled,
    });
    const startup = sampleRss(controller.pid, 250);
    try {
      const started = await controller.waitForLog(
        'controller started',
        (l) => l.msg === 'controller started',
        // 60,000 took ~2 min to start (issue #18): allow 5 ms per ServiceAccount on top.
        120_000 + n * 5,
      );
      const finished = await controller.initialReconcile(120_000 + n * 20);
      const cpuAtReady = cpuSeconds(controller.pid);
      const rssAtReady = rssMb(controller.pid);
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const issuedBefore = controller.count('issued workload certificate');
      const failuresBefore = controller.count('reconcile failed; will retry');
      const before = await readRequestCounts(ctx.api);
      const cpuBefore = cpuSeconds(controller.pid);
      const controlPlaneBefore = controlPlaneCpuSeconds(ctx.state.pids);
      const windowStart = performance.now();
      const windowFromMs = Date.now() - controller.spawnedAt;
      const startupMemory = startup.stop();
      const rss = sampleRss(controller.pid);
      await new Promise((r) => setTimeout(r, windowMs));
      const cpuAfter = cpuSeconds(controller.pid);
      const controlPlaneCpu = controlPlaneCpuSeconds(ctx.state.pids) - controlPlaneBefore;
      const windowToMs = Date.now() - controller.spawnedAt;
      const windowSeconds = (performance.now() - windowStart) / 1000;
      const memory = rss.stop();
      const after = await readRequestCounts(ctx.api);
      const writes = writesBetween(before, after);
      const secretReads = (verb: string) =>
        (after.get(`${verb} secrets`) ?? 0) - (before.get(`${verb} secrets`) ?? 0);
      const run = {
        startupSeconds: round((started.at - controller.spawnedAt) / 1000, 2),
        firstPassSeconds: round(Number(finished.durationMs) / 1000, 2),
        startupCpuSeconds: round(cpuAtReady, 2),
        rssAtReadyMb: round(rssAtReady),
        rssStartupMaxMb: round(startupMemory.maxMb),
        windowSeconds: round(windowSeconds),
        cpuPercentOfCore: round(((cpuAfter - cpuBefore) / windowSeconds) * 100, 3),
        rssMaxMb: round(memory.maxMb),
        rssEndMb: round(memory.endMb),
        // What idling costs the API server: resyncs (--resync-period) and watches.
        controlPlaneCpuPercent: round((controlPlaneCpu / windowSeconds) * 100, 3),
        controlPlaneCpuUsPerSecretPerMinute: round((controlPlaneCpu * 1e6) / n / (windowSeconds / 60), 2),
        secretLists: secretReads('LIST'),
        secretGets: secretReads('GET'),
        watchedWrites: writes.watchedTotal,
        secretWrites: writes.byResource.secrets ?? 0,
        configmapWrites: writes.byResource.configmaps ?? 0,
        eventWrites: writes.byResource.events ?? 0,
        allWrites: writes.total,
        issuedDuringWindow: controller.count('issued workload certificate') - issuedBefore,
        reconcileFailures: controller.count('reconcile failed; will retry') - failuresBefore,
        failuresBeforeWindow: failuresBefore,
      };
      if (run.reconcileFailures + run.failuresBeforeWindow > 0) {
        notes.push(
          `run ${i + 1}: reconcile failures (${failuresBefore} before, ${run.reconcileFailures} in the window)`,
        );
      }
      if (!profiled) runs.push(run);
      ctx.log(
        `  idle n=${n} run ${i + 1}${profiled ? ' (profiled, not counted)' : ''}: ${run.windowSeconds} s window, ` +
          `writes secrets/configmaps/events=${run.watchedWrites} (all resources ${run.allWrites}: ` +
          `${JSON.stringify(writes.byVerb)}), cpu ${run.cpuPercentOfCore}% of a core, ` +
          `apiserver+etcd cpu ${run.controlPlaneCpuPercent}% (secret lists ${run.secretLists}, gets ${run.secretGets}), ` +
          `rss max ${run.rssMaxMb} MB end ${run.rssEndMb} MB (start-up peak ${run.rssStartupMaxMb} MB); startup ${run.startupSeconds} s + first pass ${run.firstPassSeconds} s, ` +
          `${run.startupCpuSeconds} cpu-s`,
      );
      if (writes.total > writes.watchedTotal) {
        notes.push(
          `run ${i + 1}: writes outside secrets/configmaps/events: ${JSON.stringify(writes.byVerb)}`,
        );
      }
      await controller.stop();
      if (profiled) profile = collectProfile(ctx, profileDir, { fromMs: windowFromMs, toMs: windowToMs });
    } finally {
      startup.stop();
      await controller.stop();
    }
  }
  // The controller inherits the bench's environment: ALCAZAR_RESYNC_PERIOD / ALCAZAR_RELIST_PERIOD /
  // ALCAZAR_SECRET_WATCH set there (e.g. a short resync and relist so a window holds relists, or the
  // old whole-Secret watch) apply.
  const resync = process.env.ALCAZAR_RESYNC_PERIOD;
  const relist = process.env.ALCAZAR_RELIST_PERIOD;
  const secretWatch = process.env.ALCAZAR_SECRET_WATCH;
  notes.push(
    resync
      ? `window ${ctx.opts.idleMinutes} min; --resync-period ${resync} (ALCAZAR_RESYNC_PERIOD, ±20%)`
      : `window ${ctx.opts.idleMinutes} min; the controller's default --resync-period (10m ±20%) ` +
          (ctx.opts.idleMinutes >= 12 ? 'falls inside it' : 'may not fall inside it'),
    relist
      ? `--relist-period ${relist} (ALCAZAR_RELIST_PERIOD)`
      : "the controller's default --relist-period (1h): a fresh controller's window of under an hour holds no relist",
  );
  const metric = (key: string) => summarize(runs.map((r) => r[key]!));
  return {
    scenario: 'idle',
    key: `idle n=${n}${resync ? ` resync=${resync}` : ''}${relist ? ` relist=${relist}` : ''}${secretWatch ? ` secret-watch=${secretWatch}` : ''}`,
    params: {
      n,
      minutes: ctx.opts.idleMinutes,
      ...(resync ? { resync } : {}),
      ...(relist ? { relist } : {}),
      ...(secretWatch ? { secretWatch } : {}),
    },
    summary: Object.fromEntries(Object.keys(runs[0] ?? {}).map((k) => [k, metric(k)])),
    runs,
    notes,
    ...(profile ? { profile } : {}),
  };
}
