// npm run bench -- [--quick] [--scenario cold-mint --n 1000] [--runs 3] …
// Brings up its own control plane (ALCAZAR_CLUSTER_DIR, default
// .local/cluster-bench), runs the chosen scenarios, writes
// bench/results/<timestamp>.json and regenerates docs/BENCHMARKS.md.

import { loadavg } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { down, up } from '../test/cluster/controlplane.js';
import { repoRoot } from '../test/cluster/paths.js';
import { Api } from './api.js';
import type { BenchContext } from './context.js';
import { liveControllers, prepareEntry } from './controller.js';
import { acquireBenchLock } from './lock.js';
import { describeNodeRuntime, shippedNodeRuntime } from './node-runtime.js';
import { type BenchOptions, estimateMinutes, parseOptions, USAGE } from './options.js';
import { installCrds, removeLeftovers } from './population.js';
import { evaluateTargets, writeDocs } from './report.js';
import {
  type BenchResults,
  describeMachine,
  gitState,
  latestScenarios,
  type ScenarioResult,
  storedScenarios,
  writeResults,
} from './results.js';
import { coldMint } from './scenarios/cold-mint.js';
import { csr } from './scenarios/csr.js';
import { floor } from './scenarios/floor.js';
import { idle } from './scenarios/idle.js';
import { reaction } from './scenarios/reaction.js';
import { rotation } from './scenarios/rotation.js';
import { rsaKeygen } from './scenarios/rsa-keygen.js';

const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

/** Every measurement the options ask for, in order, as named steps. */
type Step = { name: string; run: (ctx: BenchContext) => Promise<ScenarioResult | ScenarioResult[]> };

function plan(opts: BenchOptions): Step[] {
  const steps: Step[] = [];
  const has = (s: string) => opts.scenarios.includes(s as BenchOptions['scenarios'][number]);
  if (has('cold-mint') || has('floor')) {
    for (const n of opts.n) {
      // The fastest ECDSA mint of this size: the floor also writes at that rate (see floor.ts).
      let mintRate: number | undefined;
      if (has('cold-mint') && opts.algorithms.includes('ECDSA_P256')) {
        for (const workers of opts.workers)
          steps.push({
            name: `cold-mint ECDSA_P256 n=${n} workers=${workers}`,
            run: async (c) => {
              const result = await coldMint(c, n, 'ECDSA_P256', workers);
              const rate = result.summary.secretsPerSecond?.median;
              if (rate !== undefined && rate > (mintRate ?? 0)) mintRate = rate;
              return result;
            },
          });
      }
      if (has('floor') || opts.floor) steps.push({ name: `floor n=${n}`, run: (c) => floor(c, n, mintRate) });
    }
  }
  const rsa = has('cold-mint') && opts.algorithms.includes('RSA_2048');
  if (rsa || has('rsa-keygen')) steps.push({ name: 'rsa-keygen', run: async (c) => rsaKeygen(c) });
  if (rsa) {
    for (const n of opts.rsaN)
      for (const workers of opts.rsaWorkers)
        steps.push({
          name: `cold-mint RSA_2048 n=${n} workers=${workers}`,
          run: (c) => coldMint(c, n, 'RSA_2048', workers),
        });
  }
  if (has('idle')) steps.push({ name: `idle n=${opts.idleN}`, run: idle });
  if (has('reaction')) steps.push({ name: `reaction ${opts.reactionRate}/s`, run: reaction });
  if (has('rotation')) steps.push({ name: `rotation n=${opts.rotationN}`, run: rotation });
  if (has('csr'))
    steps.push({
      name: `csr alcazar vs istiod n=${opts.csrN} concurrency=${opts.csrConcurrency.join(',')} tokens=${opts.csrTokens.join(',')}`,
      run: csr,
    });
  return steps;
}

