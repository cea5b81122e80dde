// The container image, checked without a Docker engine: the Dockerfile is
// carried out stage by stage (support/dockerfile.ts), and the controller then
// runs from the final stage's tree the way the Deployment runs it: as the
// image's non-root user, on files it cannot write, with only the image's
// environment. It must do its job and, on SIGTERM, release its Lease and exit 0.
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readState } from '../cluster/controlplane.js';
import { credentialsIn, kubeconfigYaml } from '../cluster/credentials.js';
import { repoRoot } from '../cluster/paths.js';
import { type ControllerProcess, startController } from './support/controller.js';
import { buildImage, type Image } from './support/dockerfile.js';
import { adminKubeConfig, createTestNamespace } from './support/kube.js';
import { withLogExcerpt } from './support/log-excerpt.js';
import { waitForWorkloadSecret } from './support/workload.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const leases = kc.makeApiClient(CoordinationV1Api);
const cleanups: Array<() => Promise<void> | void> = [];
let image: Image;
let controller: ControllerProcess | undefined;

beforeAll(() => {
  const out = mkdtempSync(join(tmpdir(), 'alcazar-image-'));
  cleanups.push(() => rmSync(out, { recursive: true, force: true }));
  chmodSync(out, 0o755); // the image's user must reach its root
  image = buildImage(join(repoRoot, 'Dockerfile'), repoRoot, out);
}, 300_000);

afterAll(async () => {
  await controller?.kill();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Where a path of the image is on this machine. */
const inImage = (path: string) => join(image.root, path);

describe('the container image (Dockerfile carried out without a Docker engine)', () => {
  it('holds the compiled controller and production dependencies only, and runs as a non-root user', () => {
    expect(image.argv).toEqual(['node', '/app/dist/cli/main.js', 'controller']);
    expect(existsSync(inImage('/app/dist/cli/main.js'))).toBe(true);
    expect(existsSync(inImage('/app/node_modules/@kubernetes/client-node/package.json'))).toBe(true);
    // Dev dependencies and sources stay in the build stage.
    for (const absent of ['typescript', 'vitest', 'node-forge', 'tsx']) {
      expect(existsSync(inImage(`/app/node_modules/${absent}`)), absent).toBe(false);
    }
    expect(existsSync(inImage('/app/src'))).toBe(false);
    expect(image.user).toEqual({ uid: 65532, gid: 65532 });
    expect(image.env.NODE_ENV).toBe('production');
  });

  it('issues certificates as its own user on a tree it cannot write, and releases its Lease on SIGTERM', async () => {
    const state = readState();
    if (!state) throw new Error('no control plane state (ALCAZAR_CLUSTER_DIR)');
    const user = image.user!;
    // The pod's credentials, readable by the image's user only (a mounted token would be, too).
    const creds = credentialsIn(join(state.dir, 'pki'));
    const kubeconfig = join(image.root, '..', 'kubeconfig');
    writeFileSync(
      kubeconfig,
      kubeconfigYaml({
        server: state.server,
        caCert: creds.caCert,
        cert: creds.adminCert,
        key: creds.adminKey,
        user: 'alcazar-admin',
      }),
      { mode: 0o600 },
    );
    chownSync(kubeconfig, user.uid, user.gid);

    const ca = await createTestNamespace(core, 'image-ca');
    cleanups.push(ca.remove);
    const ns = await createTestNamespace(core, 'image');
    cleanups.push(ns.remove);

    const [node, ...rest] = image.argv;
    controller = await startController({
      caNamespace: ca.name,
      kubeconfig,
      args: ['--leader-elect', '--identity=image-0'],
      program: {
        // The base image's node is this machine's Node 20; paths in the image map into its root.
        argv: [
          node === 'node' ? process.execPath : node!,
          ...rest.map((a) => (a.startsWith('/') ? inImage(a) : a)),
        ],
        cwd: inImage(image.workdir),
        env: image.env,
        uid: user.uid,
        gid: user.gid,
      },
    });
    const proc = controller;
    expect(readFileSync(`/proc/${proc.pid}/status`, 'utf8')).toMatch(
      new RegExp(`^Uid:\\s+${user.uid}\\s`, 'm'),
    );
    await withLogExcerpt(proc, waitForWorkloadSecret(core, ns.name, 'default'));
    const held = await leases.readNamespacedLease({ namespace: ca.name, name: 'alcazar-leader' });
    expect(held.spec?.holderIdentity).toBe('image-0');

    await proc.stop();
    expect(await proc.exited).toBe(0);
    controller = undefined;
    const released = await leases.readNamespacedLease({ namespace: ca.name, name: 'alcazar-leader' });
    expect(released.spec?.holderIdentity ?? '').toBe('');
    // Nothing it tried to do needed a writable file system or a home directory.
    expect(proc.lines.filter((l) => /EACCES|EROFS|permission denied/i.test(JSON.stringify(l)))).toEqual([]);
    expect(proc.lines.filter((l) => l.level === 'stderr')).toEqual([]);
  });
});
