// The real `alcazar controller` as a child process, as an operator runs it:
// its JSON log lines parsed as they come, its CPU time and memory read from
// /proc, optionally profiled with --cpu-prof.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../test/cluster/paths.js';
import type { NodeRuntime } from './node-runtime.js';

export type Runtime = 'built' | 'tsx';
export type Source = 'head' | 'worktree';

export interface EntryOptions {
  runtime: Runtime;
  /** `head`: the last commit (git archive), untouched by edits others make meanwhile; `worktree`: src as it is. */
  source: Source;
  /** With source `head`: the commit to build instead of HEAD (a before/after pair from one worktree). */
  ref?: string;
  stamp: string;
  /** Preloads from bench/experiments/. */
  experiments: readonly string[];
  log: (line: string) => void;
}

/**
 * Node arguments that run the controller CLI. `built`: compiled once, at the start of the bench, into
 * .local/bench-dist/<stamp> and run with plain node, as the container image runs dist/. `tsx`:
 * src/cli/main.ts through tsx, as the tests do. Experiments are TypeScript and load through tsx, a
 * cost paid before 'controller started'.
 */
export function prepareEntry(opts: EntryOptions): string[] {
  let sourceRoot = repoRoot;
  if (opts.source === 'head') {
    sourceRoot = join(repoRoot, '.local', 'bench-src', opts.stamp);
    mkdirSync(sourceRoot, { recursive: true });
    const archive = execFileSync(
      'git',
      ['archive', '--format=tar', opts.ref ?? 'HEAD', 'src', 'tsconfig.json', 'tsconfig.build.json'],
      {
        cwd: repoRoot,
        maxBuffer: 256 * 2 ** 20,
      },
    );
    execFileSync('tar', ['-x', '-C', sourceRoot], { input: archive });
  }
  const loaders =
    opts.runtime === 'tsx' || opts.experiments.length > 0
      ? [
          '--import',
          'tsx',
          ...opts.experiments.flatMap((e) => ['--import', join(repoRoot, 'bench', 'experiments', `${e}.ts`)]),
        ]
      : [];
  if (opts.runtime === 'tsx') return [...loaders, join(sourceRoot, 'src', 'cli', 'main.ts')];
  const outDir = join(repoRoot, '.local', 'bench-dist', opts.stamp);
  const started = Date.now();
  try {
    execFileSync(
      join(repoRoot, 'node_modules', '.bin', 'tsc'),
      ['-p', join(sourceRoot, 'tsconfig.build.json'), '--outDir', outDir],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  } catch (err) {
    const out = (err as { stdout?: Buffer }).stdout?.toString() ?? '';
    throw new Error(
      `the controller (${opts.source}) does not compile; not benchmarking it:\n${out.slice(0, 3000)}`,
    );
  }
  opts.log(
    `built the controller (${opts.source}) into ${outDir} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return [...loaders, join(outDir, 'cli', 'main.js')];
}

export const CA_NAMESPACE = 'istio-system';

export interface LogLine {
  level: string;
  msg: string;
  /** ms since the epoch, from the line's ISO `time`. */
  at: number;
  [field: string]: unknown;
}

export interface ControllerOptions {
  kubeconfig: string;
  /** Node arguments that run the CLI: a built main.js, or tsx and src/cli/main.ts. */
  entry: string[];
  /** node flags and NODE_OPTIONS, as the image and the Deployment set them. */
  node: NodeRuntime;
  workers?: number;
  args?: string[];
  /** Write a V8 CPU profile of the controller into this directory (on clean exit). */
  cpuProfileDir?: string;
  /** Where the full log goes. */
  logFile: string;
}

/** Lines the bench keeps (everything else is only counted and written to the log file). */
const KEPT = new Set([
  'serving /metrics, /healthz and /readyz',
  'caches synced',
  'controller started',
  'initial reconcile finished',
  'root rotation started (Requested): publishing the new root next to the old one',
  'new root active: reissuing workload certificates; the old root stays trusted',
  'root rotation finished: the old root is no longer trusted',
  'serving the CSR API (istio.v1.auth.IstioCertificateService)',
  'CSR API serving certificate issued',
]);

/** Controllers still running, so an interrupted bench can stop them. */
export const liveControllers = new Set<Controller>();

export class Controller {
  readonly spawnedAt = Date.now();
  readonly lines: LogLine[] = [];
  /** How many lines carried each message. */
  readonly messageCounts = new Map<string, number>();
  readonly warnings: LogLine[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(opts: ControllerOptions) {
    mkdirSync(join(opts.logFile, '..'), { recursive: true });
    const out = createWriteStream(opts.logFile);
    const nodeArgs = opts.cpuProfileDir
      ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`, '--cpu-prof-interval=500']
      : [];
    this.child = spawn(
      process.execPath,
      [
        ...opts.node.args,
        ...nodeArgs,
        ...opts.entry,
        'controller',
        `--kubeconfig=${opts.kubeconfig}`,
        `--ca-namespace=${CA_NAMESPACE}`,
        '--log-level=info',
        '--http-port=0',
        '--csr-port=0',
        '--no-leader-elect',
        ...(opts.workers ? [`--workers=${opts.workers}`] : []),
        ...(opts.args ?? []),
      ],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NODE_OPTIONS: opts.node.nodeOptions },
      },
    );
    let buffered = '';
    this.child.stdout!.on('data', (chunk: Buffer) => {
      out.write(chunk);
      buffered += chunk.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const part of parts) if (part.trim()) this.take(part);
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      out.write(chunk);
      this.warnings.push({ level: 'stderr', msg: chunk.toString('utf8').slice(0, 500), at: Date.now() });
    });
    liveControllers.add(this);
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        out.end();
        liveControllers.delete(this);
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  private take(text: string): void {
    let line: LogLine;
    try {
      const raw = JSON.parse(text) as { level: string; msg: string; time?: string; [field: string]: unknown };
      line = { ...raw, at: raw.time ? Date.parse(raw.time) : Date.now() };
    } catch {
      line = { level: 'raw', msg: text, at: Date.now() };
    }
    this.messageCounts.set(line.msg, (this.messageCounts.get(line.msg) ?? 0) + 1);
    if (KEPT.has(line.msg)) this.lines.push(line);
    if (
      (line.level === 'warn' || line.level === 'error' || line.level === 'raw') &&
      this.warnings.length < 200
    ) {
      this.warnings.push(line);
    }
  }

  /** A sample of the controller's own /metrics (sum over label sets), or NaN when absent. */
  async metric(name: string): Promise<number> {
    const serving = this.lines.find((l) => l.msg === 'serving /metrics, /healthz and /readyz');
    if (!serving) return Number.NaN;
    const text = await (await fetch(`http://127.0.0.1:${serving.port}/metrics`)).text();
    let total = Number.NaN;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name} `) || line.startsWith(`${name}{`))
        total = (Number.isNaN(total) ? 0 : total) + Number(line.split(' ').pop());
    }
    return total;
  }

  /** Waits until the work queue is empty and no reconcile ran for `quietMs`. */
  async waitQuiet(timeoutMs: number, quietMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = -1;
    let since = Date.now();
    while (Date.now() < deadline) {
      const [depth, reconciles] = await Promise.all([
        this.metric('alcazar_workqueue_depth'),
        this.metric('alcazar_reconcile_total'),
      ]);
      if (depth !== 0 || reconciles !== last) {
        last = reconciles;
        since = Date.now();
      } else if (Date.now() - since >= quietMs) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`the controller did not go quiet within ${timeoutMs} ms`);
  }

  count(msg: string): number {
    return this.messageCounts.get(msg) ?? 0;
  }

  /** Resolves with the first kept line that matches; rejects if the process exits or time runs out. */
  async waitForLog(
    description: string,
    match: (line: LogLine) => boolean,
    timeoutMs: number,
  ): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => {
      exited = true;
    });
    for (;;) {
      const found = this.lines.find(match);
      if (found) return found;
      if (exited) throw new Error(`controller exited while waiting for ${description}; ${this.tail()}`);
      if (Date.now() > deadline)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The workload-secrets controller's first pass over everything. */
  initialReconcile(timeoutMs: number): Promise<LogLine> {
    return this.waitForLog(
      "workload-secrets 'initial reconcile finished'",
      (l) => l.msg === 'initial reconcile finished' && l.controller === 'workload-secrets',
      timeoutMs,
    );
  }

  private tail(): string {
    return this.warnings
      .slice(-5)
      .map((l) => l.msg)
      .join(' | ');
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with whether it exited cleanly. */
  async stop(graceMs = 30_000): Promise<boolean> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode === 0;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code === 0;
  }
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clockTicks;
}

/** User + system CPU seconds a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** CPU seconds used so far by the control plane's kube-apiserver and etcd together (the floor's cost). */
export function controlPlaneCpuSeconds(pids: Partial<Record<string, number>>): number {
  let total = 0;
  for (const component of ['kube-apiserver', 'etcd']) {
    const pid = pids[component];
    if (pid !== undefined) total += cpuSeconds(pid);
  }
  return total;
}

/** Resident memory of a process, in MB. */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** Samples RSS every `intervalMs` until stopped; reports max and last. */
export function sampleRss(pid: number, intervalMs = 1000): { stop(): { maxMb: number; endMb: number } } {
  let maxMb = 0;
  let endMb = 0;
  const sample = () => {
    try {
      endMb = rssMb(pid);
      maxMb = Math.max(maxMb, endMb);
    } catch {
      // process gone
    }
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return { maxMb, endMb };
    },
  };
}
