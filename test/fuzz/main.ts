// `npm run fuzz -- --minutes N [--target name,...] [--seed S]`: runs every
// fuzz target (test/fuzz/targets.ts) round-robin with fresh seeds until the
// time is up, and reports what ran: inputs per target, failures with the seed
// and path that reproduce them (fast-check's `{ seed, path }`), peak RSS.
// A watchdog thread kills the process and names the batch when one input
// runs for more than a minute (an endless loop cannot be interrupted in-thread).
// Exit status 1 when anything failed. Not part of `npm test`.
import { randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { repoRoot } from '../cluster/paths.js';
import { buildCorpus } from './corpus.js';
import { describeCounterexample, propertyOf } from './property.js';
import { fuzzTargets } from './targets.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    target: { type: 'string' },
    seed: { type: 'string' },
    'batch-runs': { type: 'string', default: '500' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(`usage: npm run fuzz -- [--minutes N] [--target a,b] [--seed S] [--batch-runs R]
targets: ${fuzzTargets.map((t) => t.name).join(', ')}`);
  process.exit(0);
}

const minutes = Number(values.minutes);
const batchRuns = Number(values['batch-runs']);
const chosen = values.target ? new Set(values.target.split(',')) : undefined;
const targets = fuzzTargets.filter((t) => !chosen || chosen.has(t.name));
if (targets.length === 0 || !(minutes > 0)) {
  console.error(`nothing to run (targets: ${fuzzTargets.map((t) => t.name).join(', ')})`);
  process.exit(2);
}

/** Heartbeat shared with the watchdog: [beats, batch seed, target index]. */
const heartbeat = new Int32Array(new SharedArrayBuffer(12));
const watchdog = new Worker(
  `const { workerData } = require('node:worker_threads');
   const { writeSync } = require('node:fs');
   const beat = workerData.heartbeat;
   let last = -1, since = Date.now();
   setInterval(() => {
     const now = Atomics.load(beat, 0);
     if (now !== last) { last = now; since = Date.now(); return; }
     if (Date.now() - since > 60000) {
       writeSync(2, 'HANG: target ' + workerData.names[Atomics.load(beat, 2)] + ' ran one input for over 60 s; ' +
         'reproduce with --target ' + workerData.names[Atomics.load(beat, 2)] + ' --seed ' + Atomics.load(beat, 1) + '\\n');
       process.kill(process.pid, 'SIGKILL');
     }
   }, 1000);`,
  { eval: true, workerData: { heartbeat, names: targets.map((t) => t.name) } },
);
watchdog.unref();

interface Failure {
  target: string;
  seed: number;
  path: string;
  counterexample: string;
  error: string;
}

const corpus = await buildCorpus();
const runs = new Map<string, number>(targets.map((t) => [t.name, 0]));
const failures: Failure[] = [];
const started = Date.now();
const deadline = started + minutes * 60_000;
let peakRss = process.memoryUsage().rss;
let firstSeed = values.seed !== undefined ? Number(values.seed) : undefined;

console.log(`fuzzing ${targets.length} targets for ${minutes} min, batches of ${batchRuns} inputs`);
while (Date.now() < deadline) {
  for (const [index, t] of targets.entries()) {
    if (Date.now() >= deadline) break;
    if (failures.some((f) => f.target === t.name)) continue; // one counterexample per target is enough
    const seed = firstSeed ?? randomInt(2 ** 31 - 1);
    Atomics.store(heartbeat, 1, seed);
    Atomics.store(heartbeat, 2, index);
    const property = propertyOf(t, () => corpus).beforeEach(async (previous) => {
      Atomics.add(heartbeat, 0, 1);
      await previous();
    });
    const result = await fc.check(property, { seed, numRuns: batchRuns, endOnFailure: false });
    runs.set(t.name, (runs.get(t.name) ?? 0) + result.numRuns);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (result.failed) {
      const error =
        result.errorInstance instanceof Error
          ? result.errorInstance
          : new Error(String(result.errorInstance));
      const failure: Failure = {
        target: t.name,
        seed: result.seed,
        path: result.counterexamplePath ?? '',
        counterexample: describeCounterexample(t, result.counterexample),
        error: `${error.name}: ${error.message}`,
      };
      failures.push(failure);
      console.log(
        `FAIL ${t.name}: ${failure.error}\n  seed ${failure.seed} path ${failure.path}\n  ${failure.counterexample}`,
      );
    }
  }
  firstSeed = undefined;
}

const elapsedS = Math.round((Date.now() - started) / 1000);
const summary = {
  finishedAt: new Date().toISOString(),
  elapsedSeconds: elapsedS,
  peakRssMB: Math.round(peakRss / 2 ** 20),
  targets: targets.map((t) => ({ name: t.name, about: t.about, inputs: runs.get(t.name) ?? 0 })),
  failures,
};
console.log(`\n| target | inputs | result |\n|---|---|---|`);
for (const t of summary.targets) {
  const failed = failures.some((f) => f.target === t.name);
  console.log(`| ${t.name} | ${t.inputs.toLocaleString('en')} | ${failed ? 'FAILED' : 'ok'} |`);
}
console.log(`\n${elapsedS} s, peak RSS ${summary.peakRssMB} MB, ${failures.length} failing targets`);
const dir = join(repoRoot, '.local', 'fuzz');
mkdirSync(dir, { recursive: true });
const file = join(dir, `fuzz-${summary.finishedAt.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
console.log(`summary: ${file}`);
process.exit(failures.length > 0 ? 1 : 0);
