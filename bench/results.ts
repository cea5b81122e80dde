// What a bench invocation records: the machine, the options, and per
// scenario its raw runs and their median/min/max. One JSON file per
// invocation in bench/results/; docs/BENCHMARKS.md is built from the latest
// result of each scenario across all files.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../test/cluster/paths.js';
import type { ProfileSummary } from './profile.js';
import type { Summary } from './stats.js';

export const resultsDir = join(repoRoot, 'bench', 'results');

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGb: number;
  node: string;
  kubernetes: string;
  platform: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
}

export interface ScenarioResult {
  scenario: 'cold-mint' | 'floor' | 'rsa-keygen' | 'reaction' | 'idle' | 'rotation' | 'csr';
  /** Identifies the measurement across invocations, e.g. "cold-mint ECDSA_P256 n=1000 workers=4". */
  key: string;
  params: Record<string, string | number | boolean>;
  /** Metric → median/min/max over the runs. */
  summary: Record<string, Summary>;
  runs: Array<Record<string, unknown>>;
  notes: string[];
  profile?: { file: string } & Pick<ProfileSummary, 'top' | 'byOrigin' | 'busyMs'>;
}

export interface BenchResults {
  startedAt: string;
  finishedAt?: string;
  argv: string[];
  options: Record<string, unknown>;
  machine: Machine;
  git: { commit: string; dirty: boolean };
  scenarios: ScenarioResult[];
  /** Set by hand when a run is known to be bad (e.g. disturbed); such files are kept but not reported. */
  invalid?: string;
}

export function describeMachine(kubernetes: string): Machine {
  const cpu = cpus();
  return {
    cpuModel: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kubernetes,
    platform: `${process.platform} ${process.arch}`,
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** The commit benchmarked; `dirty` when src/ had uncommitted changes and the work tree was used. */
export function gitState(source: 'head' | 'worktree', ref = 'HEAD'): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', source === 'head' ? ref : 'HEAD'], {
      cwd: repoRoot,
      encoding: 'utf8',
    }).trim();
    if (source === 'head') return { commit, dirty: false };
    const status = execFileSync('git', ['status', '--porcelain', '--', 'src'], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    return { commit, dirty: status.trim().length > 0 };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

export function resultFileName(startedAt: string): string {
  return `${startedAt.replace(/[:.]/g, '-')}.json`;
}

export function writeResults(results: BenchResults): string {
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, resultFileName(results.startedAt));
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  return file;
}

export interface StoredScenario extends ScenarioResult {
  file: string;
  startedAt: string;
  machine: Machine;
  git: { commit: string; dirty: boolean };
}

/** The newest result of every scenario key, across all result files. */
export function latestScenarios(): StoredScenario[] {
  const latest = new Map<string, StoredScenario>();
  for (const scenario of storedScenarios()) latest.set(scenario.key, scenario);
  return [...latest.values()];
}

/** Every valid stored result, oldest first. */
export function storedScenarios(): StoredScenario[] {
  if (!existsSync(resultsDir)) return [];
  const stored: StoredScenario[] = [];
  const files = readdirSync(resultsDir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  for (const file of files) {
    const results = JSON.parse(readFileSync(join(resultsDir, file), 'utf8')) as BenchResults;
    if (results.invalid) continue;
    for (const scenario of results.scenarios) {
      stored.push({
        ...scenario,
        file,
        startedAt: results.startedAt,
        machine: results.machine,
        git: results.git,
      });
    }
  }
  return stored;
}
