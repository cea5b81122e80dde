// Runs the real `alcazar controller` as a child process against the test
// control plane, so restarts and kills are real. Every line it prints is kept
// in <cluster dir>-test-logs/ for the suite-wide key-leak scan.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { clusterDir, repoRoot } from '../../cluster/paths.js';
import { waitFor } from './wait.js';

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface ControllerProcess {
  readonly pid: number;
  readonly lines: LogLine[];
  /** Resolves with the first log line (already printed or still to come) that matches. */
  waitForLog(description: string, match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  readonly exited: Promise<number | null>;
}

/** Per control plane, so concurrent runs against different clusters do not wipe each other's logs. */
export const testLogDir = `${clusterDir()}-test-logs`;
let started = 0;

export interface StartOptions {
  caNamespace: string;
  args?: string[];
  env?: Record<string, string>;
  kubeconfig?: string;
  /**
   * Run this program (e.g. the image's ENTRYPOINT and CMD) instead of the
   * sources through tsx, with only `env` (and PATH) as its environment.
   */
  program?: { argv: string[]; cwd: string; env: Record<string, string>; uid?: number; gid?: number };
}

export async function startController(opts: StartOptions): Promise<ControllerProcess> {
  mkdirSync(testLogDir, { recursive: true });
  const logFile = join(testLogDir, `controller-${process.pid}-${++started}-${Date.now()}.log`);
  const out = createWriteStream(logFile);
  const [command, ...commandArgs] = opts.program?.argv ?? [
    process.execPath,
    '--import',
    'tsx',
    join(repoRoot, 'src', 'cli', 'main.ts'),
    'controller',
  ];
  const child: ChildProcess = spawn(
    command!,
    [
      ...commandArgs,
      `--kubeconfig=${opts.kubeconfig ?? inject('kubeconfig')}`,
      `--ca-namespace=${opts.caNamespace}`,
      '--log-level=debug',
      '--http-port=0',
      // Files run one at a time, but a file may run several replicas: no fixed port.
      '--csr-port=0',
      '--no-leader-elect',
      ...(opts.args ?? []),
    ],
    {
      cwd: opts.program?.cwd ?? repoRoot,
      uid: opts.program?.uid,
      gid: opts.program?.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...(opts.program ? { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.program.env } : process.env),
        ...opts.env,
      },
    },
  );
  const lines: LogLine[] = [];
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    out.write(chunk);
    buffered += chunk.toString('utf8');
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const part of parts) {
      if (!part.trim()) continue;
      try {
        lines.push(JSON.parse(part) as LogLine);
      } catch {
        lines.push({ level: 'raw', msg: part });
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    out.write(chunk);
    lines.push({ level: 'stderr', msg: chunk.toString('utf8') });
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      out.end();
      resolve(code);
    }),
  );
  const proc: ControllerProcess = {
    pid: child.pid!,
    lines,
    exited,
    waitForLog: (description, match, timeoutMs = 30_000) =>
      waitFor(`controller log: ${description}`, () => lines.find(match), { timeoutMs, intervalMs: 50 }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await Promise.race([
      proc.waitForLog('controller started', (l) => l.msg === 'controller started', 60_000),
      exited.then((code) => {
        throw new Error(
          `controller exited with ${code} before starting:\n${lines.map((l) => l.msg).join('\n')}`,
        );
      }),
    ]);
  } catch (err) {
    // A controller that did not start in time must not linger and manage the cluster behind later tests.
    await proc.kill();
    throw err;
  }
  return proc;
}

/** Short leader-election timings for replicas under test: a crashed leader is replaced within seconds. */
export const shortElection = { leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };

/** Arguments that make a controller a candidate named `identity`, with the shortElection timings. */
export const leaderElectionArgs = (identity: string): string[] => [
  '--leader-elect',
  `--identity=${identity}`,
  `--lease-duration=${shortElection.leaseDurationMs}ms`,
  `--renew-deadline=${shortElection.renewDeadlineMs}ms`,
  `--retry-period=${shortElection.retryPeriodMs}ms`,
];
