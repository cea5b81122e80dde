import { describe, expect, it } from 'vitest';
import type { SigningAuthority } from '../ca/authority.js';
import { planServingCertificate } from './serving-certificate.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2030, 0, 1);
const ready = (generation: string, signerNotAfter = T0 + 3650 * 24 * HOUR) => ({
  status: 'ready' as const,
  authority: { generation, signer: { notAfter: new Date(signerNotAfter) } } as SigningAuthority,
});
const current = { notBefore: T0, notAfter: T0 + 24 * HOUR, generation: 'g1' };

describe('planServingCertificate', () => {
  it('waits without a CA, issues the first one as soon as there is one', () => {
    expect(planServingCertificate(undefined, { status: 'pending', message: '' }, T0)).toEqual({
      action: 'wait',
      recheckInMs: undefined,
    });
    expect(planServingCertificate(undefined, ready('g1'), T0)).toMatchObject({ action: 'issue' });
  });

  it('renews at half-life, and rechecks then', () => {
    expect(planServingCertificate(current, ready('g1'), T0 + HOUR)).toEqual({
      action: 'wait',
      recheckInMs: 11 * HOUR,
    });
    expect(planServingCertificate(current, ready('g1'), T0 + 12 * HOUR)).toMatchObject({ action: 'issue' });
  });

  it('renews at once when the CA changed (a rotation phase, a new signer)', () => {
    expect(planServingCertificate(current, ready('g2'), T0 + HOUR)).toEqual({
      action: 'issue',
      why: 'the CA changed',
    });
  });

  it('does not renew a certificate that ends with its signer, and issues nothing once the signer ended', () => {
    const signerEnd = T0 + 30_000;
    const capped = { notBefore: T0 - 60_000, notAfter: signerEnd, generation: 'g1' };
    // Half of its lifetime passed at once: before, this was a new certificate per pass.
    expect(planServingCertificate(capped, ready('g1', signerEnd), T0 + 1_000)).toEqual({
      action: 'wait',
      recheckInMs: undefined,
    });
    expect(planServingCertificate(undefined, ready('g1', signerEnd), signerEnd)).toEqual({
      action: 'wait',
      recheckInMs: undefined,
    });
    expect(planServingCertificate(capped, ready('g2', T0 + 3650 * 24 * HOUR), T0 + 1_000)).toMatchObject({
      action: 'issue',
    });
  });
});
