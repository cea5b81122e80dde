import { describe, expect, it } from 'vitest';
import { planRotation, type RotationInput, rotationDueAt } from './plan.js';

const YEAR = 365 * 24 * 3600_000;
const now = Date.UTC(2026, 10, 23);
const done = { bundleCurrent: 10, bundleTotal: 10, signedByActive: 10, signedTotal: 10 };

function input(over: Partial<RotationInput> = {}): RotationInput {
  return {
    phase: 'Idle',
    phaseSince: now - YEAR,
    active: { notBefore: now - YEAR, notAfter: now + 9 * YEAR },
    threshold: 0.2,
    dwellMs: 60_000,
    requested: false,
    progress: done,
    now,
    ...over,
  };
}

describe('planRotation', () => {
  it('waits while more than the threshold share of the root lifetime remains, until the due time', () => {
    const decision = planRotation(input());
    expect(decision).toEqual({ action: 'wait', reason: 'not due', recheckAt: now + 9 * YEAR - 2 * YEAR });
  });

  it('decides an Idle phase without looking at progress (the controller does not count it then)', () => {
    const none = { bundleCurrent: 0, bundleTotal: 0, signedByActive: 0, signedTotal: 0 };
    const half = { bundleCurrent: 5, bundleTotal: 10, signedByActive: 3, signedTotal: 10 };
    const dueSoon = { notBefore: now - 8.5 * YEAR, notAfter: now + 1.5 * YEAR };
    for (const over of [{}, { requested: true }, { active: dueSoon }] as Partial<RotationInput>[]) {
      const decisions = [done, none, half].map((progress) => planRotation(input({ ...over, progress })));
      expect(decisions[1]).toEqual(decisions[0]);
      expect(decisions[2]).toEqual(decisions[0]);
    }
  });

  it('starts when less than 20% of the lifetime remains', () => {
    const active = { notBefore: now - 8.5 * YEAR, notAfter: now + 1.5 * YEAR };
    expect(planRotation(input({ active }))).toEqual({ action: 'start', trigger: 'Threshold' });
  });

  it('starts on request', () => {
    expect(planRotation(input({ requested: true }))).toEqual({ action: 'start', trigger: 'Requested' });
  });

  it('does not start a second rotation while one is under way', () => {
    const decision = planRotation(
      input({ phase: 'Publishing', requested: true, progress: { ...done, bundleCurrent: 3 } }),
    );
    expect(decision.action).toBe('wait');
  });

  it('keeps publishing until every Secret and trust bundle carries the new bundle', () => {
    const decision = planRotation(
      input({ phase: 'Publishing', phaseSince: now - YEAR, progress: { ...done, bundleCurrent: 9 } }),
    );
    expect(decision).toMatchObject({
      action: 'wait',
      reason: '9/10 Secrets and trust bundles carry the new bundle',
    });
  });

  it('activates the new root only after the propagation delay', () => {
    const held = now - 30_000;
    expect(planRotation(input({ phase: 'Publishing', phaseSince: held, progressHeldSince: held }))).toEqual({
      action: 'wait',
      reason: `letting kubelets propagate the change until ${new Date(held + 60_000).toISOString()} (--root-rotation-propagation-delay)`,
      recheckAt: held + 60_000,
    });
    expect(
      planRotation(
        input({ phase: 'Publishing', phaseSince: now - 120_000, progressHeldSince: now - 61_000 }),
      ),
    ).toEqual({
      action: 'activate',
    });
  });

  it('retires the old root only when every leaf comes from the new one', () => {
    const waiting = planRotation(input({ phase: 'Reissuing', progress: { ...done, signedByActive: 4 } }));
    expect(waiting).toMatchObject({ action: 'wait' });
    expect(
      planRotation(input({ phase: 'Reissuing', phaseSince: now - 120_000, progressHeldSince: now - 61_000 })),
    ).toEqual({
      action: 'retire',
    });
  });

  it('computes the due time from the lifetime share', () => {
    expect(rotationDueAt({ notBefore: 0, notAfter: 1000 }, 0.2)).toBe(800);
  });
});
