// A flood, scaled down for npm test (the full 10,000 / 1,000 run is `npm run
// flood`, results in docs/RELIABILITY.md): ServiceAccounts created in one
// burst while existing workload Secrets are tampered with. Nothing is lost,
// the work queue stays bounded by the number of objects (not by the number
// of events), and the controller's memory comes back down afterwards.
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { describeAudit } from './support/audit.js';
import { type ControllerProcess, startController } from './support/controller.js';
import { flood, rssMbOf, waitForRssAtMost } from './support/flood.js';
import { adminKubeConfig, createTestNamespace } from './support/kube.js';
import { runPool } from './support/load.js';
import { sample, scrape } from './support/metrics.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const cleanups: Array<() => Promise<void>> = [];
let controller: ControllerProcess | undefined;

afterAll(async () => {
  await controller?.stop();
  await Promise.all(cleanups.map((c) => c()));
});

const NAMESPACES = 5;
const EXISTING = 120;
const TAMPERED = 100;
const BURST = 500;
/** What RSS may stay above the idle level before the burst once it is over: the caches hold 500 more of each kind. */
const RSS_ALLOWANCE_MB = 40;

describe('a flood of ServiceAccounts while Secrets are tampered with', () => {
  it(`${BURST} new ServiceAccounts and ${TAMPERED} tampered Secrets: nothing lost, a bounded queue, memory back down`, async () => {
    const ca = await createTestNamespace(core, 'ca');
    cleanups.push(ca.remove);
    const namespaces: string[] = [];
    for (let i = 0; i < NAMESPACES; i++) {
      const ns = await createTestNamespace(core, 'flood');
      cleanups.push(ns.remove);
      namespaces.push(ns.name);
    }
    const existing = Array.from({ length: EXISTING }, (_, i) => ({
      namespace: namespaces[i % NAMESPACES]!,
      name: `pre-${i}`,
    }));
    await runPool(existing, 16, async (w) => {
      await core.createNamespacedServiceAccount({
        namespace: w.namespace,
        body: { metadata: { name: w.name } },
      });
    });
    controller = await startController({ caNamespace: ca.name });
    const proc = controller;
    await proc.waitForLog('the first pass', (l) => l.msg === 'initial reconcile finished', 120_000);
    // Idle: the start-up compaction of the heap has run (10 s after the first pass).
    await proc.waitForLog(
      'the start-up heap compaction',
      (l) => l.msg === 'heap compacted after a burst',
      60_000,
    );

    const result = await flood({
      core,
      caNamespace: ca.name,
      namespaces,
      existing,
      tamper: TAMPERED,
      burst: BURST,
      pid: proc.pid,
      queueDepth: async () => sample(await scrape(proc), 'alcazar_workqueue_depth'),
      log: (line) => console.log(`[flood] ${line}`),
      convergeTimeoutMs: 120_000,
    });
    const total = EXISTING + BURST + NAMESPACES; // each namespace has its default ServiceAccount
    expect(result.audit.problems, describeAudit(result.audit)).toEqual([]);
    expect(result.audit.serviceAccounts).toBe(total);
    expect(result.audit.secrets).toBe(total);
    expect(Object.values(result.tampered).reduce((a, b) => a + b, 0)).toBe(TAMPERED);
    // Keys are deduplicated: thousands of events, never more queued than there are objects.
    // The gauge was read throughout (unit tests check its value). Whether a key is ever seen
    // waiting at a 250 ms sample depends on how fast 16 workers drain it: not asserted.
    expect(result.queueDepthReads).toBeGreaterThan(0);
    expect(result.maxQueueDepth).toBeLessThanOrEqual(total);
    expect(proc.lines.filter((l) => l.level === 'fatal' || l.level === 'error')).toEqual([]);

    const settled = await waitForRssAtMost(proc.pid, result.idleRssMb + RSS_ALLOWANCE_MB, 180_000);
    console.log(
      `[flood] converged in ${result.convergedSeconds.toFixed(1)} s; queue max ${result.maxQueueDepth}; ` +
        `RSS idle ${result.idleRssMb.toFixed(0)} MB, peak ${result.peakRssMb.toFixed(0)} MB, ` +
        `after ${settled.rssMb.toFixed(0)} MB (now ${rssMbOf(proc.pid).toFixed(0)} MB)`,
    );
    expect(
      settled.settled,
      `RSS ${settled.rssMb.toFixed(0)} MB stayed above idle + ${RSS_ALLOWANCE_MB} MB`,
    ).toBe(true);
  });
});
