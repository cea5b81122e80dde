import { describe, expect, it } from 'vitest';
import { renderResults } from '../report.js';
import type { StoredScenario } from '../results.js';
import { CSR_HEADER, csrRow, csrScenarios, csrSection, csrTarget, csrWhatIf } from './report.js';
import { type PairedRun, summarizePairs, type WindowResult } from './summary.js';

const w = (csrPerSecond: number, p99Ms: number): WindowResult => ({
  ok: 1000,
  failed: 0,
  csrPerSecond,
  p50Ms: p99Ms / 2,
  p99Ms,
  maxMs: p99Ms * 2,
  serverCpuMsPerCsr: 2,
  controlPlaneCpuMsPerCsr: 1.5,
  clientCpuMsPerCsr: 1,
  tokenReviewsPerCsr: 1,
  configMapWritesPerCsr: 0,
});

function stored(tokens: string, concurrency: number, runs: PairedRun[]): StoredScenario {
  return {
    scenario: 'csr',
    key: `csr tokens=${tokens} concurrency=${concurrency}`,
    params: {
      tokens,
      concurrency,
      n: 1000,
      csrKey: 'ECDSA P-256',
      cold: 'fresh tokens',
      alcazarCa: 'P-256',
      istiodCa: 'RSA-2048',
      alcazarCallers: '100',
      istiodCallers: '100',
    },
    summary: summarizePairs(runs),
    runs: [],
    notes: [],
    file: 'f.json',
    startedAt: '2026-11-30T19:00:00.000Z',
    machine: {
      cpuModel: 'cpu',
      cores: 2,
      memoryGb: 24,
      node: 'v20',
      kubernetes: 'v1.34',
      platform: 'linux x64',
      loadAverageAtStart: [1, 1, 1],
    },
    git: { commit: 'abc1234', dirty: false },
  };
}

const faster = stored('warm', 16, [{ alcazar: w(400, 10), istiod: w(200, 20) }]);
const slower = stored('cold', 128, [
  { alcazar: w(100, 40), istiod: w(200, 20) },
  { alcazar: w(150, 30), istiod: w(200, 20) },
]);

describe('CSR report rows', () => {
  it('one row per mode and concurrency, cold first, with both servers side by side', () => {
    expect(csrScenarios([faster, slower]).map((s) => s.key)).toEqual([slower.key, faster.key]);
    const row = csrRow(slower);
    expect(row).toHaveLength(CSR_HEADER.length);
    expect(row.slice(0, 9)).toEqual([
      'cold',
      '128',
      '125 (100–150)',
      '200',
      '0.63 (0.50–0.75)×',
      '17.5 / 35.0',
      '10.0 / 20.0',
      '1.75 (1.50–2.00)×',
      '**missed**',
    ]);
    expect(csrRow(faster)[8]).toBe('met');
  });

  it('the target passes only when every row meets the goal, and names the rows that miss', () => {
    expect(csrTarget([faster]).verdict).toBe('PASS');
    const missed = csrTarget([faster, slower]);
    expect(missed.verdict).toBe('MISS');
    expect(missed.measured).toContain('cold c=128: 0.63× throughput, 1.75× p99');
    expect(missed.measured).toContain('1 of 2 met');
    expect(csrTarget([]).verdict).toBe('NOT RUN');
  });

  it('the generated document carries the section and the target line, and nothing when not run', () => {
    expect(csrSection([])).toEqual([]);
    const text = renderResults([faster, slower]);
    expect(text).toContain("### CSR API (Istio's CreateCertificate): alcazar against istiod");
    expect(text).toMatch(/\| CSR API: .* \| \*\*MISS\*\* \|/);
    expect(text).toContain('| warm | 16 | 400 | 200 | 2.00× |');
  });

  it('a what-if goes to its own table, not into the shipped rows or the target', () => {
    const whatIf = {
      ...stored('warm', 16, [{ alcazar: w(900, 5), istiod: w(200, 20) }]),
      key: 'csr tokens=warm concurrency=16 experiment=memory-issuance-record',
      params: { ...faster.params, experiment: 'memory-issuance-record' },
    };
    expect(csrWhatIf([whatIf]).join('\n')).toContain(
      '| memory-issuance-record | warm | 16 | 900 | 200 | 4.50× |',
    );
    const text = renderResults([slower, whatIf]);
    expect(text).toMatch(/\| CSR API: .* \| \*\*MISS\*\* \|/);
    expect(text.match(/\| warm \| 16 \|/g)).toHaveLength(1);
    expect(text).not.toContain('- csr tokens=warm concurrency=16 experiment');
  });
});
