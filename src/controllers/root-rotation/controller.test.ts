import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  HANDLED_REQUEST_ANNOTATION,
  PHASE_ANNOTATION,
  PHASE_SINCE_ANNOTATION,
  ROTATE_REQUEST_ANNOTATION,
  SELF_SIGNED_SECRET,
} from '../../model/names.js';
import { decodeCertificatesPem } from '../../pki/pem.js';
import { AuthorityController } from '../authority/controller.js';
import { CertificateAuthorityController } from '../certificate-authority/controller.js';
import { CA_NAMESPACE, type ControllerTestBed, controllerTestBed } from '../testing.js';
import { WorkloadQueries } from '../workload-secrets/queries.js';
import { progressDelayMs, RootRotationController } from './controller.js';

const CR_PATH = '/apis/alcazar.dev/v1alpha1/certificateauthorities/default';
const CA_SECRET_PATH = `/api/v1/namespaces/${CA_NAMESPACE}/secrets/${SELF_SIGNED_SECRET}`;
const DWELL_MS = 120_000;

let bed: ControllerTestBed;
const running: Array<{ stop(): Promise<void> }> = [];

afterEach(async () => {
  for (const c of running.splice(0).reverse()) await c.stop();
  await bed?.stop();
});

async function startAll(spec: Record<string, unknown> = {}) {
  bed = controllerTestBed();
  bed.api.seed(CR_PATH, {
    apiVersion: 'alcazar.dev/v1alpha1',
    kind: 'CertificateAuthority',
    metadata: { name: 'default' },
    spec,
  });
  await bed.start();
  return startControllers();
}

/** The status, authority and rotation controllers on the bed (again, after a restart). */
async function startControllers() {
  const workloads = new WorkloadQueries(bed.caches, CA_NAMESPACE);
  const common = { caches: bed.caches, raw: bed.api, log: bed.log, canWrite: () => true, clock: bed.clock };
  const status = new CertificateAuthorityController({
    ...common,
    workloads,
    events: bed.events,
    statusIntervalMs: 3_600_000,
  });
  const authority = new AuthorityController({ ...common, namespace: CA_NAMESPACE });
  const rotation = new RootRotationController({
    ...common,
    namespace: CA_NAMESPACE,
    events: bed.events,
    workloads,
    checkIntervalMs: 3_600_000,
    dwellMs: DWELL_MS,
  });
  running.push(status, authority, rotation);
  await status.start();
  await authority.start();
  await bed.settle();
  await authority.reevaluate();
  await rotation.start();
  await bed.settle();
  return { rotation, status, authority };
}

const caSecret = () => bed.api.get(CA_SECRET_PATH)!;
/** The authority in use was loaded from the Secret as stored (a step's reload is not under way). */
const caLoadedFromStoredSecret = () => {
  const state = bed.caches.state.authority.current;
  return state.status === 'ready' && state.loadedFrom === caSecret().metadata?.resourceVersion;
};
const bundleSize = () =>
  decodeCertificatesPem(
    Buffer.from(caSecret().data['root-cert.pem'] ?? caSecret().data['ca-cert.pem'], 'base64'),
  ).length;

