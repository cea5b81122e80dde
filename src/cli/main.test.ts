// The `alcazar controller` process as a user or a kubelet sees it when it cannot start.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const MAIN = join(import.meta.dirname, 'main.ts');

/** A kubeconfig naming a server nobody answers at: start-up fails before it would be asked. */
function writeKubeconfig(dir: string): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]',
      'users: [{name: u, user: {token: not-a-real-token}}]',
      'contexts: [{name: x, context: {cluster: c, user: u}}]',
      'current-context: x',
    ].join('\n'),
  );
  return path;
}

describe('alcazar controller start-up', () => {
  it('a mistyped flag exits 2, names it, and says where the flags are listed', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'controller', '--log-levle', 'debug'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('unknown flag --log-levle');
    expect(stderr).toContain('alcazar controller --help lists every flag');
  });

  let occupant: Server | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (occupant ? occupant.close(resolve) : resolve(undefined)));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a telemetry port in use ends the process with exit 1 and the reason, after the CSR API bound', async () => {
    occupant = createServer();
    await new Promise<void>((resolve) => occupant!.listen(0, resolve));
    const { port } = occupant.address() as { port: number };
    dir = mkdtempSync(join(tmpdir(), 'alcazar-main-'));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        'controller',
        `--kubeconfig=${writeKubeconfig(dir)}`,
        `--http-port=${port}`,
        '--csr-port=0',
        '--log-format=json',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.resume();
    // Before the fix the listening CSR server kept the process alive: this never resolved.
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(stdout).toMatch(/"msg":"serving the CSR API/);
    expect(stdout).toMatch(
      /"level":"fatal".*"msg":"cannot start the controller: cannot serve telemetry on \*:\d+: listen EADDRINUSE/,
    );
    expect(code).toBe(1);
  }, 60_000);
});
