import { describe, expect, it } from 'vitest';
import { parseCertificateRevocationSpec } from '../../config/revocation-spec.js';
import { type IssuedCertificate, planRevocation, type RevocationPlanInput } from './plan.js';

const now = Date.UTC(2026, 10, 30, 12);
const HOUR = 3_600_000;
const cert = (over: Partial<IssuedCertificate> = {}): IssuedCertificate => ({
  serial: '0a',
  namespace: 'shop',
  serviceAccount: 'cart',
  notAfter: now + 24 * HOUR,
  issuedAt: now - HOUR,
  ...over,
});

function input(spec: unknown, over: Partial<RevocationPlanInput> = {}): RevocationPlanInput {
  return {
    namespace: 'shop',
    caNamespace: 'istio-system',
    createdAt: now - 1000,
    request: parseCertificateRevocationSpec(spec),
    serviceAccountExists: true,
    issuedToServiceAccount: [],
    issuedBySerial: new Map(),
    now,
    ...over,
  };
}

describe('planRevocation', () => {
  it('revokes every valid certificate issued to the ServiceAccount before the object was created', () => {
    const decision = planRevocation(
      input(
        { serviceAccountName: 'cart' },
        {
          issuedToServiceAccount: [
            cert({ serial: '0a' }),
            cert({ serial: '0b', issuedAt: now - 30 * HOUR, notAfter: now + HOUR }),
            cert({ serial: '0c', notAfter: now - 1 }), // expired: nothing to revoke
            cert({ serial: '0d', issuedAt: now }), // issued after the object: the replacement
          ],
        },
      ),
    );
    expect(decision).toMatchObject({ action: 'apply' });
    if (decision.action !== 'apply') return;
    expect(decision.revoked.map((r) => r.serial)).toEqual(['0a', '0b']);
    expect(decision.revoked[0]).toEqual({
      serial: '0a',
      notAfter: now + 24 * HOUR,
      namespace: 'shop',
      serviceAccount: 'cart',
    });
  });

  it('revokes a serial issued to an identity of its own namespace', () => {
    const decision = planRevocation(
      input({ serialNumbers: ['0A'] }, { issuedBySerial: new Map([['0a', cert()]]) }),
    );
    expect(decision).toMatchObject({ action: 'apply', revoked: [{ serial: '0a' }] });
  });

  it('refuses a serial of another namespace and revokes nothing, not even the rest', () => {
    const decision = planRevocation(
      input(
        { serialNumbers: ['0a', '0b'] },
        {
          issuedBySerial: new Map([
            ['0a', cert()],
            ['0b', cert({ serial: '0b', namespace: 'bank' })],
          ]),
        },
      ),
    );
    expect(decision).toMatchObject({ action: 'refuse', reason: 'CrossNamespace' });
  });

  it('lets the CA namespace revoke any serial alcazar issued', () => {
    const decision = planRevocation(
      input(
        { serialNumbers: ['0b'] },
        {
          namespace: 'istio-system',
          issuedBySerial: new Map([['0b', cert({ serial: '0b', namespace: 'bank' })]]),
        },
      ),
    );
    expect(decision).toMatchObject({ action: 'apply', revoked: [{ serial: '0b', namespace: 'bank' }] });
  });

  it.each([
    ['a serial alcazar does not know', new Map<string, IssuedCertificate>()],
    ['an expired serial', new Map([['0a', cert({ notAfter: now })]])],
  ])('refuses %s', (_, issuedBySerial) => {
    expect(planRevocation(input({ serialNumbers: ['0a'] }, { issuedBySerial }))).toMatchObject({
      action: 'refuse',
      reason: 'UnknownSerial',
    });
  });

  it('refuses an unknown ServiceAccount with no certificates, and says which', () => {
    const decision = planRevocation(input({ serviceAccountName: 'ghost' }, { serviceAccountExists: false }));
    expect(decision).toMatchObject({ action: 'refuse', reason: 'UnknownServiceAccount' });
    if (decision.action === 'refuse') expect(decision.message).toContain('shop/ghost');
  });

  it('still revokes the certificates of a ServiceAccount that was deleted since', () => {
    const decision = planRevocation(
      input(
        { serviceAccountName: 'cart' },
        { serviceAccountExists: false, issuedToServiceAccount: [cert()] },
      ),
    );
    expect(decision).toMatchObject({ action: 'apply', revoked: [{ serial: '0a' }] });
  });

  it('applies, with nothing revoked, to an existing ServiceAccount without certificates', () => {
    expect(planRevocation(input({ serviceAccountName: 'cart' }))).toMatchObject({
      action: 'apply',
      revoked: [],
    });
  });

  it('refuses an invalid spec with the schema’s message', () => {
    expect(planRevocation(input({ serialNumbers: ['xyz'] }))).toMatchObject({
      action: 'refuse',
      reason: 'InvalidSpec',
      message: expect.stringContaining("'xyz' is not a serial number"),
    });
    expect(planRevocation(input({ serviceAccountName: 'cart', reason: 'bored' }))).toMatchObject({
      action: 'refuse',
      reason: 'InvalidSpec',
    });
  });
});
