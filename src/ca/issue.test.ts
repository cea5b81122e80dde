import { describe, expect, it } from 'vitest';
import { leafNotBefore } from './issue.js';

describe('leafNotBefore', () => {
  const now = new Date('2026-11-30T12:00:00Z');

  it('backdates by the skew allowance', () => {
    const signerNotBefore = new Date('2026-01-01T00:00:00Z');
    expect(leafNotBefore({ now, backdateMs: 300_000 }, signerNotBefore)).toEqual(
      new Date('2026-11-30T11:55:00Z'),
    );
  });

  it('never starts before its issuer (a root minted a minute ago)', () => {
    const signerNotBefore = new Date('2026-11-30T11:59:00Z');
    expect(leafNotBefore({ now, backdateMs: 300_000 }, signerNotBefore)).toEqual(signerNotBefore);
  });
});
