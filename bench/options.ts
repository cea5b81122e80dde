// `npm run bench -- [flags]`: which scenarios, what sizes, how many runs.
import { parseArgs } from 'node:util';
import type { Runtime, Source } from './controller.js';
import { TOKEN_MODES, type TokenMode } from './csr/summary.js';
import type { KeyAlgorithm } from './population.js';

export const EXPERIMENTS = ['shared-agent', 'no-events', 'memory-issuance-record'];

export const SCENARIOS = ['cold-mint', 'floor', 'rsa-keygen', 'idle', 'reaction', 'rotation', 'csr'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface BenchOptions {
  scenarios: ScenarioName[];
  /** Cold-mint (and floor) sizes. */
  n: number[];
  /** Cold-mint sizes for RSA-2048 (RSA keygen is ~2000x dearer than P-256). */
  rsaN: number[];
  algorithms: KeyAlgorithm[];
  workers: number[];
  /** Worker counts for RSA cold mint: keygen runs on the libuv pool, so more workers than cores buy little. */
  rsaWorkers: number[];
  runs: number;
  floorConcurrency: number[];
  idleN: number;
  idleMinutes: number;
  reactionN: number;
  reactionRate: number;
  reactionSeconds: number;
  rotationN: number;
  /** CSR API: calls per window (one server, one token mode, one concurrency, one run). */
  csrN: number;
  csrConcurrency: number[];
  csrTokens: TokenMode[];
  keep: boolean;
  /** Preloads from bench/experiments/ that change the controller's behaviour, to measure a what-if. */
  experiments: string[];
  /** node flags for the controller instead of the Dockerfile ENTRYPOINT's (undefined: the image's). */
  nodeArgs: string[] | undefined;
  /** Measure the API-server floor with cold mint. */
  floor: boolean;
  profile: boolean;
  runtime: Runtime;
  source: Source;
  /** The commit `--source head` builds (default HEAD). */
  ref: string | undefined;
  docs: boolean;
  /** Only rebuild docs/BENCHMARKS.md from bench/results; run nothing. */
  reportOnly: boolean;
  quick: boolean;
  /** The sizes of issue #18 (50,000 and 100,000 ServiceAccounts): hours, so never in the default run. */
  scale: boolean;
  clusterDir: string;
  note: string;
}

export const USAGE = `usage: npm run bench -- [flags]

  --quick                  small sizes and short windows (a few minutes in all)
  --scale                  large clusters: cold mint at 50,000 and 100,000, idle and reaction with 100,000
                           managed (hours; not part of the default run); explicit size flags still win
  --scenario LIST          ${SCENARIOS.join(', ')} (default: all; cold-mint includes floor and rsa-keygen)
  --n LIST                 cold-mint sizes, multiples of 100 (default 1000,10000; quick 200)
  --rsa-n LIST             cold-mint sizes for RSA-2048 (default: --n if given, else 1000; quick 100)
  --algorithms LIST        ecdsa,rsa (default both)
  --workers LIST           controller --workers values to try (default 4,16; quick 4)
  --rsa-workers LIST       --workers values for RSA cold mint (default 4)
  --runs N                 repetitions of each measurement (default 3)
  --floor-concurrency LIST concurrencies the API-server floor tries (default 8,32,128)
  --no-floor               skip the floor with cold-mint (e.g. when profiling)
  --idle-n N               managed Secrets during the idle window (default 10000; quick 200)
  --idle-minutes M         idle window length (default 10; quick 0.25)
  --reaction-n N           managed Secrets in the background during reaction (default 1000; quick 200)
  --reaction-rate R        ServiceAccounts created per second (default 50)
  --reaction-seconds S     how long they are created for (default 60; quick 10)
  --rotation-n N           managed Secrets rotated (default 10000; quick 200)
  --csr-n N                CSR API calls per timed window, per server, token mode and concurrency (default 1000; quick 200)
  --csr-concurrency LIST   concurrent CSR API clients, each on its own connection (default 1,16,128)
  --csr-tokens LIST        cold, warm: fresh tokens per call, or the same tokens again (default both)
  --runtime built|tsx      run the controller compiled (like the image; default) or through tsx (like the tests)
  --source head|worktree   benchmark the last commit (default; immune to edits in progress) or src as it is
  --ref COMMIT             with --source head: build this commit instead of HEAD (a baseline for before/after)
  --experiment LIST        preload bench/experiments/<name>.ts into the controller: shared-agent, no-events,
                           memory-issuance-record
  --node-args=TEXT         node flags for the controller instead of the image's (Dockerfile ENTRYPOINT),
                           space-separated, e.g. --node-args=--optimize-for-size; --node-args= for none.
                           NODE_OPTIONS always comes from the Deployment
  --profile                run the controller under --cpu-prof and summarise where its time goes
  --keep                   leave the control plane running afterwards
  --no-docs                do not regenerate docs/BENCHMARKS.md
  --report-only            only rebuild docs/BENCHMARKS.md (and print the targets) from bench/results
  --cluster-dir DIR        control-plane state directory (default $ALCAZAR_CLUSTER_DIR or .local/cluster-bench)
  --note TEXT              free text stored with the results`;

const list = (text: string | undefined) =>
  text === undefined
    ? undefined
    : text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);

