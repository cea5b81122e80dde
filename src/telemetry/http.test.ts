import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Heartbeat, type Readiness } from './health.js';
import { startHttpServer, type TelemetryServer } from './http.js';
import { createMetrics } from './metrics.js';

const log = pino({ level: 'silent' });

describe('telemetry HTTP server', () => {
  let server: TelemetryServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function start(overrides: Partial<Parameters<typeof startHttpServer>[0]> = {}) {
    server = await startHttpServer({
      port: 0,
      host: '127.0.0.1',
      metrics: createMetrics({ defaultMetrics: false }),
      readiness: () => ({ checks: [{ name: 'caches-synced', ok: true }] }),
      log,
      ...overrides,
    });
    const base = `http://127.0.0.1:${server.port}`;
    return (path: string, init?: RequestInit) => fetch(`${base}${path}`, init);
  }

  it('binds an ephemeral port and serves the registry at /metrics', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.certificateIssued('Missing', false);
    const get = await start({ metrics });
    expect(server!.port).toBeGreaterThan(0);
    const res = await get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(metrics.contentType);
    const body = await res.text();
    expect(body).toContain('# TYPE citadel_secret_controller_csr_err_count counter');
    expect(body).toContain('alcazar_certificates_issued_total{reason="Missing"} 1');
  });

  it('reads collect callbacks on every scrape', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let depth = 1;
    metrics.setQueueProbe(() => ({ depth, scheduled: 0 }));
    const get = await start({ metrics });
    expect(await (await get('/metrics')).text()).toContain('alcazar_workqueue_depth 1\n');
    depth = 9;
    expect(await (await get('/metrics')).text()).toContain('alcazar_workqueue_depth 9\n');
  });

  it('answers /readyz 200 with the checks when all pass', async () => {
    const get = await start();
    const res = await get('/readyz');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await res.text()).toBe('[+]caches-synced ok\nreadyz check passed\n');
  });

  it('answers /readyz 503 listing the failing checks, and all of them with ?verbose', async () => {
    const readiness = (): Readiness => ({
      checks: [
        { name: 'caches-synced', ok: true },
        { name: 'ca-loaded', ok: false, message: 'waiting for the leader to create istio-ca-secret' },
      ],
    });
    const get = await start({ readiness });
    const res = await get('/readyz');
    expect(res.status).toBe(503);
    expect(await res.text()).toBe(
      '[-]ca-loaded failed: waiting for the leader to create istio-ca-secret\nreadyz check failed\n',
    );
    const verbose = await get('/readyz?verbose');
    expect(verbose.status).toBe(503);
    expect(await verbose.text()).toMatch(/^\[\+\]caches-synced ok\n\[-\]ca-loaded failed: /);
  });

  it('turns a readiness probe that throws into 503 without showing the error', async () => {
    const get = await start({
      readiness: () => {
        throw new Error('internal detail at /secret/path');
      },
    });
    const res = await get('/readyz');
    expect(res.status).toBe(503);
    expect(await res.text()).not.toContain('secret/path');
  });

  it('answers /healthz 200 while the heartbeat is fresh and 503 once it is stale', async () => {
    let now = 5_000_000;
    const liveness = new Heartbeat({ thresholdMs: 10_000, now: () => now });
    const get = await start({ liveness });
    let res = await get('/healthz');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('[+]event-loop ok\nhealthz check passed\n');
    now += 11_000;
    res = await get('/healthz');
    expect(res.status).toBe(503);
    expect(await res.text()).toBe(
      '[-]event-loop failed: no heartbeat for 11.0 s (threshold 10.0 s)\nhealthz check failed\n',
    );
  });

  it('runs its own heartbeat when none is given', async () => {
    const get = await start();
    const res = await get('/healthz?verbose');
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^\[\+\]event-loop ok: last heartbeat lag \d+ ms\n/);
  });

  it('answers 404 for unknown paths and 405 for writes', async () => {
    const get = await start();
    const missing = await get('/debug/pprof');
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe('not found\n');
    const post = await get('/metrics', { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('answers 500 without a stack trace when a scrape fails', async () => {
    const metrics = {
      contentType: 'text/plain',
      scrape: () => Promise.reject(new Error('boom at /src/telemetry/metrics.ts:1')),
    };
    const get = await start({ metrics });
    const res = await get('/metrics');
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('internal error\n');
  });

  it('rejects when the port is taken', async () => {
    await start();
    const taken = server!.port;
    await expect(
      startHttpServer({
        port: taken,
        host: '127.0.0.1',
        metrics: createMetrics({ defaultMetrics: false }),
        readiness: () => ({ checks: [] }),
        log,
      }),
    ).rejects.toThrow(/^cannot serve telemetry on 127\.0\.0\.1:\d+: listen EADDRINUSE.*--http-port=0/);
  });

  it('closes promptly even with a keep-alive connection open', async () => {
    const get = await start();
    await (await get('/healthz')).text(); // fetch keeps the connection alive
    const started = Date.now();
    await server!.close();
    server = undefined;
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