/** Rebuilds docs/BENCHMARKS.md from the newest result of each scenario and prints the verdicts. */
function report(docs: boolean): void {
  const latest = latestScenarios();
  if (docs) log(`docs: ${writeDocs(latest, storedScenarios())}`);
  console.log('\nTargets (newest result of each scenario across bench/results):');
  for (const t of evaluateTargets(latest)) console.log(`  ${t.verdict.padEnd(7)} ${t.target}: ${t.measured}`);
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOptions(argv);
  if (opts === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (opts.reportOnly) {
    report(opts.docs);
    return 0;
  }
  const dir = isAbsolute(opts.clusterDir) ? opts.clusterDir : join(repoRoot, opts.clusterDir);
  process.env.ALCAZAR_CLUSTER_DIR = dir;
  const release = acquireBenchLock(dir);
  process.once('exit', release);
  const steps = plan(opts);
  log(
    `${steps.length} measurements, ${opts.runs} run(s) each; estimated ${estimateMinutes(opts).toFixed(0)} min on a 2-core machine`,
  );
  for (const step of steps) log(`  - ${step.name}`);

  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log(`interrupted: stopping controllers${opts.keep ? '' : ' and the control plane'}`);
    for (const c of liveControllers) c.kill();
    void (opts.keep ? Promise.resolve(false) : down({ dir })).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const { state, started } = await up({ dir, log });
  log(`${started ? 'started' : 'reusing'} control plane at ${state.server} (${dir})`);
  installCrds(state.kubeconfig);
  const api = new Api(state);
  await removeLeftovers(api);
  const version = (await api.call<{ gitVersion: string }>('GET', '/version')).body.gitVersion;
  const startedAt = new Date().toISOString();
  const results: BenchResults = {
    startedAt,
    argv,
    options: { ...opts },
    machine: describeMachine(version),
    git: gitState(opts.source, opts.ref),
    scenarios: [],
  };
  const stamp = startedAt.replace(/[:.]/g, '-');
  const entry = prepareEntry({ ...opts, stamp, log });
  const shipped = shippedNodeRuntime();
  const node = opts.nodeArgs ? { ...shipped, args: opts.nodeArgs } : shipped;
  // Only flags that differ from the image make a what-if; the same flags given again measure the image.
  const nodeOverride =
    opts.nodeArgs && opts.nodeArgs.join(' ') !== shipped.args.join(' ')
      ? opts.nodeArgs.join(' ') || 'none'
      : undefined;
  log(
    `controller runs as ${describeNodeRuntime(node)}${nodeOverride ? ' (--node-args, not the image)' : ''}`,
  );
  const ctx: BenchContext = { api, state, opts, stamp, entry, node, log };
  log(
    `machine: ${results.machine.cpuModel}, ${results.machine.cores} cores, ${results.machine.memoryGb} GB, node ${results.machine.node}, ` +
      `kubernetes ${version}, load average ${results.machine.loadAverageAtStart.join(' ')}`,
  );
  let failures = 0;
  let file = '';
  try {
    for (const step of steps) {
      if (interrupted) break;
      log(`${step.name}`);
      const began = Date.now();
      try {
        for (const result of [await step.run(ctx)].flat()) {
          if (opts.runtime !== 'built' && result.scenario !== 'floor' && result.scenario !== 'rsa-keygen') {
            result.params.runtime = opts.runtime;
            result.key += ` runtime=${opts.runtime}`;
          }
          // The floor and the keygen yardstick run no controller: what-ifs and runtimes do not touch them.
          const controllerFree = result.scenario === 'floor' || result.scenario === 'rsa-keygen';
          if (!controllerFree) result.params.node = describeNodeRuntime(node);
          if (nodeOverride !== undefined && !controllerFree) {
            result.params.nodeArgs = nodeOverride;
            result.key += ` node-args=${nodeOverride}`;
          }
          if (opts.experiments.length > 0 && !controllerFree) {
            result.params.experiment = opts.experiments.join('+');
            result.key += ` experiment=${opts.experiments.join('+')}`;
          }
          results.scenarios.push(result);
        }
      } catch (err) {
        failures++;
        log(`${step.name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        for (const c of liveControllers) c.kill();
      }
      log(`${step.name} took ${((Date.now() - began) / 1000).toFixed(0)} s`);
      results.machine.loadAverageAtEnd = loadavg().map((l) => Math.round(l * 100) / 100);
      results.finishedAt = new Date().toISOString();
      file = writeResults(results);
    }
  } finally {
    api.close();
    if (!opts.keep && !interrupted) {
      log('stopping the control plane (--keep leaves it running)');
      await down({ dir });
    }
  }
  log(`results: ${file}`);
  report(opts.docs);
  return failures > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    for (const c of liveControllers) c.kill();
    process.exitCode = 1;
  },
);
