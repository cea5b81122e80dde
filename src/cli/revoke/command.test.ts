import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT } from './args.js';
import { runRevokeCommand } from './command.js';

/** An API server that creates the CertificateRevocation, then forbids reading it. */
async function createThenForbid(): Promise<{ server: Server; kubeconfig: string; dir: string }> {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.method === 'POST') {
      res.statusCode = 201;
      res.end(
        JSON.stringify({
          apiVersion: 'alcazar.dev/v1alpha1',
          kind: 'CertificateRevocation',
          metadata: { name: 'cart-x1' },
        }),
      );
      return;
    }
    res.statusCode = 403;
    res.end(
      JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        reason: 'Forbidden',
        code: 403,
        message: 'get is forbidden',
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const dir = mkdtempSync(join(tmpdir(), 'alcazar-revoke-'));
  const kubeconfig = join(dir, 'config');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: 'http://127.0.0.1:${port}', insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: not-a-real-token } }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: x
`,
  );
  return { server, kubeconfig, dir };
}

describe('alcazar revoke --wait', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  it('exits 4 with the reason when the outcome cannot be read, instead of a stack trace', async () => {
    const { server, kubeconfig, dir } = await createThenForbid();
    cleanups.push(
      () => server.close(),
      () => rmSync(dir, { recursive: true, force: true }),
    );
    const out: string[] = [];
    const err: string[] = [];
    const code = await runRevokeCommand(['shop/cart', '--wait', '--kubeconfig', kubeconfig], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
    });
    expect(code).toBe(EXIT.apiError);
    expect(out.join('\n')).toContain('created in namespace shop');
    expect(err.join('\n')).toMatch(/created, but cannot read its outcome: .*403/);
  });
});
