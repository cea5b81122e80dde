// The API-server floor: no controller, just a client writing the same N
// Secrets (one real minted Secret's data reused, same labels, annotation and
// owner reference) as fast as the apiserver takes them, at a few
// concurrencies. Two clients: the bench's keep-alive node:https client, and
// @kubernetes/client-node as the controller uses it. With the rate the
// cold mint just reached, the keep-alive client also writes paced at that
// rate: the API server's CPU per Secret depends on how fast Secrets arrive
// (measured: 1.3-1.7 ms at ~1,000/s, 2.6-3.1 ms at 440-480/s), so the controller's
// control-plane cost is compared with a bare client's at the same rate.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { runPool } from '../../test/integration/support/load.js';
import { type BenchContext, ensureMinted } from '../context.js';
import { controlPlaneCpuSeconds } from '../controller.js';
import { countWorkloadSecrets, deleteWorkloadSecrets, type ManagedServiceAccount } from '../population.js';
import type { ScenarioResult } from '../results.js';
import { round, summarize } from '../stats.js';
import { verifyWorkloadSecrets } from '../verify.js';

type FloorClient = 'keepalive' | 'client-node';
const CLIENTS: FloorClient[] = ['keepalive', 'client-node'];
const CLIENT_NODE_MAX_N = 10_000;

function secretBody(sa: ManagedServiceAccount, sample: { type: string; data: Record<string, string> }) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: `istio.${sa.name}`,
      namespace: sa.namespace,
      labels: { 'app.kubernetes.io/managed-by': 'alcazar' },
      annotations: { 'istio.io/service-account.name': sa.name },
      ownerReferences: [
        { apiVersion: 'v1', kind: 'ServiceAccount', name: sa.name, uid: sa.uid, controller: true },
      ],
    },
    type: sample.type,
    data: sample.data,
  };
}

async function writeAll(
  ctx: BenchContext,
  client: FloorClient,
  concurrency: number,
  serviceAccounts: readonly ManagedServiceAccount[],
  sample: { type: string; data: Record<string, string> },
  perSecond?: number,
): Promise<{ ms: number; controlPlaneCpuSeconds: number }> {
  await deleteWorkloadSecrets(ctx.api);
  const kc = new KubeConfig();
  kc.loadFromFile(ctx.state.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const write =
    client === 'keepalive'
      ? async (sa: ManagedServiceAccount) => {
          await ctx.api.call('POST', `/api/v1/namespaces/${sa.namespace}/secrets`, secretBody(sa, sample));
        }
      : async (sa: ManagedServiceAccount) => {
          await core.createNamespacedSecret({ namespace: sa.namespace, body: secretBody(sa, sample) });
        };
  const started = performance.now();
  const cpuBefore = controlPlaneCpuSeconds(ctx.state.pids);
  let issued = 0;
  const paced = async (sa: ManagedServiceAccount) => {
    const wait = started + (issued++ * 1000) / perSecond! - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await write(sa);
  };
  await runPool(serviceAccounts, concurrency, perSecond ? paced : write);
  const ms = performance.now() - started;
  const cpu = controlPlaneCpuSeconds(ctx.state.pids) - cpuBefore;
  const count = await countWorkloadSecrets(ctx.api);
  if (count !== serviceAccounts.length)
    throw new Error(`floor wrote ${count}/${serviceAccounts.length} Secrets`);
  return { ms, controlPlaneCpuSeconds: cpu };
}

export async function floor(ctx: BenchContext, n: number, mintRate?: number): Promise<ScenarioResult> {
  const serviceAccounts = await ensureMinted(ctx, n, 'ECDSA_P256');
  const { sample } = await verifyWorkloadSecrets(ctx.api, serviceAccounts, 'ECDSA_P256');
  if (!sample) throw new Error('no valid minted Secret to copy for the floor');
  const trials = new Map<string, number[]>();
  const bestPerRun: number[] = [];
  const bestCpuPerRun: number[] = [];
  const pacedCpuPerRun: number[] = [];
  const runs: Array<Record<string, unknown>> = [];
  for (let i = 0; i < ctx.opts.runs; i++) {
    const times: Record<string, number> = {};
    const cpus: Record<string, number> = {};
    // client-node only at the highest concurrency and up to 10,000: it is there to show the
    // library's own cost (~4× the keep-alive client's time), which 10,000 shows; at 100,000 it
    // alone would take ~7 minutes a run.
    for (const client of n <= CLIENT_NODE_MAX_N ? CLIENTS : CLIENTS.filter((c) => c !== 'client-node')) {
      const concurrencies =
        client === 'keepalive' ? ctx.opts.floorConcurrency : [Math.max(...ctx.opts.floorConcurrency)];
      for (const concurrency of concurrencies) {
        const { ms, controlPlaneCpuSeconds: cpu } = await writeAll(
          ctx,
          client,
          concurrency,
          serviceAccounts,
          sample,
        );
        const key = `${client} c=${concurrency}`;
        times[key] = round(ms);
        cpus[key] = round(cpu, 2);
        trials.set(key, [...(trials.get(key) ?? []), ms / 1000]);
      }
    }
    const best = Math.min(...Object.values(times));
    const bestKey = Object.keys(times).find((k) => times[k] === best)!;
    if (mintRate) {
      const concurrency = Math.max(...ctx.opts.floorConcurrency);
      const paced = await writeAll(ctx, 'keepalive', concurrency, serviceAccounts, sample, mintRate);
      const key = `keepalive c=${concurrency} paced ${round(mintRate)}/s`;
      cpus[key] = round(paced.controlPlaneCpuSeconds, 2);
      pacedCpuPerRun.push(paced.controlPlaneCpuSeconds);
      ctx.log(
        `  floor n=${n} run ${i + 1}: paced at the mint's ${round(mintRate)}/s: ${(paced.ms / 1000).toFixed(2)} s (apiserver+etcd cpu ${cpus[key]} s)`,
      );
    }
    bestPerRun.push(best / 1000);
    bestCpuPerRun.push(cpus[bestKey]!);
    runs.push({
      ...times,
      bestMs: best,
      bestControlPlaneCpuSeconds: cpus[bestKey],
      ...(mintRate
        ? { pacedPerSecond: round(mintRate), pacedControlPlaneCpuSeconds: pacedCpuPerRun.at(-1) }
        : {}),
    });
    ctx.log(
      `  floor n=${n} run ${i + 1}: ${Object.entries(times)
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s (apiserver+etcd cpu ${cpus[k]} s)`)
        .join(', ')}`,
    );
  }
  // Leave the cluster as a cold-mint run leaves it: the controller's own Secrets, valid.
  await deleteWorkloadSecrets(ctx.api);
  const summary: ScenarioResult['summary'] = {
    bestSeconds: summarize(bestPerRun),
    bestSecretsPerSecond: summarize(bestPerRun.map((s) => round(n / s))),
    bestControlPlaneCpuMsPerSecret: summarize(bestCpuPerRun.map((s) => round((s * 1000) / n, 2))),
    ...(pacedCpuPerRun.length > 0
      ? { pacedControlPlaneCpuMsPerSecret: summarize(pacedCpuPerRun.map((s) => round((s * 1000) / n, 2))) }
      : {}),
  };
  for (const [key, values] of trials) summary[key] = summarize(values);
  return {
    scenario: 'floor',
    key: `floor n=${n}`,
    params: {
      n,
      concurrencies: ctx.opts.floorConcurrency.join(','),
      clients: CLIENTS.join(','),
      ...(mintRate ? { pacedPerSecond: round(mintRate) } : {}),
    },
    summary,
    runs,
    notes: [],
  };
}
