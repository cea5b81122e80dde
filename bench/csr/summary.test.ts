import { describe, expect, it } from 'vitest';
import { describeWindow, meetsGoal, type PairedRun, summarizePairs, type WindowResult } from './summary.js';

const window = (over: Partial<Parameters<typeof describeWindow>[0]> = {}) =>
  describeWindow({
    latenciesMs: Array.from({ length: 100 }, (_, i) => i + 1),
    wallMs: 500,
    failed: 0,
    serverCpuMs: 250,
    controlPlaneCpuMs: 100,
    clientCpuMs: 50,
    tokenReviews: 100,
    configMapWrites: 0,
    ...over,
  });

describe('describeWindow', () => {
  it('turns a window into calls per second, nearest-rank percentiles and per-CSR costs', () => {
    expect(window()).toEqual({
      ok: 100,
      failed: 0,
      csrPerSecond: 200,
      p50Ms: 50,
      p99Ms: 99,
      maxMs: 100,
      serverCpuMsPerCsr: 2.5,
      controlPlaneCpuMsPerCsr: 1,
      clientCpuMsPerCsr: 0.5,
      tokenReviewsPerCsr: 1,
      configMapWritesPerCsr: 0,
    });
  });

  it('counts only answered calls: failures do not inflate throughput or dilute CPU per CSR', () => {
    const w = window({ latenciesMs: [10, 20], wallMs: 1000, failed: 8, serverCpuMs: 10 });
    expect(w.csrPerSecond).toBe(2);
    expect(w.serverCpuMsPerCsr).toBe(5);
    expect(w.failed).toBe(8);
  });

  it('a window where nothing succeeded has no rates rather than zeros that look like data', () => {
    const w = window({ latenciesMs: [], failed: 5 });
    expect(w.csrPerSecond).toBe(0);
    expect(w.p99Ms).toBeNaN();
    expect(w.serverCpuMsPerCsr).toBeNaN();
  });
});

const result = (csrPerSecond: number, p99Ms: number, serverCpuMsPerCsr = 1): WindowResult => ({
  ...window(),
  csrPerSecond,
  p99Ms,
  serverCpuMsPerCsr,
});

describe('summarizePairs', () => {
  const runs: PairedRun[] = [
    { alcazar: result(100, 20, 4), istiod: result(200, 10, 2) },
    { alcazar: result(300, 10, 3), istiod: result(200, 10, 3) },
    { alcazar: result(200, 30, 2), istiod: result(100, 10, 4) },
  ];

  it('keeps each server’s medians under <server>.<metric>', () => {
    const s = summarizePairs(runs);
    expect(s['alcazar.csrPerSecond']).toMatchObject({ median: 200, min: 100, max: 300, runs: 3 });
    expect(s['istiod.p99Ms']).toMatchObject({ median: 10, runs: 3 });
  });

  it('takes the ratio alcazar/istiod within each run, then the median of those', () => {
    const s = summarizePairs(runs);
    expect(s.throughputRatio!.values).toEqual([0.5, 1.5, 2]);
    expect(s.throughputRatio!.median).toBe(1.5);
    expect(s.p99Ratio!.values).toEqual([2, 1, 3]);
    expect(s.cpuRatio!.median).toBe(1);
  });
});

describe('meetsGoal', () => {
  it('needs throughput ≥ istiod’s and p99 ≤ istiod’s, ties included', () => {
    expect(meetsGoal(summarizePairs([{ alcazar: result(100, 10), istiod: result(100, 10) }]))).toBe(true);
    expect(meetsGoal(summarizePairs([{ alcazar: result(99, 5), istiod: result(100, 10) }]))).toBe(false);
    expect(meetsGoal(summarizePairs([{ alcazar: result(150, 11), istiod: result(100, 10) }]))).toBe(false);
    expect(meetsGoal({})).toBe(false);
  });
});