const numbers = (text: string | undefined, flag: string) =>
  list(text)?.map((s) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag}: '${s}' is not a positive number`);
    return n;
  });

const ALGORITHMS: Record<string, KeyAlgorithm> = {
  ecdsa: 'ECDSA_P256',
  ECDSA_P256: 'ECDSA_P256',
  rsa: 'RSA_2048',
  RSA_2048: 'RSA_2048',
};

function parseRuntime(text: string | undefined): Runtime {
  if (text === undefined || text === 'built') return 'built';
  if (text === 'tsx') return 'tsx';
  throw new Error(`--runtime: '${text}' is not built or tsx`);
}

function parseSource(text: string | undefined): Source {
  if (text === undefined || text === 'head') return 'head';
  if (text === 'worktree') return 'worktree';
  throw new Error(`--source: '${text}' is not head or worktree`);
}

function wholeNumber(n: number, flag: string): number {
  if (!Number.isInteger(n)) throw new Error(`${flag}: ${n} is not a whole number`);
  return n;
}

function checkSize(n: number, flag: string): number {
  if (!Number.isInteger(n) || n % 100 !== 0) {
    throw new Error(`${flag}: ${n} must be a multiple of 100 (100 ServiceAccounts per namespace)`);
  }
  return n;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      quick: { type: 'boolean' },
      scale: { type: 'boolean' },
      scenario: { type: 'string', multiple: true },
      n: { type: 'string' },
      'rsa-n': { type: 'string' },
      algorithms: { type: 'string' },
      workers: { type: 'string' },
      'rsa-workers': { type: 'string' },
      runs: { type: 'string' },
      'floor-concurrency': { type: 'string' },
      'no-floor': { type: 'boolean' },
      'idle-n': { type: 'string' },
      'idle-minutes': { type: 'string' },
      'reaction-n': { type: 'string' },
      'reaction-rate': { type: 'string' },
      'reaction-seconds': { type: 'string' },
      'rotation-n': { type: 'string' },
      'csr-n': { type: 'string' },
      'csr-concurrency': { type: 'string' },
      'csr-tokens': { type: 'string' },
      profile: { type: 'boolean' },
      experiment: { type: 'string' },
      'node-args': { type: 'string' },
      runtime: { type: 'string' },
      source: { type: 'string' },
      ref: { type: 'string' },
      keep: { type: 'boolean' },
      'no-docs': { type: 'boolean' },
      'report-only': { type: 'boolean' },
      'cluster-dir': { type: 'string' },
      note: { type: 'string' },
    },
  });
  if (values.help) return 'help';
  const quick = values.quick ?? false;
  const scale = values.scale ?? false;
  if (quick && scale) throw new Error('--quick and --scale contradict each other');
  const scenarios = (values.scenario?.flatMap((s) => list(s) ?? []) ?? [...SCENARIOS]).map((s) => {
    if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--scenario: unknown scenario '${s}'`);
    return s as ScenarioName;
  });
  const n = (numbers(values.n, '--n') ?? (quick ? [200] : scale ? [50_000, 100_000] : [1000, 10_000])).map(
    (v) => checkSize(v, '--n'),
  );
  const single = (flag: keyof typeof values, full: number, small: number) => {
    const given = numbers(values[flag] as string | undefined, `--${flag}`)?.[0];
    if (given !== undefined) return given;
    if (values.n !== undefined || scale) return Math.max(...n);
    return quick ? small : full;
  };
  const algorithms = (list(values.algorithms) ?? ['ecdsa', 'rsa']).map((a) => {
    const algorithm = ALGORITHMS[a];
    if (!algorithm) throw new Error(`--algorithms: unknown algorithm '${a}' (ecdsa or rsa)`);
    return algorithm;
  });
  return {
    scenarios,
    n,
    // RSA's target is a rate (× one core's keygen), the same at any N: 1,000 by default, not 10,000 (~15 min a run).
    rsaN: (numbers(values['rsa-n'], '--rsa-n') ?? (values.n !== undefined ? n : quick ? [100] : [1000])).map(
      (v) => checkSize(v, '--rsa-n'),
    ),
    algorithms,
    workers: numbers(values.workers, '--workers') ?? (quick ? [4] : [4, 16]),
    rsaWorkers: numbers(values['rsa-workers'], '--rsa-workers') ?? [4],
    runs: numbers(values.runs, '--runs')?.[0] ?? 3,
    floorConcurrency: numbers(values['floor-concurrency'], '--floor-concurrency') ?? [8, 32, 128],
    idleN: checkSize(single('idle-n', 10_000, 200), '--idle-n'),
    idleMinutes: numbers(values['idle-minutes'], '--idle-minutes')?.[0] ?? (quick ? 0.25 : 10),
    reactionN: checkSize(
      numbers(values['reaction-n'], '--reaction-n')?.[0] ??
        (quick ? 200 : scale ? Math.max(...n) : Math.min(1000, Math.max(...n))),
      '--reaction-n',
    ),
    reactionRate: numbers(values['reaction-rate'], '--reaction-rate')?.[0] ?? 50,
    reactionSeconds: numbers(values['reaction-seconds'], '--reaction-seconds')?.[0] ?? (quick ? 10 : 60),
    rotationN: checkSize(single('rotation-n', 10_000, 200), '--rotation-n'),
    csrN: wholeNumber(numbers(values['csr-n'], '--csr-n')?.[0] ?? (quick ? 200 : 1000), '--csr-n'),
    csrConcurrency: (numbers(values['csr-concurrency'], '--csr-concurrency') ?? [1, 16, 128]).map((c) =>
      wholeNumber(c, '--csr-concurrency'),
    ),
    csrTokens: (list(values['csr-tokens']) ?? [...TOKEN_MODES]).map((t) => {
      if (!(TOKEN_MODES as readonly string[]).includes(t))
        throw new Error(`--csr-tokens: unknown mode '${t}' (${TOKEN_MODES.join(', ')})`);
      return t as TokenMode;
    }),
    keep: values.keep ?? false,
    experiments: (list(values.experiment) ?? []).map((e) => {
      if (!EXPERIMENTS.includes(e))
        throw new Error(`--experiment: unknown experiment '${e}' (${EXPERIMENTS.join(', ')})`);
      return e;
    }),
    nodeArgs: values['node-args']?.split(/\s+/).filter(Boolean),
    floor: !(values['no-floor'] ?? false),
    profile: values.profile ?? false,
    runtime: parseRuntime(values.runtime),
    source: parseSource(values.source),
    ref: values.ref,
    docs: !(values['no-docs'] ?? false),
    reportOnly: values['report-only'] ?? false,
    quick,
    scale,
    clusterDir: values['cluster-dir'] ?? process.env.ALCAZAR_CLUSTER_DIR ?? '.local/cluster-bench',
    note: values.note ?? '',
  };
}

