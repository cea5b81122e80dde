// One core's native RSA-2048 keygen rate: generateKeyPairSync in a loop on
// the main thread for ~10 s. The RSA cold-mint target is a multiple of it.
// Also the same loop on every core at once (one thread each): the machine's
// ceiling, which on shared or SMT vCPUs is less than cores × one core.
import { generateKeyPairSync } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BenchContext } from '../context.js';
import type { ScenarioResult } from '../results.js';
import { round, summarize } from '../stats.js';

export function rsaKeygenRate(seconds = 10): { keys: number; seconds: number; keysPerSecond: number } {
  const started = performance.now();
  let keys = 0;
  while (performance.now() - started < seconds * 1000) {
    generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
    keys++;
  }
  const elapsed = (performance.now() - started) / 1000;
  return { keys, seconds: round(elapsed, 2), keysPerSecond: round(keys / elapsed, 2) };
}

const LOOP = `
const { generateKeyPairSync } = require('node:crypto');
const { parentPort, workerData } = require('node:worker_threads');
const end = performance.now() + workerData * 1000;
let keys = 0;
while (performance.now() < end) { generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 }); keys++; }
parentPort.postMessage(keys);
`;

/** The same loop on `threads` threads at once; keys per second all together. */
export async function rsaKeygenRateAllCores(
  seconds = 10,
  threads = availableParallelism(),
): Promise<{ threads: number; keysPerSecond: number }> {
  const counts = await Promise.all(
    Array.from(
      { length: threads },
      () =>
        new Promise<number>((resolve, reject) => {
          const worker = new Worker(LOOP, { eval: true, workerData: seconds });
          worker.once('message', (keys: number) => {
            resolve(keys);
            void worker.terminate();
          });
          worker.once('error', reject);
        }),
    ),
  );
  return { threads, keysPerSecond: round(counts.reduce((a, b) => a + b, 0) / seconds, 2) };
}

export async function rsaKeygen(ctx: BenchContext): Promise<ScenarioResult> {
  const runs: Array<Record<string, number>> = [];
  for (let i = 0; i < ctx.opts.runs; i++) {
    const one = rsaKeygenRate();
    const all = await rsaKeygenRateAllCores();
    const run = {
      ...one,
      threads: all.threads,
      keysPerSecondAllCores: all.keysPerSecond,
      allCoresRatio: round(all.keysPerSecond / one.keysPerSecond, 2),
    };
    ctx.log(
      `  rsa-keygen run ${i + 1}: ${one.keys} keys in ${one.seconds} s = ${one.keysPerSecond}/s on one core; ` +
        `${all.keysPerSecond}/s on ${all.threads} threads at once (${run.allCoresRatio}×)`,
    );
    runs.push(run);
  }
  return {
    scenario: 'rsa-keygen',
    key: 'rsa-keygen',
    params: { seconds: 10 },
    summary: {
      keysPerSecond: summarize(runs.map((r) => r.keysPerSecond!)),
      keysPerSecondAllCores: summarize(runs.map((r) => r.keysPerSecondAllCores!)),
      allCoresRatio: summarize(runs.map((r) => r.allCoresRatio!)),
    },
    runs,
    notes: [],
  };
}
