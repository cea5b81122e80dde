// Where a controller's CPU time went: self time per function from a V8
// .cpuprofile (node --cpu-prof), and the same grouped by origin (our code,
// client-node, node internals, GC, idle).
//   tsx bench/profile.ts FILE.cpuprofile [--top 30]
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../test/cluster/paths.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  fn: string;
  where: string;
  selfMs: number;
  /** Share of the non-idle time. */
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  busyMs: number;
  top: FunctionTime[];
  byOrigin: Array<{ origin: string; selfMs: number; share: number }>;
}

function shortUrl(url: string): string {
  if (!url) return '';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const local = path.startsWith(repoRoot) ? relative(repoRoot, path) : path;
  // A built snapshot (.local/bench-dist/<stamp>/x.js) stands for src/x.ts.
  const built = /^\.local\/bench-dist\/[^/]+\/(.*)\.js$/.exec(local);
  if (built) return `src/${built[1]}.ts`;
  const extracted = /^\.local\/bench-src\/[^/]+\/(src\/.*)$/.exec(local);
  return extracted ? extracted[1]! : local;
}

function originOf(name: string, url: string): string {
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'garbage collector';
  if (name === '(program)') return 'native/program (incl. TLS, crypto, JSON in C++)';
  const where = shortUrl(url);
  if (where.startsWith('src/')) return `alcazar ${where.split('/').slice(0, 2).join('/')}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  if (pkg) return `dependency ${pkg[1]}`;
  if (where.startsWith('node:')) return `node ${where.replace(/^node:/, '').split('/')[0]}`;
  if (!where) return 'native (no script)';
  return 'other';
}

/**
 * Self time per function. `window` (ms since the profile started, which is about when the process
 * started) restricts it to the samples taken in that span, e.g. an idle window after startup.
 */
export function summarizeProfile(
  profile: CpuProfile,
  top = 25,
  window?: { fromMs: number; toMs: number },
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let atUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    atUs += profile.timeDeltas[i] ?? 0;
    if (window && (atUs < window.fromMs * 1000 || atUs > window.toMs * 1000)) continue;
    const id = profile.samples[i]!;
    // The delta before a sample is the time attributed to it.
    const delta = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(delta, 0));
  }
  const perFunction = new Map<string, { fn: string; where: string; us: number }>();
  const perOrigin = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const fn = functionName || '(anonymous)';
    totalUs += us;
    if (fn === '(idle)') {
      idleUs += us;
      continue;
    }
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const key = `${fn}@${where}`;
    const entry = perFunction.get(key) ?? { fn, where, us: 0 };
    entry.us += us;
    perFunction.set(key, entry);
    const origin = originOf(fn, url);
    perOrigin.set(origin, (perOrigin.get(origin) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const share = (us: number) => Math.round((us / Math.max(busyUs, 1)) * 1000) / 10;
  return {
    totalMs: Math.round(totalUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    top: [...perFunction.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ fn: f.fn, where: f.where, selfMs: Math.round(f.us / 1000), share: share(f.us) })),
    byOrigin: [...perOrigin.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([origin, us]) => ({ origin, selfMs: Math.round(us / 1000), share: share(us) })),
  };
}

/**
 * The call paths (innermost `depth` frames above the function) that lead to the samples of functions
 * named `fn`, with their self time: who is paying for it.
 */
export function callersOf(
  profile: CpuProfile,
  fn: string,
  depth = 6,
  top = 8,
): Array<{ path: string; selfMs: number }> {
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const paths = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    if (byId.get(id)!.callFrame.functionName !== fn) continue;
    const frames: string[] = [];
    let at = parent.get(id);
    while (at !== undefined && frames.length < depth) {
      const { functionName, url, lineNumber } = byId.get(at)!.callFrame;
      frames.push(`${functionName || '(anonymous)'}${url ? ` ${shortUrl(url)}:${lineNumber + 1}` : ''}`);
      at = parent.get(at);
    }
    const key = frames.join(' < ');
    paths.set(key, (paths.get(key) ?? 0) + Math.max(profile.timeDeltas[i + 1] ?? 0, 0));
  }
  return [...paths.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([path, us]) => ({ path, selfMs: Math.round(us / 1000) }));
}

export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
}

/**
 * The .cpuprofile files node wrote into a directory, the main thread's first (CPU.<date>.<time>.<pid>.
 * <thread>.<seq>.cpuprofile; thread 0 is the main thread, others are workers such as tsx's loader).
 */
export function profilesIn(dir: string): string[] {
  const thread = (f: string) => Number(/\.(\d+)\.\d+\.cpuprofile$/.exec(f)?.[1] ?? 0);
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .sort((a, b) => thread(a) - thread(b))
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

export function formatProfile(summary: ProfileSummary): string {
  const lines = [
    `busy ${summary.busyMs} ms of ${summary.totalMs} ms sampled (idle ${summary.idleMs} ms)`,
    '',
    'self time by origin:',
    ...summary.byOrigin
      .slice(0, 15)
      .map((o) => `  ${String(o.share).padStart(5)}%  ${String(o.selfMs).padStart(7)} ms  ${o.origin}`),
    '',
    'top functions by self time:',
    ...summary.top.map(
      (f) => `  ${String(f.share).padStart(5)}%  ${String(f.selfMs).padStart(7)} ms  ${f.fn}  ${f.where}`,
    ),
  ];
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, flag, value] = process.argv.slice(2);
  if (!file) {
    console.error('usage: tsx bench/profile.ts FILE.cpuprofile [--top N | --callers FUNCTION]');
    process.exit(2);
  }
  const profile = readProfile(file);
  if (flag === '--callers') {
    for (const c of callersOf(profile, value ?? ''))
      console.log(`${String(c.selfMs).padStart(7)} ms  ${c.path}`);
  } else {
    console.log(formatProfile(summarizeProfile(profile, flag === '--top' ? Number(value) : 25)));
  }
}
