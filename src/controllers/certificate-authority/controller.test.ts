import { afterEach, describe, expect, it } from 'vitest';
import { type ControllerTestBed, controllerTestBed, readyAuthority } from '../testing.js';
import { WorkloadQueries } from '../workload-secrets/queries.js';
import { mergePatchFor as withRemovals } from './configuration.js';
import { CertificateAuthorityController } from './controller.js';

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

describe('CertificateAuthorityController', () => {
  const CR_PATH = '/apis/alcazar.dev/v1alpha1/certificateauthorities/default';
  let bed: ControllerTestBed;
  afterEach(() => bed?.stop());

  it('after leading again, keeps the transition times another leader wrote meanwhile', async () => {
    bed = controllerTestBed();
    bed.api.seed(CR_PATH, {
      apiVersion: 'alcazar.dev/v1alpha1',
      kind: 'CertificateAuthority',
      metadata: { name: 'default' },
      spec: {},
    });
    await bed.start();
    await readyAuthority(bed);
    const { state } = bed.caches;
    state.rotation.set({ phase: 'Idle', message: 'not due' });
    let leading = true;
    const controller = bed.track(
      new CertificateAuthorityController({
        caches: bed.caches,
        raw: bed.api,
        log: bed.log,
        canWrite: () => leading,
        workloads: new WorkloadQueries(bed.caches, 'istio-system'),
        events: bed.events,
        caNamespace: 'istio-system',
        clock: bed.clock,
        statusIntervalMs: 3_600_000,
      }),
    );
    await controller.start();
    const readyTime = () =>
      (bed.api.get(CR_PATH)?.status?.conditions as Array<{ type: string; lastTransitionTime: string }>)?.find(
        (c) => c.type === 'Ready',
      )?.lastTransitionTime;
    await bed.until('a Ready condition', () => readyTime() !== undefined);
    // Another replica leads: its Ready went False and True again, at a later time.
    leading = false;
    state.leading.set(false);
    const stored = bed.api.get(CR_PATH)!;
    const later = '2031-06-01T00:00:00Z';
    await bed.api.request('PATCH', `${CR_PATH}/status`, {
      status: {
        ...stored.status,
        conditions: (stored.status.conditions as Array<{ type: string }>).map((c) =>
          c.type === 'Ready' ? { ...c, lastTransitionTime: later, message: 'from the other leader' } : c,
        ),
      },
    });
    await bed.settle();
    leading = true;
    state.leading.set(true);
    const readyMessage = () =>
      (bed.api.get(CR_PATH)?.status?.conditions as Array<{ type: string; message: string }>)?.find(
        (c) => c.type === 'Ready',
      )?.message;
    await bed.until('the status rewritten by this replica', () => readyMessage() !== 'from the other leader');
    expect(readyTime()).toBe(later);
  });
});
