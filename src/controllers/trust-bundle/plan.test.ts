import { describe, expect, it } from 'vitest';
import type { TrustBundleView } from './observe.js';
import { planTrustBundle } from './plan.js';

const ours = (over: Partial<TrustBundleView> = {}): TrustBundleView => ({
  uid: 'u',
  resourceVersion: '1',
  owned: true,
  labelled: true,
  dataKeys: ['root-cert.pem'],
  bundleHash: 'h1',
  ...over,
  contentHash: 'bundleHash' in over ? over.bundleHash : 'h1',
});

describe('planTrustBundle', () => {
  it.each<[string, Parameters<typeof planTrustBundle>[0], string, string?]>([
    [
      'a managed namespace without one gets it',
      { managed: true, terminating: false, bundleHash: 'h1' },
      'create',
    ],
    [
      'an up-to-date one is left alone',
      { managed: true, terminating: false, bundleHash: 'h1', configMap: ours() },
      'none',
    ],
    [
      'a new bundle is published',
      { managed: true, terminating: false, bundleHash: 'h2', configMap: ours() },
      'update',
      'StaleContent',
    ],
    [
      'an edited bundle is reverted',
      { managed: true, terminating: false, bundleHash: 'h1', configMap: ours({ bundleHash: undefined }) },
      'update',
      'StaleContent',
    ],
    [
      'a removed label is restored',
      { managed: true, terminating: false, bundleHash: 'h1', configMap: ours({ labelled: false }) },
      'update',
      'Edited',
    ],
    [
      'extra keys are removed',
      {
        managed: true,
        terminating: false,
        bundleHash: 'h1',
        configMap: ours({ dataKeys: ['root-cert.pem', 'x'] }),
      },
      'update',
      'Edited',
    ],
    [
      'an unmanaged namespace loses ours',
      { managed: false, terminating: false, configMap: ours() },
      'delete',
    ],
    [
      'nothing is published while the CA is not ready',
      { managed: true, terminating: false, bundleHash: undefined },
      'none',
    ],
    ['a terminating namespace is left alone', { managed: true, terminating: true, bundleHash: 'h1' }, 'none'],
  ])('%s', (_, input, action, reason) => {
    const decision = planTrustBundle(input);
    expect(decision.action).toBe(action);
    if (reason) expect(decision).toHaveProperty('reason', reason);
  });

  it('never touches a ConfigMap it does not own, managed namespace or not', () => {
    const foreign = ours({ owned: false, bundleHash: 'other' });
    expect(
      planTrustBundle({ managed: true, terminating: false, bundleHash: 'h1', configMap: foreign }).action,
    ).toBe('report');
    expect(planTrustBundle({ managed: false, terminating: false, configMap: foreign }).action).toBe('none');
  });
});
