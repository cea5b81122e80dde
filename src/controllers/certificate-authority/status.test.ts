import { describe, expect, it } from 'vitest';
import type { SigningAuthority } from '../../ca/authority.js';
import { defaultCaConfig } from '../../config/ca-spec.js';
import type { AuthorityState } from '../authority/controller.js';
import {
  type CaStatus,
  desiredStatus,
  planStatusWrite,
  rootExpiring,
  type StatusInput,
  sameStatus,
} from './status.js';

const YEAR = 365 * 86_400_000;
const now = Date.UTC(2026, 10, 23);

function ready(mode: 'SelfSigned' | 'PluggedIn', notBefore: number, notAfter: number): AuthorityState {
  const signer = { notBefore: new Date(notBefore), notAfter: new Date(notAfter), fingerprintSha256: 'f1' };
  return {
    status: 'ready',
    authority: {
      mode,
      source: `istio-system/${mode === 'SelfSigned' ? 'istio-ca-secret' : 'cacerts'}`,
      signer,
      roots: [signer],
      activeRootFingerprint: 'f1',
    } as unknown as SigningAuthority,
  };
}

function input(over: Partial<StatusInput> = {}): StatusInput {
  return {
    generation: 3,
    config: defaultCaConfig(),
    specError: undefined,
    authority: ready('SelfSigned', now - YEAR, now + 9 * YEAR),
    counts: { managedServiceAccounts: 5, issuedCertificates: 4, failingCertificates: 1 },
    rotation: { phase: 'Idle', message: 'not due' },
    now,
    transitionTime: () => '2026-11-23T00:00:00Z',
    ...over,
  };
}

const condition = (status: CaStatus, type: string) => status.conditions.find((c) => c.type === type);

describe('desiredStatus', () => {
  it('reports the CRL: Signed while current, SignFailed when it cannot be re-signed, Expired past nextUpdate', () => {
    expect(condition(desiredStatus(input()), 'CRLValid')).toBeUndefined();
    const current = desiredStatus(
      input({ crl: { state: 'current', nextUpdate: now + 3_600_000, revoked: 2 } }),
    );
    expect(condition(current, 'CRLValid')).toMatchObject({ status: 'True', reason: 'Signed' });
    expect(condition(current, 'CRLValid')?.message).toContain('2 revoked');
    const failing = desiredStatus(
      input({
        crl: { state: 'failing', nextUpdate: now + 60_000, message: 'cannot sign or publish the CRL: boom' },
      }),
    );
    expect(condition(failing, 'CRLValid')).toMatchObject({ status: 'False', reason: 'SignFailed' });
    expect(condition(failing, 'CRLValid')?.message).toContain('boom');
    const expired = desiredStatus(input({ crl: { state: 'current', nextUpdate: now, revoked: 0 } }));
    expect(condition(expired, 'CRLValid')).toMatchObject({ status: 'False', reason: 'Expired' });
    const pending = desiredStatus(input({ crl: { state: 'unknown', message: 'no CRL signed yet' } }));
    expect(condition(pending, 'CRLValid')).toMatchObject({ status: 'Unknown', reason: 'Pending' });
  });

  it('is Ready with the root, counts and observed generation when config and CA are good', () => {
    const status = desiredStatus(input());
    expect(condition(status, 'Ready')).toMatchObject({ status: 'True', observedGeneration: 3 });
    expect(status.roots).toEqual([expect.objectContaining({ fingerprintSha256: 'f1', active: true })]);
    expect(status.rootExpiry).toBe(new Date(now + 9 * YEAR).toISOString().replace('.000Z', 'Z'));
    expect(status).toMatchObject({
      managedServiceAccounts: 5,
      issuedCertificates: 4,
      failingCertificates: 1,
    });
  });

  it('is not Ready, with the spec error, when the spec is invalid', () => {
    const status = desiredStatus(input({ specError: 'spec.trustDomain: must be lowercase' }));
    expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(condition(status, 'ConfigValid')?.message).toContain('spec.trustDomain: must be lowercase');
  });

  it('held (no valid spec since start): says nothing acts, and shows what was asked or last shown, not the defaults', () => {
    const previous = desiredStatus(
      input({
        config: { ...defaultCaConfig(), trustDomain: 'corp.example' },
        rotation: { phase: 'Reissuing', message: 'reissuing', startedAt: '2026-11-22T00:00:00Z' },
      }),
    );
    expect(previous.rootExpiry).toBeDefined();
    const held = desiredStatus(
      input({
        specError: 'spec.workloadCertificates.ttl: too short',
        configHeld: {},
        authority: { status: 'failed', reason: 'InvalidSpec', message: 'no CA is loaded' },
        counts: { managedServiceAccounts: 0, issuedCertificates: 0, failingCertificates: 0 },
        previous,
      }),
    );
    expect(condition(held, 'ConfigValid')?.message).toContain(
      'no valid configuration has been in effect since the controller started',
    );
    expect(held.trustDomain).toBe('corp.example');
    expect(held).toMatchObject({ managedServiceAccounts: 5, issuedCertificates: 4, failingCertificates: 1 });
    // Not the rotation controller's Idle of a CA it never looked at, and the root's end as it was.
    expect(held.rotation).toEqual(previous.rotation);
    expect(held.rootExpiry).toBe(previous.rootExpiry);
    expect(
      desiredStatus(input({ specError: 'x', configHeld: { trustDomain: 'asked.example' } })).trustDomain,
    ).toBe('asked.example');
  });

  it('is not Ready, with the CA reason, when the CA cannot sign', () => {
    const status = desiredStatus(
      input({ authority: { status: 'failed', reason: 'KeyMismatch', message: 'ca-key.pem does not match' } }),
    );
    expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'KeyMismatch' });
    expect(condition(status, 'CAReady')).toMatchObject({ status: 'False', reason: 'KeyMismatch' });
    expect(status.roots).toEqual([]);
  });

  it('compares equal regardless of key and condition order', () => {
    const a = desiredStatus(input());
    const b = { ...a, conditions: [...a.conditions].reverse() } as CaStatus;
    expect(sameStatus(a, JSON.parse(JSON.stringify(b)))).toBe(true);
    expect(sameStatus(a, { ...a, failingCertificates: 2 })).toBe(false);
  });
});

