// The CSR API part of docs/BENCHMARKS.md: one row per token mode and concurrency, alcazar and
// istiod side by side, and the issue's goal as a target line.
import type { StoredScenario } from '../results.js';
import type { Summary } from '../stats.js';
import { meetsGoal } from './summary.js';

const num = (v: number | undefined, digits: number) =>
  v !== undefined && Number.isFinite(v) ? v.toFixed(digits) : '–';
const median = (s: Summary | undefined, digits: number) => num(s?.runs ? s.median : undefined, digits);
/** "median (min–max)" when the runs differ. */
const spread = (s: Summary | undefined, digits: number) =>
  !s?.runs
    ? '–'
    : s.min === s.max
      ? num(s.median, digits)
      : `${num(s.median, digits)} (${num(s.min, digits)}–${num(s.max, digits)})`;

export const CSR_HEADER = [
  'tokens',
  'clients',
  'alcazar CSR/s',
  'istiod CSR/s',
  'throughput alcazar/istiod',
  'alcazar p50 / p99 ms',
  'istiod p50 / p99 ms',
  'p99 alcazar/istiod',
  'goal',
  'CPU ms per CSR alcazar / istiod',
  'apiserver+etcd CPU ms per CSR alcazar / istiod',
  'TokenReviews per CSR alcazar / istiod',
  'client CPU ms per CSR',
  'failed',
  'runs',
  'date',
];

/** The csr results in table order: cold before warm, then by concurrency. */
export function csrScenarios(all: readonly StoredScenario[]): StoredScenario[] {
  return all
    .filter((s) => s.scenario === 'csr')
    .sort(
      (a, b) =>
        String(a.params.tokens).localeCompare(String(b.params.tokens)) ||
        Number(a.params.concurrency) - Number(b.params.concurrency),
    );
}

export function csrRow(s: StoredScenario): string[] {
  const m = (key: string) => s.summary[key];
  const pair = (metric: string, digits: number) =>
    `${median(m(`alcazar.${metric}`), digits)} / ${median(m(`istiod.${metric}`), digits)}`;
  const failed = (m('alcazar.failed')?.max ?? 0) + (m('istiod.failed')?.max ?? 0);
  return [
    String(s.params.tokens),
    String(s.params.concurrency),
    spread(m('alcazar.csrPerSecond'), 0),
    spread(m('istiod.csrPerSecond'), 0),
    `${spread(m('throughputRatio'), 2)}×`,
    `${median(m('alcazar.p50Ms'), 1)} / ${median(m('alcazar.p99Ms'), 1)}`,
    `${median(m('istiod.p50Ms'), 1)} / ${median(m('istiod.p99Ms'), 1)}`,
    `${spread(m('p99Ratio'), 2)}×`,
    meetsGoal(s.summary) ? 'met' : '**missed**',
    pair('serverCpuMsPerCsr', 2),
    pair('controlPlaneCpuMsPerCsr', 2),
    pair('tokenReviewsPerCsr', 2),
    pair('clientCpuMsPerCsr', 2),
    String(failed),
    String(m('throughputRatio')?.runs ?? 0),
    `${s.startedAt.slice(0, 10)} (${s.git.commit}${s.git.dirty ? '+' : ''})`,
  ];
}

/** The issue's goal over every stored mode and concurrency. */
export function csrTarget(all: readonly StoredScenario[]): {
  target: string;
  verdict: 'PASS' | 'MISS' | 'NOT RUN';
  measured: string;
} {
  const target =
    "CSR API: alcazar's throughput ≥ istiod's and p99 ≤ istiod's (every concurrency, cold and warm)";
  const rows = csrScenarios(all);
  if (rows.length === 0) return { target, verdict: 'NOT RUN', measured: 'needs --scenario csr' };
  const missed = rows.filter((s) => !meetsGoal(s.summary));
  const describe = (s: StoredScenario) =>
    `${s.params.tokens} c=${s.params.concurrency}: ${median(s.summary.throughputRatio, 2)}× throughput, ${median(s.summary.p99Ratio, 2)}× p99`;
  return {
    target,
    verdict: missed.length === 0 ? 'PASS' : 'MISS',
    measured:
      missed.length === 0
        ? `all ${rows.length} met; lowest throughput ratio ${Math.min(...rows.map((s) => s.summary.throughputRatio?.median ?? Number.NaN)).toFixed(2)}×`
        : `missed at ${missed.map(describe).join('; ')} (${rows.length - missed.length} of ${rows.length} met)`,
  };
}

