import { describe, expect, it } from 'vitest';
import { mergePatchFor as withRemovals } from './configuration.js';

describe('withRemovals', () => {
  it('nulls the fields the status no longer has, so a merge patch removes them', () => {
    const previous = {
      rotation: { phase: 'Reissuing', phaseSince: 't1', startedAt: 't0' },
      trustDomain: 'a',
    };
    const desired = { rotation: { phase: 'Idle' }, trustDomain: 'a' };
    expect(withRemovals(previous, desired)).toEqual({
      rotation: { phase: 'Idle', phaseSince: null, startedAt: null },
      trustDomain: 'a',
    });
  });

  it('replaces arrays whole and leaves a status without a previous one as it is', () => {
    expect(withRemovals({ roots: [1, 2] }, { roots: [3] })).toEqual({ roots: [3] });
    expect(withRemovals(undefined, { phase: 'Idle' })).toEqual({ phase: 'Idle' });
  });
});
