import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultCaConfig } from '../../config/ca-spec.js';
import type { HttpMethod } from '../../kube/raw.js';
import { PLUGGED_IN_SECRET, SELF_SIGNED_SECRET } from '../../model/names.js';
import { privateKeyToPem } from '../../pki/index.js';
import { createTestCa } from '../../pki/testing.js';
import { authorityOn, CA_NAMESPACE, type ControllerTestBed, controllerTestBed } from '../testing.js';
import { type AuthorityController, CREATED_SECRET_GRACE_MS } from './controller.js';
import { MISSING_ROOT_RECHECK_MS, planAuthority } from './plan.js';

const secretsPath = `/api/v1/namespaces/${CA_NAMESPACE}/secrets`;
const HOUR = 3_600_000;
let bed: ControllerTestBed;
let controller: AuthorityController | undefined;

afterEach(async () => {
  await controller?.stop();
  await bed?.stop();
  controller = undefined;
});

async function startAuthority(canWrite = true) {
  bed = controllerTestBed();
  await bed.start();
  controller = authorityOn(bed, canWrite);
  await controller.start();
  await bed.settle();
  return controller;
}

/** A started authority whose watch events are held back: it has created its root; the cache has not seen it. */
async function createdUnseen() {
  bed = controllerTestBed();
  await bed.start();
  const release = bed.api.holdWatchEvents();
  controller = authorityOn(bed);
  await controller.start();
  return { authority: controller, release };
}

const rootPosts = () => bed.api.writes.filter((w) => w.method === 'POST' && w.path === secretsPath);
const rootSecret = () => bed.api.get(`${secretsPath}/${SELF_SIGNED_SECRET}`);

describe('planAuthority', () => {
  const base = {
    mode: 'SelfSigned' as const,
    source: 'istio-system/istio-ca-secret',
    trustDomain: 'cluster.local',
    evaluatedFrom: '',
    state: { status: 'pending' as const, message: 'loading' },
    canWrite: true,
    haveLastGood: false,
  };

  it('creates a missing self-signed root as leader, restores the one in use if it had one', () => {
    expect(planAuthority({ ...base, secret: undefined })).toEqual({ action: 'create', restore: false });
    expect(planAuthority({ ...base, secret: undefined, haveLastGood: true })).toEqual({
      action: 'create',
      restore: true,
    });
  });

  it('waits for the leader as a follower, and fails plugged-in mode without cacerts', () => {
    expect(planAuthority({ ...base, secret: undefined, canWrite: false })).toMatchObject({
      action: 'publish',
      state: { status: 'pending' },
    });
    expect(planAuthority({ ...base, mode: 'PluggedIn', secret: undefined })).toMatchObject({
      action: 'publish',
      state: { status: 'failed', reason: 'MissingSecret' },
    });
  });

  it('refuses a new root when continuity says a recorded root is missing, and looks again later', () => {
    const missing = { action: 'refuse' as const, message: 'root abc is gone', missingFingerprint: 'abc' };
    for (const mode of ['SelfSigned', 'PluggedIn'] as const) {
      expect(planAuthority({ ...base, mode, secret: undefined, missing })).toEqual({
        action: 'publish',
        state: { status: 'failed', reason: 'RootMissing', message: 'root abc is gone' },
        recheckAfterMs: MISSING_ROOT_RECHECK_MS,
      });
    }
  });

  it('creates an accepted new root with the old roots, but restores a root held in memory first', () => {
    const missing = { action: 'accept' as const, request: 'r1', previousRoots: [] };
    expect(planAuthority({ ...base, secret: undefined, missing })).toEqual({
      action: 'create',
      restore: false,
      accepted: missing,
    });
    expect(planAuthority({ ...base, secret: undefined, missing, canWrite: false })).toMatchObject({
      action: 'publish',
      state: { status: 'pending' },
    });
    expect(planAuthority({ ...base, secret: undefined, haveLastGood: true })).toEqual({
      action: 'create',
      restore: true,
    });
  });

  it('does not validate an unchanged Secret again', () => {
    const secret = { uid: 'u', resourceVersion: '7' };
    const first = planAuthority({ ...base, secret });
    expect(first.action).toBe('load');
    const inputKey = (first as { inputKey: string }).inputKey;
    const ready = { status: 'failed' as const, reason: 'x', message: 'y' };
    expect(planAuthority({ ...base, secret, evaluatedFrom: inputKey, state: ready })).toEqual({
      action: 'none',
    });
    expect(
      planAuthority({
        ...base,
        secret: { uid: 'u', resourceVersion: '8' },
        evaluatedFrom: inputKey,
        state: ready,
      }).action,
    ).toBe('load');
  });
});

