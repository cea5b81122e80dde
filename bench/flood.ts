// `npm run flood -- [--burst 10000] [--tampered 1000] [--namespaces 20] [--keep]`
// A flood against the real controller on a control plane of its own
// (.local/cluster-flood): --tampered ServiceAccounts get their Secrets first,
// then --burst new ServiceAccounts are created in one burst while every one
// of those Secrets is tampered with (garbage, a foreign key, a dropped key,
// a wrong bundle, deletion). It reports: nothing lost (a full audit), the
// largest work-queue depth seen (bounded by the objects, not the events), and
// RSS idle before / peak / 5 min after, against a fresh controller idle over the same objects. Results:
// .local/flood/flood-<time>.json and docs/RELIABILITY.md (by hand). Not part
// of npm test; test/integration/flood.test.ts runs it scaled down.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { down, up } from '../test/cluster/controlplane.js';
import { repoRoot } from '../test/cluster/paths.js';
import { flood, rssMbOf } from '../test/integration/support/flood.js';
import { runPool } from '../test/integration/support/load.js';
import { CA_NAMESPACE, Controller, prepareEntry } from './controller.js';
import { shippedNodeRuntime } from './node-runtime.js';

const { values } = parseArgs({
  options: {
    burst: { type: 'string', default: '10000' },
    tampered: { type: 'string', default: '1000' },
    namespaces: { type: 'string', default: '20' },
    'rss-allowance-mb': { type: 'string', default: '40' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(`usage: npm run flood -- [flags]

A flood against the real controller on a control plane of its own (.local/cluster-flood): the
--tampered ServiceAccounts get their Secrets first, then --burst new ServiceAccounts are created at
once while each of those Secrets is tampered with. Reports nothing lost, the largest work-queue
depth, and RSS before / peak / after; writes .local/flood/flood-<time>.json.

  --burst N             ServiceAccounts created in the burst (default 10000)
  --tampered N          Secrets tampered with during it (default 1000)
  --namespaces N        namespaces they are spread over (default 20)
  --rss-allowance-mb N  how far above a fresh idle controller RSS may end (default 40)
  --keep                leave the control plane running
  -h, --help            this text`);
  process.exit(0);
}
const burst = Number(values.burst);
const tampered = Number(values.tampered);
const namespaceCount = Number(values.namespaces);
const allowanceMb = Number(values['rss-allowance-mb']);
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const started = Date.now();
const log = (line: string) => console.log(`[flood +${Math.round((Date.now() - started) / 1000)}s] ${line}`);

process.env.ALCAZAR_CLUSTER_DIR ??= join(repoRoot, '.local', 'cluster-flood');

async function main(): Promise<void> {
  const { state } = await up({ log: (l) => log(`cluster: ${l}`) });
  const kc = new KubeConfig();
  kc.loadFromFile(state.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const ignore409 = (err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
  };
  await core.createNamespace({ body: { metadata: { name: CA_NAMESPACE } } }).catch(ignore409);
  const namespaces = Array.from({ length: namespaceCount }, (_, i) => `flood-${String(i).padStart(2, '0')}`);
  for (const name of namespaces)
    await core.createNamespace({ body: { metadata: { name } } }).catch(ignore409);
  const existing = Array.from({ length: tampered }, (_, i) => ({
    namespace: namespaces[i % namespaceCount]!,
    name: `pre-${i}`,
  }));
  await runPool(existing, 32, async (w) => {
    await core
      .createNamespacedServiceAccount({ namespace: w.namespace, body: { metadata: { name: w.name } } })
      .catch(ignore409);
  });
  log(`${existing.length} ServiceAccounts to tamper with exist in ${namespaceCount} namespaces`);

  const entry = prepareEntry({ runtime: 'built', source: 'worktree', stamp, experiments: [], log });
  const controller = new Controller({
    kubeconfig: state.kubeconfig,
    entry,
    node: shippedNodeRuntime(),
    logFile: join(repoRoot, '.local', 'flood', `controller-${stamp}.log`),
  });
  try {
    await controller.initialReconcile(600_000);
    // Start-up settles (the heap compaction runs 10 s after the first pass).
    await new Promise((r) => setTimeout(r, 30_000));
    log(`controller idle at ${rssMbOf(controller.pid).toFixed(0)} MB RSS; flooding`);
    const result = await flood({
      core,
      caNamespace: CA_NAMESPACE,
      namespaces,
      existing,
      tamper: tampered,
      burst,
      pid: controller.pid,
      queueDepth: () => controller.metric('alcazar_workqueue_depth'),
      log,
      convergeTimeoutMs: 900_000,
    });
    log(`converged in ${result.convergedSeconds.toFixed(1)} s: ${result.audit.problems.length} problems`);
    // "Idle" after the flood is what a controller costs idle at the new size: measured on a fresh
    // controller over the same objects once the flooded one has had 5 minutes to come down.
    const afterStarted = Date.now();
    await new Promise((r) => setTimeout(r, 300_000));
    const afterMb = rssMbOf(controller.pid);
    await controller.stop();
    const fresh = new Controller({
      kubeconfig: state.kubeconfig,
      entry,
      node: shippedNodeRuntime(),
      logFile: join(repoRoot, '.local', 'flood', `controller-${stamp}-fresh.log`),
    });
    await fresh.initialReconcile(600_000);
    await new Promise((r) => setTimeout(r, 30_000));
    const freshIdleMb = rssMbOf(fresh.pid);
    await fresh.stop();
    const settled = { settled: afterMb <= freshIdleMb + allowanceMb, rssMb: afterMb };
    const summary = {
      finishedAt: new Date().toISOString(),
      burst,
      tampered: result.tampered,
      namespaces: namespaceCount,
      serviceAccounts: result.audit.serviceAccounts,
      secrets: result.audit.secrets,
      problems: result.audit.problems.slice(0, 20),
      problemCount: result.audit.problems.length,
      convergedSeconds: Math.round(result.convergedSeconds * 10) / 10,
      maxQueueDepth: result.maxQueueDepth,
      rssMb: {
        idleBefore: Math.round(result.idleRssMb),
        freshIdleAtNewSize: Math.round(freshIdleMb),
        peak: Math.round(result.peakRssMb),
        after: Math.round(settled.rssMb),
        backWithinAllowance: settled.settled,
        allowance: allowanceMb,
        secondsAfterConvergence: Math.round((Date.now() - afterStarted) / 1000),
      },
      reconcileFailures: controller.count('reconcile failed; will retry'),
      eventsDropped: await controller.metric('alcazar_events_dropped_total'),
    };
    const dir = join(repoRoot, '.local', 'flood');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `flood-${stamp}.json`);
    writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
    console.log(JSON.stringify(summary, null, 2));
    log(`summary: ${file}`);
    if (summary.problemCount > 0 || !settled.settled || summary.maxQueueDepth > summary.serviceAccounts)
      process.exitCode = 1;
  } finally {
    await controller.stop();
    if (!values.keep) await down();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
