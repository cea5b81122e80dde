import { describe, expect, it } from 'vitest';
import { type LabelSelector, matchesLabelSelector } from './label-selector.js';

const labels = { team: 'payments', env: 'prod' };

describe('matchesLabelSelector', () => {
  it.each<[string, LabelSelector, boolean]>([
    ['an empty selector matches everything', {}, true],
    ['matchLabels all present', { matchLabels: { team: 'payments', env: 'prod' } }, true],
    ['matchLabels one differs', { matchLabels: { team: 'payments', env: 'dev' } }, false],
    ['matchLabels key absent', { matchLabels: { tier: 'web' } }, false],
    [
      'In with the value',
      { matchExpressions: [{ key: 'env', operator: 'In', values: ['dev', 'prod'] }] },
      true,
    ],
    ['In without the value', { matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] }, false],
    ['In on an absent key', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] }, false],
    [
      'NotIn with the value',
      { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] },
      false,
    ],
    [
      'NotIn on an absent key',
      { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['x'] }] },
      true,
    ],
    ['Exists', { matchExpressions: [{ key: 'team', operator: 'Exists' }] }, true],
    ['Exists on an absent key', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, false],
    ['DoesNotExist', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, true],
    [
      'DoesNotExist on a present key',
      { matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] },
      false,
    ],
    [
      'every term must hold',
      {
        matchLabels: { team: 'payments' },
        matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }],
      },
      false,
    ],
  ])('%s', (_, selector, expected) => {
    expect(matchesLabelSelector(selector, labels)).toBe(expected);
  });

  it('does not take inherited properties for labels', () => {
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'toString', operator: 'Exists' }] }, {})).toBe(
      false,
    );
  });
});
