// One core's native RSA-2048 keygen rate: generateKeyPairSync in a loop on
// the main thread for ~10 s. The RSA cold-mint target is a multiple of it.
import { generateKeyPairSync } from 'node:crypto';
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

export function rsaKeygen(ctx: BenchContext): ScenarioResult {
  const runs = Array.from({ length: ctx.opts.runs }, (_, i) => {
    const run = rsaKeygenRate();
    ctx.log(
      `  rsa-keygen run ${i + 1}: ${run.keys} keys in ${run.seconds} s = ${run.keysPerSecond}/s on one core`,
    );
    return run;
  });
  return {
    scenario: 'rsa-keygen',
    key: 'rsa-keygen',
    params: { seconds: 10 },
    summary: { keysPerSecond: summarize(runs.map((r) => r.keysPerSecond)) },
    runs,
    notes: [],
  };
}
