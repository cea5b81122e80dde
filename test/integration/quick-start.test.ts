// The README's quick start, as a newcomer runs it: a copy of this checkout with nothing built,
// `npm ci`, `npm run local` in the foreground, the walkthrough's lines exactly as the README writes
// them, then Ctrl-C (SIGINT to the whole foreground process group). A green suite once hid a quick
// start that issued nothing; this test is the guard.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../cluster/paths.js';
import { waitFor } from './support/wait.js';

/** The sh block the README marks as the walkthrough, line by line. */
function walkthroughLines(readme: string): string[] {
  const marker = readme.indexOf('<!-- walkthrough:');
  if (marker < 0) throw new Error('README.md has no walkthrough marker');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(marker));
  if (!block?.[1]) throw new Error('README.md has no sh block after the walkthrough marker');
  return block[1].split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
}

/** The files a fresh clone of this checkout would hold (tracked, plus new files not ignored). */
function copyCheckout(to: string): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: repoRoot,
    encoding: 'utf8',
  })
    .split('\0')
    .filter((file) => file !== '' && existsSync(join(repoRoot, file)));
  for (const file of files) {
    mkdirSync(dirname(join(to, file)), { recursive: true });
    cpSync(join(repoRoot, file), join(to, file));
  }
}

/** The environment of a person's shell: none of the test run's cluster settings. */
function newcomerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('ALCAZAR_') && name !== 'ALCAZAR_CACHE_DIR') delete env[name];
    if (name.startsWith('VITEST') || name === 'KUBECONFIG' || name === 'NODE_OPTIONS') delete env[name];
  }
  return env;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the README quick start, from a fresh copy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'alcazar-quick-start-'));
  const env = newcomerEnv();
  let local: ChildProcess | undefined;
  let output = '';
  let controllerPid: number | undefined;

  const shell = (line: string) =>
    spawnSync('bash', ['-c', `export KUBECONFIG=$PWD/.local/cluster/kubeconfig\n${line}`], {
      cwd: dir,
      env,
      encoding: 'utf8',
      timeout: 120_000,
    });

  beforeAll(() => {
    copyCheckout(dir);
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], {
      cwd: dir,
      env,
      stdio: 'ignore',
      timeout: 600_000,
    });
  }, 900_000);

  afterAll(() => {
    if (local?.pid && alive(local.pid)) process.kill(-local.pid, 'SIGKILL');
    if (controllerPid && alive(controllerPid)) process.kill(controllerPid, 'SIGKILL');
    spawnSync('npm', ['run', 'cluster:down'], { cwd: dir, env, stdio: 'ignore', timeout: 120_000 });
    // A failure before the Lease named the controller leaves it running in a process group of its
    // own (holding ports 15012 and 9402): end whatever still runs in the copy.
    for (const pid of processesIn(dir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }, 180_000);

  it('issues certificates, answers the walkthrough, and stops cleanly on Ctrl-C', async () => {
    // `npm run local` in the foreground of a terminal: the leader of its own process group.
    local = spawn('npm', ['run', 'local'], {
      cwd: dir,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => {
      output += chunk.toString('utf8');
    };
    local.stdout?.on('data', collect);
    local.stderr?.on('data', collect);
    const exited = new Promise<string>((resolve) =>
      local?.on('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`)),
    );

    await waitFor('the controller to start', () => output.includes('"controller started"'), {
      timeoutMs: 600_000,
      intervalMs: 500,
    });
    expect(output).not.toMatch(/acquiring the lease failed|cannot acquire Lease/);

    const lines = walkthroughLines(readFileSync(join(dir, 'README.md'), 'utf8'));
    expect(lines[0]).toBe('export KUBECONFIG=$PWD/.local/cluster/kubeconfig');
    const results = new Map<string, string>();
    for (const line of lines.slice(1)) {
      // The Secrets of the namespaces that exist at start-up appear within the first pass.
      const run = line.startsWith('kubectl get secrets')
        ? await waitFor(`"${line}" to list istio.default in every namespace`, () => {
            const r = shell(line);
            return (
              r.status === 0 &&
              r.stdout.split('\n').filter((l) => l.includes('istio.default')).length >= 5 &&
              r
            );
          })
        : shell(line);
      expect({ line, status: run.status, stderr: run.status === 0 ? '' : run.stderr }).toEqual({
        line,
        status: 0,
        stderr: '',
      });
      results.set(line.split(' ').slice(0, 3).join(' '), run.stdout);
    }

    const secrets = results.get('kubectl get secrets') ?? '';
    for (const ns of ['default', 'istio-system', 'kube-node-lease', 'kube-public', 'kube-system']) {
      expect(secrets).toMatch(
        new RegExp(`^${ns}\\s+istio\\.default\\s+istio\\.io/key-and-cert\\s+3\\s`, 'm'),
      );
    }
    expect(results.get('kubectl create serviceaccount')).toMatch(
      /serviceaccount\/demo created\nsecret\/istio.demo condition met/,
    );
    expect(results.get('kubectl get certificateauthorities')).toMatch(
      /^default\s+cluster\.local\s+True\s+\d{4}-\d\d-\d\dT[\d:]+Z\s+\d+\s+\d+\s/m,
    );
    expect(results.get('npm run inspect')).toContain('spiffe://cluster.local/ns/default/sa/demo');

    // Who leads: the Lease names the controller's pid (<hostname>_<pid>).
    const kc = new KubeConfig();
    kc.loadFromFile(join(dir, '.local', 'cluster', 'kubeconfig'));
    const leases = kc.makeApiClient(CoordinationV1Api);
    const lease = await leases.readNamespacedLease({ namespace: 'istio-system', name: 'alcazar-leader' });
    controllerPid = Number(lease.spec?.holderIdentity?.split('_').pop());
    expect(alive(controllerPid)).toBe(true);

    // Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
    process.kill(-(local.pid as number), 'SIGINT');
    const ended = await Promise.race([
      exited,
      waitFor('exit', () => false, { timeoutMs: 15_000 }).catch(() => 'still running after 15 s'),
    ]);
    // npm re-raises the SIGINT once its script has exited, as a shell expects of an interrupted command.
    expect(['code 0', 'signal SIGINT'], output.slice(-2000)).toContain(ended);
    expect(output).toMatch(/"msg":"stopped"/);
    await waitFor('the controller process to end', () => !alive(controllerPid as number), {
      timeoutMs: 15_000,
    });
    const released = await leases.readNamespacedLease({ namespace: 'istio-system', name: 'alcazar-leader' });
    expect(released.spec?.holderIdentity ?? '').toBe('');
    expect(output).toContain('released the lease');
    expect(output).not.toContain('exiting at once');
  }, 900_000);
});

/** Processes whose working directory is in `dir` (Linux /proc). */
function processesIn(dir: string): number[] {
  const real = realpathSync(dir);
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => {
      try {
        const cwd = readlinkSync(`/proc/${pid}/cwd`);
        return pid !== process.pid && (cwd === real || cwd.startsWith(`${real}/`));
      } catch {
        return false; // gone, or not ours to read
      }
    });
}