describe('rootExpiring', () => {
  it('warns when a plugged-in signer is inside the threshold: only the operator can rotate it', () => {
    const verdict = rootExpiring(input({ authority: ready('PluggedIn', now - 9 * YEAR, now + YEAR) }));
    expect(verdict).toMatchObject({ expiring: true });
  });

  it('leaves a self-signed root inside the threshold to the rotation', () => {
    expect(
      rootExpiring(input({ authority: ready('SelfSigned', now - 8.5 * YEAR, now + 1.5 * YEAR) })),
    ).toEqual({
      expiring: false,
    });
  });

  it('warns when a self-signed rotation is overdue', () => {
    const verdict = rootExpiring(
      input({ authority: ready('SelfSigned', now - 9.5 * YEAR, now + 0.5 * YEAR) }),
    );
    expect(verdict).toMatchObject({ expiring: true });
    expect(
      condition(
        desiredStatus(input({ authority: ready('SelfSigned', now - 9.5 * YEAR, now + 0.5 * YEAR) })),
        'RootExpiring',
      ),
    ).toMatchObject({
      status: 'True',
      reason: 'RootNearExpiry',
    });
  });

  it('is not ready once the signer has ended, and does not call the signer valid when none is loaded', () => {
    const ended: AuthorityState = {
      status: 'failed',
      reason: 'SignerExpiring',
      message:
        'istio-system/cacerts: the signing certificate has expired (notAfter 2026-11-22T00:00:00.000Z)',
    };
    const status = desiredStatus(input({ authority: ended }));
    expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'SignerExpiring' });
    expect(condition(status, 'CAReady')).toMatchObject({ status: 'False', reason: 'SignerExpiring' });
    expect(condition(status, 'RootExpiring')).toMatchObject({ status: 'Unknown', reason: 'NoSigner' });
  });

  it('is not ready once a self-signed root loaded for its rotation has ended', () => {
    const lastDay = ready('SelfSigned', now - 10 * YEAR, now + 1_000);
    expect(condition(desiredStatus(input({ authority: lastDay })), 'Ready')?.status).toBe('True');
    const ended = desiredStatus(input({ authority: lastDay, now: now + 1_000 }));
    expect(condition(ended, 'Ready')).toMatchObject({ status: 'False', reason: 'SignerExpired' });
    expect(condition(ended, 'CAReady')).toMatchObject({ status: 'False', reason: 'SignerExpired' });
    expect(condition(ended, 'CAReady')?.message).toContain('until the root rotation replaces it');
    expect(condition(ended, 'RootExpiring')?.status).toBe('True');
    expect(ended.roots, 'the roots in use are still shown').toHaveLength(1);
  });
});

describe('planStatusWrite', () => {
  const INTERVAL = 5_000;
  const stored = desiredStatus(input());
  const counted = (issuedCertificates: number) =>
    desiredStatus(
      input({ counts: { managedServiceAccounts: 5, issuedCertificates, failingCertificates: 1 } }),
    );

  it('writes nothing when the stored status is already the desired one', () => {
    expect(planStatusWrite(stored, desiredStatus(input()), now - 1, now, INTERVAL)).toEqual({ write: false });
  });

  it('writes the first status, and any status this process has not written before, at once', () => {
    expect(planStatusWrite(undefined, stored, undefined, now, INTERVAL)).toEqual({ write: true });
    expect(planStatusWrite(stored, counted(5), undefined, now, INTERVAL)).toEqual({ write: true });
  });

  it('writes a change of counts alone at most once per interval, and says when to come back', () => {
    expect(planStatusWrite(stored, counted(5), now - 1_000, now, INTERVAL)).toEqual({
      write: false,
      retryInMs: 4_000,
    });
    expect(planStatusWrite(stored, counted(5), now - INTERVAL, now, INTERVAL)).toEqual({ write: true });
  });

  it('writes a change of state at once, even right after a write', () => {
    const failing = desiredStatus(
      input({
        authority: { status: 'failed', reason: 'CaSecretInvalid', message: 'bad key' } as AuthorityState,
      }),
    );
    expect(planStatusWrite(stored, failing, now - 1, now, INTERVAL)).toEqual({ write: true });
    const rotating = desiredStatus(
      input({ rotation: { phase: 'Reissuing', message: '3 of 5' } as StatusInput['rotation'] }),
    );
    expect(planStatusWrite(stored, rotating, now - 1, now, INTERVAL)).toEqual({ write: true });
  });
});