describe('RootRotationController', () => {
  it('replaces a root that ended while no controller ran: it still loads, and the rotation makes a new one', async () => {
    const HOUR = 3_600_000;
    await startAll({ rootCA: { selfSigned: { ttl: '10h' } }, workloadCertificates: { ttl: '1h' } });
    // Everything stops, and the cluster stays off past the root's end.
    for (const c of running.splice(0).reverse()) await c.stop();
    await bed.clock.advance(11 * HOUR);
    const { authority, rotation } = await startControllers();
    expect(authority.current.status, 'the ended root loads (refused, it deadlocked the rotation)').toBe(
      'ready',
    );
    await bed.until('Publishing', () => rotation.status.phase === 'Publishing');
    await bed.clock.advance(DWELL_MS + 1_000);
    await bed.until('Reissuing', () => rotation.status.phase === 'Reissuing');
    await bed.until('a new root signs', () => {
      const state = authority.current;
      return state.status === 'ready' && state.authority.signer.notAfter.getTime() > bed.clock.now() + HOUR;
    });
  });

  it('shows Idle once the CA is switched to plugged-in mode mid-rotation (Secret events then no longer wake it)', async () => {
    const { rotation } = await startAll();
    await bed.api.request('PATCH', CR_PATH, {
      metadata: { annotations: { [ROTATE_REQUEST_ANNOTATION]: 'now' } },
    });
    await bed.until('Publishing', () => bed.caches.state.rotation.current?.phase === 'Publishing');
    const config = bed.caches.state.config.current;
    bed.caches.state.config.set({ ...config, root: { ...config.root, mode: 'PluggedIn' } });
    await bed.until('Idle', () => bed.caches.state.rotation.current?.phase === 'Idle');
    expect(rotation.status.message).toContain('plugged-in');
  });

  it('starts a requested rotation as soon as the annotation arrives, without waiting for a check', async () => {
    const { rotation } = await startAll();
    expect(rotation.status.phase).toBe('Idle');
    await bed.api.request('PATCH', CR_PATH, {
      metadata: { annotations: { [ROTATE_REQUEST_ANNOTATION]: 'now' } },
    });
    // No time passes on the clock: only the new key's generation is waited for.
    await bed.until('Publishing', () => bed.caches.state.rotation.current?.phase === 'Publishing');
    expect(caSecret().metadata?.annotations?.[PHASE_ANNOTATION]).toBe('Publishing');
    expect(caSecret().metadata?.annotations?.[HANDLED_REQUEST_ANNOTATION]).toBe('now');
    expect(bundleSize()).toBe(2);
    expect(bed.caches.state.rotation.current?.phase).toBe('Publishing');
    expect(bed.events.reasons()).toContain('RootRotationStart');
  });

  it('does not look again for a write of the CertificateAuthority status, only for its request annotation', async () => {
    const { rotation } = await startAll();
    await bed.api.request('PATCH', CR_PATH, {
      metadata: { annotations: { [ROTATE_REQUEST_ANNOTATION]: 'now' } },
    });
    await bed.until('Publishing', () => bed.caches.state.rotation.current?.phase === 'Publishing');
    await bed.until('the CA loaded with both roots', () => {
      const state = bed.caches.state.authority.current;
      return state.status === 'ready' && state.authority.roots.length === 2;
    });
    await rotation.check(); // whatever the start of the rotation queued is done
    await bed.settle();
    const looks = vi.spyOn(rotation, 'reconcile');
    await bed.api.request('PATCH', `${CR_PATH}/status`, { status: { observedGeneration: 7 } });
    await bed.settle();
    expect(looks).not.toHaveBeenCalled();
    await bed.api.request('PATCH', CR_PATH, {
      metadata: { annotations: { [ROTATE_REQUEST_ANNOTATION]: 'again' } },
    });
    await bed.settle();
    expect(looks).toHaveBeenCalled();
  });

  it('waits longer between looks at progress the more Secrets each look walks', () => {
    expect(progressDelayMs(0)).toBe(1_000);
    expect(progressDelayMs(10_000)).toBe(1_000);
    expect(progressDelayMs(100_000)).toBe(10_000);
    expect(progressDelayMs(5_000_000)).toBe(30_000);
  });

  it('as a follower, does not walk the workload Secrets for progress during a rotation', async () => {
    const { rotation } = await startAll();
    await bed.api.request('PATCH', CR_PATH, {
      metadata: { annotations: { [ROTATE_REQUEST_ANNOTATION]: '1' } },
    });
    await bed.until('Publishing', () => rotation.status.phase === 'Publishing');
    const queries = new WorkloadQueries(bed.caches, CA_NAMESPACE);
    const walks = vi.spyOn(queries, 'rotationProgress');
    const follower = new RootRotationController({
      caches: bed.caches,
      raw: bed.api,
      log: bed.log,
      canWrite: () => false,
      clock: bed.clock,
      namespace: CA_NAMESPACE,
      events: bed.events,
      workloads: queries,
      checkIntervalMs: 3_600_000,
      dwellMs: DWELL_MS,
    });
    running.push(follower);
    await follower.start();
    await follower.check();
    expect(walks).not.toHaveBeenCalled();
    expect(bed.caches.state.rotation.current).toMatchObject({
      phase: 'Publishing',
      message: 'the leader carries the rotation on',
    });
  });

  it('takes no step while the CA in use was loaded from an older version of its Secret', async () => {
    const { rotation } = await startAll();
    await bed.api.request('PATCH', CR_PATH, {
      metadata: { annotations: { [ROTATE_REQUEST_ANNOTATION]: '1' } },
    });
    await bed.until(
      'Publishing, loaded',
      () => rotation.status.phase === 'Publishing' && caLoadedFromStoredSecret(),
    );
    const loaded = bed.caches.state.authority.current;
    if (loaded.status !== 'ready') throw new Error('not ready');
    // As while the authority controller is still loading the newest version.
    bed.caches.state.authority.set({ ...loaded, loadedFrom: 'an older one' });
    await bed.clock.advance(DWELL_MS + 2_000);
    await rotation.check();
    expect(caSecret().metadata?.annotations?.[PHASE_ANNOTATION]).toBe('Publishing');
    bed.caches.state.authority.set(loaded);
    await rotation.check();
    expect(caSecret().metadata?.annotations?.[PHASE_ANNOTATION]).toBe('Reissuing');
  });

  it('moves through every phase on the clock, and the status follows each one', async () => {
    const { rotation } = await startAll();
    const statusWrites = () =>
      bed.api.writes.filter((w) => w.method === 'PATCH' && w.path.startsWith(`${CR_PATH}/status`));
    await bed.api.request('PATCH', CR_PATH, {
      metadata: { annotations: { [ROTATE_REQUEST_ANNOTATION]: '1' } },
    });
    const phaseOfLastWrite = () =>
      (statusWrites().at(-1)?.body as { status?: { rotation?: { phase: string } } } | undefined)?.status
        ?.rotation?.phase;
    await bed.until('the Publishing status', () => phaseOfLastWrite() === 'Publishing');
    await bed.until('the CA loaded from the Publishing Secret', caLoadedFromStoredSecret);

    // Nothing to publish to (no managed workloads): the hand-over waits only for the dwell time.
    await bed.clock.advance(DWELL_MS - 1_000);
    expect(rotation.status.phase).toBe('Publishing');
    await bed.clock.advance(2_000);
    expect(caSecret().metadata?.annotations?.[PHASE_ANNOTATION]).toBe('Reissuing');
    expect(phaseOfLastWrite()).toBe('Reissuing');
    const reissuingSince = bed.caches.state.rotation.current?.phaseSince;
    expect(reissuingSince).toBeDefined();
    await bed.until('the CA loaded from the Reissuing Secret', caLoadedFromStoredSecret);

    await bed.clock.advance(DWELL_MS + 1_000);
    expect(caSecret().metadata?.annotations?.[PHASE_ANNOTATION]).toBeUndefined();
    expect(caSecret().metadata?.annotations?.[PHASE_SINCE_ANNOTATION]).toBeUndefined();
    expect(bundleSize()).toBe(1);
    expect(rotation.status.phase).toBe('Idle');
    // The status loses phaseSince and startedAt: a merge patch needs explicit nulls for that.
    await bed.until('the Idle status', () => bed.api.get(CR_PATH)?.status?.rotation?.phase === 'Idle');
    expect(bed.api.get(CR_PATH)?.status?.rotation).not.toHaveProperty('phaseSince');
    expect(bed.api.get(CR_PATH)?.status?.rotation).not.toHaveProperty('startedAt');
    const rotations = statusWrites().map(
      (w) => (w.body as { status: { rotation: Record<string, unknown> } }).status.rotation,
    );
    expect(rotations).toContainEqual(
      expect.objectContaining({ phase: 'Idle', phaseSince: null, startedAt: null }),
    );
  });

  it('writes status with the field manager alcazar', async () => {
    await startAll();
    const writes = bed.api.writes.filter((w) => w.path.startsWith(`${CR_PATH}/status`));
    expect(writes.length).toBeGreaterThan(0);
    for (const w of writes)
      expect(new URL(`http://x${w.path}`).searchParams.get('fieldManager')).toBe('alcazar');
  });
});
