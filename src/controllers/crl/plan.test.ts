import { describe, expect, it } from 'vitest';
import {
  type CrlPlanInput,
  crlBackdateMs,
  entriesKey,
  liveEntries,
  type PublishedCrl,
  planCrl,
  type RevokedForCrl,
} from './plan.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const now = Date.UTC(2026, 10, 30, 12);
const revoked: RevokedForCrl[] = [
  { serial: '0a', notAfter: now + DAY, revokedAt: now - HOUR, reason: 'keyCompromise' },
  { serial: '0b', notAfter: now + 2 * HOUR, revokedAt: now - HOUR, reason: 'unspecified' },
];

function crl(over: Partial<PublishedCrl> = {}): PublishedCrl {
  const thisUpdate = now - HOUR - crlBackdateMs(DAY);
  return {
    signerFingerprint: 'root-1',
    crlNumber: 1_700_000_000n,
    thisUpdate,
    nextUpdate: now - HOUR + DAY,
    entriesKey: entriesKey(liveEntries(revoked, now)),
    ...over,
  };
}

function input(over: Partial<CrlPlanInput> = {}): CrlPlanInput {
  return {
    signers: ['root-1'],
    revoked,
    validityMs: DAY,
    published: { owned: true, wellFormed: true, crls: [crl()] },
    highestCrlNumber: 1_700_000_000n,
    now,
    ...over,
  };
}

describe('planCrl', () => {
  it('leaves a current CRL alone until half its validity or the first listed expiry', () => {
    expect(planCrl(input())).toEqual({ action: 'none', recheckAt: now + 2 * HOUR });
    const later = planCrl(
      input({
        revoked: [revoked[0]!],
        published: {
          owned: true,
          wellFormed: true,
          crls: [crl({ entriesKey: entriesKey(liveEntries([revoked[0]!], now)) })],
        },
      }),
    );
    expect(later).toEqual({ action: 'none', recheckAt: (crl().thisUpdate + crl().nextUpdate) / 2 });
  });

  it.each<[string, Partial<CrlPlanInput>, string]>([
    ['nothing published', { published: undefined }, 'Missing'],
    [
      'a new revocation',
      { revoked: [...revoked, { serial: '0c', notAfter: now + DAY, revokedAt: now, reason: 'superseded' }] },
      'EntriesChanged',
    ],
    ['a listed certificate expired', { now: now + 2 * HOUR }, 'EntriesChanged'],
    [
      'half the validity passed',
      {
        revoked: [],
        published: { owned: true, wellFormed: true, crls: [crl({ entriesKey: '' })] },
        now: now + DAY / 2,
      },
      'RefreshDue',
    ],
    ['a root rotation added a signer', { signers: ['root-1', 'root-2'] }, 'SignersChanged'],
    ['the old root retired', { signers: ['root-2'] }, 'SignersChanged'],
    ['someone edited it', { published: { owned: true, wellFormed: false, crls: [crl()] } }, 'Edited'],
    ['the validity setting changed', { validityMs: 2 * DAY }, 'RefreshDue'],
  ])('signs again when %s', (_, over, reason) => {
    expect(planCrl(input(over))).toMatchObject({ action: 'sign', reason });
  });

  it('numbers a new CRL one above the highest seen, and never below the unix time', () => {
    const decision = planCrl(input({ published: undefined, highestCrlNumber: 5_000_000_000n }));
    expect(decision).toMatchObject({ crlNumber: 5_000_000_001n });
    const lost = planCrl(input({ published: undefined, highestCrlNumber: 0n }));
    expect(lost).toMatchObject({ crlNumber: BigInt(now / 1000) });
  });

  it('lists live entries once each, backdates thisUpdate, and sets nextUpdate one validity ahead', () => {
    const decision = planCrl(
      input({
        published: undefined,
        revoked: [
          ...revoked,
          { serial: '0a', notAfter: now + DAY, revokedAt: now - 2 * HOUR, reason: 'superseded' },
          { serial: '0d', notAfter: now - 1, revokedAt: now - DAY, reason: 'unspecified' },
        ],
      }),
    );
    expect(decision).toMatchObject({ action: 'sign', thisUpdate: now - 5 * 60_000, nextUpdate: now + DAY });
    if (decision.action !== 'sign') return;
    expect(decision.entries.map((e) => [e.serial, e.reason])).toEqual([
      ['0a', 'superseded'],
      ['0b', 'unspecified'],
    ]);
  });

  it('waits while no CA can sign, and never touches a ConfigMap it does not own', () => {
    expect(planCrl(input({ signers: undefined }))).toEqual({ action: 'wait' });
    expect(planCrl(input({ published: { owned: false, wellFormed: true, crls: [] } }))).toMatchObject({
      action: 'report',
      reason: 'ForeignConfigMap',
    });
  });
});
