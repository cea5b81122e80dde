// The real tools the chart and monitoring tests drive (helm, promtool, kubeconform), built from Go
// modules by hack/go-tool.sh on first use, and a way to run them.
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../cluster/paths.js';

export type GoTool = 'helm' | 'helm4' | 'promtool' | 'kubeconform';

/** The tool's path; builds it first when it is not cached (minutes for helm and promtool). */
export function goTool(name: GoTool): string {
  return execFileSync('bash', [join(repoRoot, 'hack', 'go-tool.sh'), name], {
    cwd: repoRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/** The kubeconform schema directory hack/lint-manifests.sh uses (Kubernetes, crds/, Prometheus Operator). */
export function manifestSchemas(): string {
  return execFileSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'hack', 'manifest-schemas.ts')], {
    cwd: repoRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion with its exit code; rejects only when it could not run or was killed. */
export function run(
  program: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      [...args],
      {
        cwd: repoRoot,
        env: opts.env ?? process.env,
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 << 20,
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          reject(
            new Error(
              `${program} ${args.join(' ')} did not finish (${err.signal ?? err.message}): ${stderr}`,
            ),
          );
          return;
        }
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like `run`, but fails with the tool's output unless it exits 0; resolves with stdout. */
export async function runOk(program: string, args: readonly string[], opts: Parameters<typeof run>[2] = {}) {
  const result = await run(program, args, opts);
  if (result.code !== 0) {
    throw new Error(
      `${program} ${args.join(' ')} exited ${result.code}:\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}
