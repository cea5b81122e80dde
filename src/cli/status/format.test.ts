import { describe, expect, it } from 'vitest';
import { formatStatusText } from './format.js';
import type { StatusReport } from './report.js';

const DAY = 86_400_000;

function report(overrides: Partial<StatusReport> = {}): StatusReport {
  return {
    caNamespace: 'istio-system',
    certificateAuthority: {
      found: true,
      ready: 'True',
      reason: 'Ready',
      message: 'issuing workload certificates',
      trustDomain: 'cluster.local',
      mode: 'SelfSigned',
      statusCurrent: true,
      conditions: [
        { type: 'Ready', status: 'True', reason: 'Ready', message: 'issuing workload certificates' },
        { type: 'CAReady', status: 'True', reason: 'Loaded', message: 'signing with istio-ca-secret' },
      ],
    },
    roots: [
      {
        fingerprintSha256: 'ab'.repeat(32),
        notBefore: '2026-01-01T00:00:00Z',
        notAfter: '2036-01-01T00:00:00Z',
        active: true,
        timeLeftMs: 3500 * DAY + 3_600_000,
      },
    ],
    rotation: { phase: 'Idle', message: 'no rotation under way' },
    counts: { managedServiceAccounts: 3, issuedCertificates: 3, failingCertificates: 0 },
    leader: { holder: 'alcazar-7d9_1', renewedAgoMs: 2000, current: true },
    failing: { total: 0, listed: [] },
    problems: [],
    ...overrides,
  };
}

describe('formatStatusText', () => {
  it('a healthy CA reads as such, one fact per line', () => {
    expect(formatStatusText(report())).toBe(
      [
        'CA:           Ready',
        'trust domain: cluster.local',
        'root mode:    SelfSigned (CA namespace istio-system)',
        '  CAReady=True Loaded',
        'roots:',
        `  active  ${'ab'.repeat(8)}…  expires 2036-01-01T00:00:00Z (3500d 1h)`,
        'rotation:     Idle (no rotation under way)',
        'leader:       alcazar-7d9_1, renewed 2s ago',
        "certificates: 3 issued for 3 managed ServiceAccounts, 0 failing (controller's count)",
        'failing ServiceAccounts: 0',
        '',
        'healthy',
      ].join('\n'),
    );
  });

  it('says why the CA is not ready, lists failing ServiceAccounts up to the limit and the problems', () => {
    const text = formatStatusText(
      report({
        certificateAuthority: {
          ...report().certificateAuthority,
          ready: 'False',
          reason: 'MissingSecret',
          message: 'cacerts not found',
        },
        leader: { current: false },
        failing: {
          total: 3,
          listed: [
            { namespace: 'shop', serviceAccount: 'cart', reason: 'SecretMissing', message: 'no Secret' },
          ],
        },
        problems: ['CA not ready: MissingSecret: cacerts not found'],
      }),
    );
    expect(text).toContain('CA:           NOT READY (MissingSecret): cacerts not found');
    expect(text).toContain('leader:       none');
    expect(formatStatusText(report({ leader: { notChecked: true } }))).toContain(
      'leader:       not checked (--no-lease)',
    );
    expect(text).toContain('  shop/cart: SecretMissing: no Secret\n  … and 2 more (--max-failing)');
    expect(text).toMatch(/problems:\n {2}- CA not ready: MissingSecret: cacerts not found$/);
  });
});
