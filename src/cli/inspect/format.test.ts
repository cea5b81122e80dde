import { describe, expect, it } from 'vitest';
import { describeTimeLeft, formatDurationShort, formatInspectText, formatProblemList } from './format.js';
import type { InspectReport } from './report.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('formatDurationShort', () => {
  it.each([
    [0, '0s'],
    [999, '0s'],
    [45 * SECOND, '45s'],
    [90 * SECOND, '1m 30s'],
    [3 * HOUR, '3h 0m'],
    [3 * HOUR + 5 * MINUTE + 59 * SECOND, '3h 5m'],
    [90 * DAY - MINUTE, '89d 23h'],
    [90 * DAY, '90d 0h'],
    [-(2 * DAY + 4 * HOUR), '-2d 4h'],
  ])('%d ms reads %s', (ms, text) => {
    expect(formatDurationShort(ms)).toBe(text);
  });

  it('a certificate past its notAfter reads "expired … ago"', () => {
    expect(describeTimeLeft(-(2 * DAY + 4 * HOUR + 1))).toBe('expired 2d 4h ago');
    expect(describeTimeLeft(0)).toBe('expired 0s ago');
    expect(describeTimeLeft(89 * DAY)).toBe('89d 0h');
  });
});

describe('formatProblemList', () => {
  it('one indented "- Reason: message" line per problem', () => {
    expect(
      formatProblemList([
        { reason: 'Expired', message: 'the certificate expired' },
        { reason: 'KeyMismatch', message: 'key.pem does not match' },
      ]),
    ).toBe('  - Expired: the certificate expired\n  - KeyMismatch: key.pem does not match');
  });
});

describe('formatInspectText', () => {
  it('aligns every value in one column and lists problems under the block', () => {
    const report: InspectReport = {
      secret: {
        namespace: 'shop',
        name: 'istio.cart',
        type: 'istio.io/key-and-cert',
        managedByAlcazar: true,
        owners: [],
      },
      serviceAccount: 'cart',
      trustDomain: 'cluster.local',
      configSource: 'built-in defaults',
      spiffeId: 'spiffe://cluster.local/ns/shop/sa/cart',
      expectedSpiffeId: 'spiffe://cluster.local/ns/shop/sa/cart',
      spiffeIdMatches: true,
      dnsNames: [],
      dnsNamesRefused: [],
      serial: 'ab',
      keyType: 'ECDSA_P256',
      issuer: 'O=cluster.local',
      subject: '',
      fingerprintSha256: 'ff',
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2026-04-01T00:00:00.000Z',
      timeLeft: '1d 0h',
      timeLeftSeconds: 86_400,
      expired: false,
      notYetValid: false,
      chain: {
        secretRoot: { verified: true, source: 'root-cert.pem' },
        caBundle: { verified: true, source: 'istio-system/istio-ca-secret' },
      },
      keyMatches: false,
      contentDigest: 'mismatch',
      renewAt: '2026-02-14T12:00:00.000Z',
      renewalDue: true,
      controller: {
        action: 'reissue',
        reason: 'InvalidData',
        message: 'issue a new key and certificate (InvalidData)',
      },
      problems: [
        { reason: 'KeyMismatch', message: 'key.pem does not match the certificate in cert-chain.pem' },
      ],
      warnings: [],
      healthy: false,
    };
    const text = formatInspectText(report, new Date('2026-03-31T00:00:00Z'));
    const block = text.split('\n\n')[0]!.split('\n');
    const columns = new Set(block.map((line) => line.search(/(?<=: +)\S/)));
    expect(columns.size).toBe(1);
    expect(text).toContain('SPIFFE ID:');
    expect(text).toMatch(/SPIFFE ID: +spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart \(as expected\)/);
    expect(text).toMatch(/Subject: +\(empty\)/);
    expect(text).toMatch(/Renews at: +2026-02-14T12:00:00\.000Z \(due now\)/);
    expect(text).toMatch(/Key matches cert: +no/);
    expect(text).toMatch(/Content digest: +does not verify against the current CA \(checked in full\)/);
    expect(
      text.endsWith('Problems:\n  - KeyMismatch: key.pem does not match the certificate in cert-chain.pem'),
    ).toBe(true);
  });
});