describe('AuthorityController', () => {
  it('creates istio-ca-secret when there is none, then loads it from the watch', async () => {
    const authority = await startAuthority();
    const created = bed.api.writes.filter((w) => w.method === 'POST' && w.path === secretsPath);
    expect(created).toHaveLength(1);
    expect(bed.api.get(`${secretsPath}/${SELF_SIGNED_SECRET}`)?.metadata?.labels).toEqual({
      'app.kubernetes.io/managed-by': 'alcazar',
    });
    await authority.reevaluate();
    expect(authority.current.status).toBe('ready');
  });

  it('refuses to make a root while continuity says one is missing, asks again on the clock, records what loads', async () => {
    bed = controllerTestBed();
    await bed.start();
    let refuse = true;
    const asked: string[] = [];
    const recorded: string[] = [];
    controller = authorityOn(bed, true, {
      whenMissing: async (mode, source) => {
        asked.push(`${mode} ${source}`);
        return refuse
          ? { action: 'refuse', message: `${source} is missing`, missingFingerprint: 'ab' }
          : { action: 'create' };
      },
      recordLoaded: async (authority) => {
        recorded.push(authority.generation);
      },
    });
    await controller.start();
    expect(controller.current).toMatchObject({ status: 'failed', reason: 'RootMissing' });
    expect(asked).toEqual([`SelfSigned ${CA_NAMESPACE}/${SELF_SIGNED_SECRET}`]);
    expect(bed.api.writes.filter((w) => w.method === 'POST' && w.path === secretsPath)).toHaveLength(0);
    refuse = false;
    await bed.clock.advance(MISSING_ROOT_RECHECK_MS);
    await bed.until('the CA', () => controller!.current.status === 'ready');
    expect(asked.length).toBeGreaterThanOrEqual(2);
    expect(recorded.length).toBeGreaterThanOrEqual(1);
  });

  it('signs with the root it created before its watch delivers it, and never makes a second one', async () => {
    const { authority, release } = await createdUnseen();
    // The watch has not delivered istio-ca-secret yet: look again twice (a config or CR event would).
    await authority.reevaluate();
    await authority.reevaluate();
    expect(authority.current.status).toBe('ready');
    const signing = authority.current.status === 'ready' ? authority.current.authority : undefined;
    const storedRoot = new X509Certificate(Buffer.from(rootSecret()!.data['ca-cert.pem'], 'base64'));
    expect(signing?.signerCertificateDer.equals(storedRoot.raw)).toBe(true);
    release();
    await bed.settle();
    await authority.reevaluate();
    expect(rootPosts()).toHaveLength(1);
    expect(authority.current.status).toBe('ready');
  });

  it('re-creates its root at once when the cache sees the Secret it created deleted', async () => {
    const { authority, release } = await createdUnseen();
    expect(authority.current.status).toBe('ready');
    await bed.api.request('DELETE', `${secretsPath}/${SELF_SIGNED_SECRET}`);
    release(); // the cache hears of the create and the deletion together
    await bed.until('istio-ca-secret re-created', () => rootSecret() !== undefined);
    expect(rootPosts()).toHaveLength(2);
  });

  it('re-creates its root at once when the cache hears of its creation and deletion before the create answers', async () => {
    bed = controllerTestBed();
    await bed.start();
    const request = bed.api.request.bind(bed.api);
    let deleted = false;
    bed.api.request = (async (method: HttpMethod, path: string, ...rest: [unknown?, string?, string?]) => {
      const answer = await request(method, path, ...rest);
      if (method === 'POST' && path === secretsPath && !deleted) {
        deleted = true; // someone deletes it, and the watch says so, before our answer is handled
        await request('DELETE', `${secretsPath}/${SELF_SIGNED_SECRET}`);
      }
      return answer;
    }) as typeof bed.api.request;
    controller = authorityOn(bed);
    await controller.start();
    await bed.until('istio-ca-secret re-created', () => rootSecret() !== undefined);
    expect(rootPosts()).toHaveLength(2);
  });

  it('re-creates its root after the grace when the cache never hears of the Secret it created', async () => {
    const { authority, release } = await createdUnseen();
    expect(authority.current.status).toBe('ready');
    await bed.api.request('DELETE', `${secretsPath}/${SELF_SIGNED_SECRET}`);
    release(false); // the watch missed both the create and the deletion
    await bed.settle();
    await authority.reevaluate();
    expect(rootSecret(), 'not before the grace').toBeUndefined();
    await bed.clock.advance(CREATED_SECRET_GRACE_MS);
    await bed.until('istio-ca-secret re-created', () => rootSecret() !== undefined);
    expect(rootPosts()).toHaveLength(2);
  });

  it('takes a 409 on create as another replica winning the race, without failing', async () => {
    bed = controllerTestBed();
    await bed.start();
    bed.api.failNext('POST', secretsPath, 409, 'already exists');
    controller = authorityOn(bed);
    await controller.start();
    expect(controller.current.status).toBe('pending');
    expect(controller.queue.retries('authority')).toBe(0);
  });

  it('reports a failed create with the reason and retries on the clock', async () => {
    bed = controllerTestBed();
    await bed.start();
    bed.api.failNext('POST', secretsPath, 403, 'forbidden');
    controller = authorityOn(bed);
    await controller.start();
    expect(controller.current).toMatchObject({ status: 'failed', reason: 'CreateFailed' });
    expect(controller.queue.scheduled).toBe(1);
    await bed.clock.advance(1_000);
    await controller.reevaluate();
    expect(controller.current.status).toBe('ready');
  });

  it('waits for the leader to create the root when it is a follower', async () => {
    const authority = await startAuthority(false);
    expect(bed.api.writes).toEqual([]);
    expect(authority.current).toMatchObject({ status: 'pending' });
  });

  it('re-creates a deleted istio-ca-secret with the root in use', async () => {
    const authority = await startAuthority();
    await authority.reevaluate();
    const before = bed.api.get(`${secretsPath}/${SELF_SIGNED_SECRET}`)!;
    await bed.api.request('DELETE', `${secretsPath}/${SELF_SIGNED_SECRET}`);
    await bed.settle();
    await authority.reevaluate();
    const after = bed.api.get(`${secretsPath}/${SELF_SIGNED_SECRET}`)!;
    expect(after.metadata?.uid).not.toBe(before.metadata?.uid);
    expect(after.data['ca-cert.pem']).toBe(before.data['ca-cert.pem']);
    expect(after.data['ca-key.pem']).toBe(before.data['ca-key.pem']);
  });

  it('re-creates it with the rotation state it had (phase, start, handled request), not as Idle', async () => {
    const authority = await startAuthority();
    await authority.reevaluate();
    const path = `${secretsPath}/${SELF_SIGNED_SECRET}`;
    const rotating = {
      'alcazar.dev/rotation-phase': 'Reissuing',
      'alcazar.dev/rotation-phase-since': '2030-01-01T00:00:00Z',
      'alcazar.dev/rotation-started-at': '2029-12-31T00:00:00Z',
      'alcazar.dev/rotation-request': 'r1',
    };
    await bed.api.request('PATCH', path, {
      metadata: { annotations: { ...rotating, 'example.com/other': 'x' } },
    });
    await bed.settle();
    await authority.reevaluate();
    await bed.api.request('DELETE', path);
    await bed.settle();
    await authority.reevaluate();
    const after = bed.api.get(path)!;
    expect(after.metadata?.annotations).toEqual(rotating);
  });

  /** A started plugged-in authority whose cacerts holds a self-signed root of this validity. */
  async function pluggedIn(validity: { notBefore: number; notAfter: number }) {
    bed = controllerTestBed();
    await bed.start();
    const ca = await createTestCa({
      notBefore: new Date(validity.notBefore),
      notAfter: new Date(validity.notAfter),
    });
    const pem = Buffer.from(ca.root.pem).toString('base64');
    await bed.api.request('POST', secretsPath, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: PLUGGED_IN_SECRET, namespace: CA_NAMESPACE },
      data: {
        'ca-cert.pem': pem,
        'ca-key.pem': Buffer.from(privateKeyToPem(ca.keys.privateKey)).toString('base64'),
        'root-cert.pem': pem,
        'cert-chain.pem': pem,
      },
    });
    const config = defaultCaConfig();
    bed.caches.state.config.set({ ...config, root: { ...config.root, mode: 'PluggedIn' } });
    controller = authorityOn(bed);
    await controller.start();
    return { config, ca };
  }

  it('loads a plugged-in signer not valid yet once its time comes, by itself', async () => {
    const start = Date.parse('2030-01-01T00:00:00Z'); // the bed's clock
    await pluggedIn({ notBefore: start + 30_000, notAfter: start + 100 * HOUR });
    expect(controller!.current).toMatchObject({ status: 'failed', reason: 'SignerNotYetValid' });
    await bed.clock.advance(31_000);
    await bed.until('the CA', () => controller!.current.status === 'ready');
  });

  it('shows a cacerts swap to a key it cannot sign with as failed, instead of signing on with the old one', async () => {
    const start = Date.parse('2030-01-01T00:00:00Z');
    await pluggedIn({ notBefore: start - HOUR, notAfter: start + 100 * HOUR });
    await bed.until('the CA', () => controller!.current.status === 'ready');
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
    await bed.api.request('PATCH', `${secretsPath}/${PLUGGED_IN_SECRET}`, {
      data: {
        'ca-key.pem': Buffer.from(p521.export({ type: 'pkcs8', format: 'pem' }) as string).toString('base64'),
      },
    });
    await bed.until('UnsupportedKey', () => controller!.current.status === 'failed');
    expect(controller!.current).toMatchObject({ status: 'failed', reason: 'UnsupportedKey' });
  });

  it('goes not ready when a plugged-in signer has less than the grace period left, as a restart would', async () => {
    const start = Date.parse('2030-01-01T00:00:00Z');
    const { config } = await pluggedIn({ notBefore: start - HOUR, notAfter: start + 2 * HOUR });
    await bed.until('the CA', () => controller!.current.status === 'ready');
    const grace = config.workload.minGracePeriodMs;
    await bed.clock.advance(start + 2 * HOUR - grace - bed.clock.now() - 1_000);
    expect(controller!.current.status).toBe('ready');
    await bed.clock.advance(2_000);
    await bed.until('SignerExpiring', () => controller!.current.status === 'failed');
    expect(controller!.current).toMatchObject({ status: 'failed', reason: 'SignerExpiring' });
    expect((controller!.current as { message: string }).message).toContain('expires too soon');
  });

  it('fails plugged-in mode without cacerts, saying which Secret is missing', async () => {
    bed = controllerTestBed();
    await bed.start();
    const config = defaultCaConfig();
    bed.caches.state.config.set({ ...config, root: { ...config.root, mode: 'PluggedIn' } });
    controller = authorityOn(bed);
    await controller.start();
    expect(controller.current).toMatchObject({ status: 'failed', reason: 'MissingSecret' });
    expect((controller.current as { message: string }).message).toContain('istio-system/cacerts');
  });
});
