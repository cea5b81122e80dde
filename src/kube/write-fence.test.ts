import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RawApi } from './raw.js';
import { fencedApiClient, NotLeaderError, WriteFence } from './write-fence.js';

/** An HTTP server that answers GETs at once and holds every other request until told. */
let server: Server;
let seen: string[];
let held: Array<{ req: IncomingMessage; closed: Promise<void>; answer: () => void }>;
let kubeConfig: KubeConfig;

beforeEach(async () => {
  seen = [];
  held = [];
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const answer = () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"Secret"}');
    if (req.method === 'GET') return answer();
    const closed = new Promise<void>((resolve) => res.on('close', () => resolve()));
    held.push({ req, closed, answer });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [
      {
        name: 'c',
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
});
afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const waitUntil = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(condition()).toBe(true);
};

describe('WriteFence', () => {
  it('refuses a write begun while not leading before anything is sent', async () => {
    const raw = new RawApi(kubeConfig, 5_000, new WriteFence(() => false));
    await expect(raw.request('POST', '/api/v1/namespaces/a/secrets', {})).rejects.toBeInstanceOf(
      NotLeaderError,
    );
    expect(seen).toEqual([]);
  });

  it('aborts a write in flight when leadership ends, closing its connection', async () => {
    const fence = new WriteFence(() => true);
    const raw = new RawApi(kubeConfig, 5_000, fence);
    const write = raw.request('PATCH', '/api/v1/namespaces/a/secrets/istio.x', {});
    await waitUntil(() => held.length === 1);
    fence.revoke('stopped leading');
    await expect(write).rejects.toThrow(/write aborted: stopped leading/);
    await held[0]!.closed; // the server sees the connection go: nothing more can arrive on it
  });

  it('lets writes through while leading, and reads always', async () => {
    let leading = true;
    const fence = new WriteFence(() => leading);
    const raw = new RawApi(kubeConfig, 5_000, fence);
    const write = raw.request('POST', '/api/v1/namespaces/a/secrets', {});
    await waitUntil(() => held.length === 1);
    held[0]!.answer();
    await expect(write).resolves.toEqual({ kind: 'Secret' });
    leading = false;
    await expect(raw.request('GET', '/api/v1/namespaces/a/secrets/x')).resolves.toEqual({ kind: 'Secret' });
    fence.revoke('stopped leading'); // no write in flight: nothing to abort, reads unaffected
    await expect(raw.request('GET', '/api/v1/namespaces/a/secrets/x')).resolves.toEqual({ kind: 'Secret' });
  });

  it('fences the writes of a client-node API client the same way', async () => {
    let leading = false;
    const fence = new WriteFence(() => leading);
    const core = fencedApiClient(kubeConfig, CoreV1Api, fence);
    const body = { metadata: { name: 'x' } };
    await expect(core.createNamespacedConfigMap({ namespace: 'a', body })).rejects.toBeInstanceOf(
      NotLeaderError,
    );
    expect(seen).toEqual([]);
    await core.readNamespacedSecret({ namespace: 'a', name: 'x' });
    expect(seen).toEqual(['GET /api/v1/namespaces/a/secrets/x']);

    leading = true;
    const write = core.createNamespacedConfigMap({ namespace: 'a', body });
    await waitUntil(() => held.length === 1);
    fence.revoke('stopped leading');
    await expect(write).rejects.toThrow();
    await held[0]!.closed;
  });
});
