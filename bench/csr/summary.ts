// Pure arithmetic of the CSR scenario: one timed window → its numbers, and a set of paired
// windows (alcazar and istiod, same tokens mode and concurrency, back to back) → medians and
// alcazar/istiod ratios.
import { percentile, round, type Summary, summarize } from '../stats.js';

export const CSR_SERVERS = ['alcazar', 'istiod'] as const;
export type CsrServer = (typeof CSR_SERVERS)[number];

export const TOKEN_MODES = ['cold', 'warm'] as const;
export type TokenMode = (typeof TOKEN_MODES)[number];

/** What one timed window measured, before any arithmetic. */
export interface WindowMeasurement {
  latenciesMs: readonly number[];
  wallMs: number;
  failed: number;
  /** CPU ms over the window: the server process, kube-apiserver + etcd, the bench's client. */
  serverCpuMs: number;
  controlPlaneCpuMs: number;
  clientCpuMs: number;
  /** TokenReviews the API server served during the window (any client). */
  tokenReviews: number;
  /** ConfigMap writes during the window (alcazar's issuance record). */
  configMapWrites: number;
}

export interface WindowResult {
  ok: number;
  failed: number;
  csrPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  serverCpuMsPerCsr: number;
  controlPlaneCpuMsPerCsr: number;
  clientCpuMsPerCsr: number;
  tokenReviewsPerCsr: number;
  configMapWritesPerCsr: number;
}

export function describeWindow(m: WindowMeasurement): WindowResult {
  const ok = m.latenciesMs.length;
  const per = (total: number, digits = 2) => (ok > 0 ? round(total / ok, digits) : Number.NaN);
  return {
    ok,
    failed: m.failed,
    csrPerSecond: m.wallMs > 0 ? round(ok / (m.wallMs / 1000), 1) : Number.NaN,
    p50Ms: round(percentile(m.latenciesMs, 50), 2),
    p99Ms: round(percentile(m.latenciesMs, 99), 2),
    maxMs: ok > 0 ? round(Math.max(...m.latenciesMs), 2) : Number.NaN,
    serverCpuMsPerCsr: per(m.serverCpuMs, 3),
    controlPlaneCpuMsPerCsr: per(m.controlPlaneCpuMs, 3),
    clientCpuMsPerCsr: per(m.clientCpuMs, 3),
    tokenReviewsPerCsr: per(m.tokenReviews),
    configMapWritesPerCsr: per(m.configMapWrites),
  };
}

/** One run: both servers measured back to back under the same mode and concurrency. */
export type PairedRun = Record<CsrServer, WindowResult>;

const METRICS = [
  'csrPerSecond',
  'p50Ms',
  'p99Ms',
  'maxMs',
  'serverCpuMsPerCsr',
  'controlPlaneCpuMsPerCsr',
  'clientCpuMsPerCsr',
  'tokenReviewsPerCsr',
  'configMapWritesPerCsr',
  'failed',
] as const satisfies ReadonlyArray<keyof WindowResult>;

/**
 * Medians over the runs as `<server>.<metric>` (e.g. `alcazar.p99Ms`), and per run the ratios
 * alcazar/istiod of throughput, p99 and CPU per CSR (each run's two windows ran back to back, so
 * their ratio is less disturbed by the shared machine than a ratio of medians).
 */
export function summarizePairs(runs: readonly PairedRun[]): Record<string, Summary> {
  const summary: Record<string, Summary> = {};
  for (const server of CSR_SERVERS)
    for (const metric of METRICS)
      summary[`${server}.${metric}`] = summarize(runs.map((r) => r[server][metric]));
  const ratio = (pick: (w: WindowResult) => number) =>
    summarize(runs.map((r) => round(pick(r.alcazar) / pick(r.istiod), 3)));
  summary.throughputRatio = ratio((w) => w.csrPerSecond);
  summary.p99Ratio = ratio((w) => w.p99Ms);
  summary.cpuRatio = ratio((w) => w.serverCpuMsPerCsr);
  return summary;
}

/** The goal for one mode and concurrency: throughput ≥ istiod's and p99 ≤ istiod's (medians of the paired ratios). */
export function meetsGoal(summary: Record<string, Summary>): boolean {
  const t = summary.throughputRatio?.median;
  const p = summary.p99Ratio?.median;
  return t !== undefined && p !== undefined && t >= 1 && p <= 1;
}