/**
 * Rough minutes the invocation will take on this project's 2-core machine, from the measurements of
 * session 2 (controller ~400 ECDSA Secrets/s and ~11 RSA Secrets/s; floor ~1,000 Secrets/s with
 * keep-alive, ~270/s through client-node; deleting Secrets between runs ~3 ms each).
 */
export function estimateMinutes(o: BenchOptions): number {
  const perStart = 10; // spawn, cache sync, cleanup between runs (s)
  const ecdsaPerSecret = 0.004;
  const rsaPerSecret = 0.1;
  const cleanupPerSecret = 0.003;
  let s = 45; // control plane up, controller build
  const has = (x: ScenarioName) => o.scenarios.includes(x);
  const ecdsa = o.algorithms.includes('ECDSA_P256');
  if (has('cold-mint')) {
    if (ecdsa)
      for (const n of o.n)
        s += o.runs * o.workers.length * (perStart + n * (ecdsaPerSecret + cleanupPerSecret));
    if (o.algorithms.includes('RSA_2048'))
      for (const n of o.rsaN)
        s += o.runs * o.rsaWorkers.length * (perStart + 10 + n * (rsaPerSecret + cleanupPerSecret));
  }
  if (has('floor') || (has('cold-mint') && o.floor)) {
    // keep-alive at each concurrency, client-node at the highest (~20 ms per Secret).
    for (const n of o.n) s += o.runs * (o.floorConcurrency.length * (3 + n * 0.004) + 3 + n * 0.007);
  }
  if (has('cold-mint') || has('rsa-keygen')) s += o.runs * 10;
  if (has('idle')) s += o.runs * (perStart + o.idleN * 0.001 + 10 + o.idleMinutes * 60);
  const reactionCreated = o.reactionRate * o.reactionSeconds;
  if (has('reaction'))
    s +=
      perStart +
      o.runs * (Math.max(o.reactionSeconds, reactionCreated * ecdsaPerSecret) + reactionCreated * 0.01 + 15);
  if (has('rotation')) s += o.runs * (perStart + o.rotationN * 3 * ecdsaPerSecret);
  // CSR API: ~300 calls/s per server and ~1,000 TokenRequests/s for cold tokens; c=1 is the slow level.
  if (has('csr')) {
    const windows = o.runs * o.csrTokens.length * o.csrConcurrency.length * 2;
    s += 40 + windows * (o.csrN / 300 + (o.csrTokens.includes('cold') ? o.csrN / 2000 : 0) + 2);
  }
  // Minting what idle, reaction and rotation start from, when cold mint did not leave it.
  s += Math.max(o.idleN, o.rotationN, o.reactionN) * ecdsaPerSecret;
  const population = Math.max(...o.n, o.idleN, o.rotationN, o.reactionN) * 0.002;
  return (s + population) / 60;
}