/** The section, or nothing when no csr result is stored. */
export function csrSection(all: readonly StoredScenario[]): string[] {
  const rows = csrScenarios(all);
  if (rows.length === 0) return [];
  const p = rows[0]!.params;
  return [
    '',
    "### CSR API (Istio's CreateCertificate): alcazar against istiod",
    '',
    `Both servers are local processes on the same control plane, driven by the same Node @grpc/grpc-js client, one connection per client, closed loop, ${p.n} calls per timed window; keys, CSRs (${p.csrKey}) and tokens are made before the clock starts. ` +
      `Each run measures alcazar and istiod back to back (who goes first alternates); numbers are medians (min–max) over the runs, ratios are the median of each run's alcazar/istiod ratio. ` +
      `*Cold*: ${p.cold}. *Warm*: the same tokens as there are clients, over and over, each sent once untimed first. ` +
      `alcazar: ${p.alcazarCa}, callers ${p.alcazarCallers}. istiod (pilot-discovery from the pinned istio.io/istio module, hack/istio/build.sh): ${p.istiodCa}, callers ${p.istiodCallers}. ` +
      'CPU per CSR is read from /proc/<pid>/stat over the timed window; latency is from send to answer on the client.',
    '',
    `| ${CSR_HEADER.join(' | ')} |`,
    `|${CSR_HEADER.map(() => '---').join('|')}|`,
    ...rows.map((s) => `| ${csrRow(s).join(' | ')} |`),
    ...csrProfile(rows),
  ];
}

/** Where alcazar's CPU went in the profiled extra pass (--profile), when one is stored. */
export function csrProfile(rows: readonly StoredScenario[]): string[] {
  const profiled = rows.find((s) => s.profile);
  const profile = profiled?.profile;
  if (!profile) return [];
  return [
    '',
    `alcazar under --cpu-prof (an extra pass at 16 clients, not counted above; ${profile.busyMs} ms busy; ${profile.file}), self time by origin:`,
    '',
    ...profile.byOrigin.slice(0, 10).map((o) => `- ${o.share}% ${o.origin}`),
    '',
    'top functions by self time:',
    '',
    ...profile.top.slice(0, 12).map((f) => `- ${f.share}% \`${f.fn}\` ${f.where}`),
  ];
}

/** CSR windows measured with a preload in alcazar (`--experiment`): what a change would buy. */
export function csrWhatIf(nonBaseline: readonly StoredScenario[]): string[] {
  const rows = csrScenarios(nonBaseline).sort((a, b) =>
    String(a.params.experiment ?? a.params.nodeArgs ?? '').localeCompare(
      String(b.params.experiment ?? b.params.nodeArgs ?? ''),
    ),
  );
  if (rows.length === 0) return [];
  const header = ['what-if', ...CSR_HEADER];
  return [
    '',
    '#### CSR API what-ifs (alcazar with a preload from bench/experiments/, not the shipped controller; istiod as shipped)',
    '',
    '`memory-issuance-record` keeps the issuance record (ConfigMaps alcazar-issued-NN, one merge patch per CSR or batch) in',
    "the controller's memory; any other name: see bench/experiments/<name>.ts.",
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map(
      (s) => `| ${[String(s.params.experiment ?? `node: ${s.params.nodeArgs}`), ...csrRow(s)].join(' | ')} |`,
    ),
  ];
}
