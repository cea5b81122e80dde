// Builds kube-apiserver, kube-controller-manager and etcd from the Go module in
// hack/controlplane and caches the binaries by a key derived from everything
// that decides their content, so a rebuild happens only when the pinned
// release (or the build recipe) changes.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { withLock } from './lock.js';
import { repoRoot } from './paths.js';

export const KUBERNETES_VERSION = 'v1.34.4';

export const COMPONENTS = ['kube-apiserver', 'kube-controller-manager', 'etcd'] as const;
export type Component = (typeof COMPONENTS)[number];

const moduleDir = join(repoRoot, 'hack', 'controlplane');
const packages: Record<Component, string> = {
  'kube-apiserver': 'k8s.io/kubernetes/cmd/kube-apiserver',
  'kube-controller-manager': 'k8s.io/kubernetes/cmd/kube-controller-manager',
  etcd: './cmd/etcd',
};

function versionLdflags(): string {
  const [major, minor] = KUBERNETES_VERSION.slice(1).split('.');
  const pkg = 'k8s.io/component-base/version';
  return [
    '-s -w',
    `-X ${pkg}.gitVersion=${KUBERNETES_VERSION}`,
    `-X ${pkg}.gitMajor=${major}`,
    `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`,
  ].join(' ');
}

export function cacheRoot(): string {
  const base = process.env.ALCAZAR_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'));
  return join(base, 'alcazar', 'controlplane');
}

function buildKey(): string {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'cmd/etcd/main.go']) {
    hash.update(file).update(readFileSync(join(moduleDir, file)));
  }
  hash.update(versionLdflags());
  hash.update(execFileSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' }).trim());
  return `${KUBERNETES_VERSION}-${hash.digest('hex').slice(0, 12)}`;
}

export type Binaries = Record<Component, string>;

function binariesIn(dir: string): Binaries {
  return Object.fromEntries(COMPONENTS.map((c) => [c, join(dir, c)])) as Binaries;
}

function allPresent(bins: Binaries): boolean {
  return COMPONENTS.every((c) => existsSync(bins[c]));
}

/** Returns the cached binaries, building them first when the cache has none for this key. */
export async function ensureBinaries(log: (line: string) => void = console.error): Promise<Binaries> {
  const dir = join(cacheRoot(), buildKey());
  const cached = binariesIn(dir);
  if (allPresent(cached)) return cached;
  mkdirSync(cacheRoot(), { recursive: true });
  return withLock(join(cacheRoot(), '.build.lock'), async () => {
    if (allPresent(cached)) return cached; // another process built it while we waited
    const staging = `${dir}.partial-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    log(`building Kubernetes ${KUBERNETES_VERSION} control plane from Go modules into ${dir}`);
    log('(a cold build takes several minutes; later runs reuse the cache)');
    const started = Date.now();
    await runGoBuild(staging);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    log(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return cached;
  });
}

function runGoBuild(outDir: string): Promise<void> {
  const args = [
    'build',
    '-trimpath',
    '-o',
    `${outDir}/`,
    '-ldflags',
    versionLdflags(),
    ...Object.values(packages),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('go', args, {
      cwd: moduleDir,
      env: { ...process.env, CGO_ENABLED: '0' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', (err) =>
      reject(new Error(`cannot run go (is Go installed and on PATH?): ${err.message}`)),
    );
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`go build failed (exit ${code ?? signal}); see output above`));
    });
  });
}
