import { createServer, type Server } from 'node:net';
import { status } from '@grpc/grpc-js';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CsrClient } from '../../test/integration/support/csr-client.js';
import { generateKeyPair, issueLeafCertificate, privateKeyToPem } from '../pki/index.js';
import { createTestCa } from '../pki/testing.js';
import { CsrServerMetrics } from '../telemetry/csr-metrics.js';
import { Refusal } from './policy.js';
import { startCsrServer } from './server.js';
import type { CertificateService, IncomingCall } from './service.js';

describe('startCsrServer', () => {
  let occupant: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (occupant ? occupant.close(resolve) : resolve(undefined)));
    occupant = undefined;
  });

  it('a port already in use is refused with the address and the flags that avoid it', async () => {
    occupant = createServer();
    await new Promise<void>((resolve) => occupant!.listen(0, '127.0.0.1', resolve));
    const { port } = occupant.address() as { port: number };
    // Binding fails before any call reaches the service.
    const service = {} as CertificateService;
    const started = startCsrServer({
      host: '127.0.0.1',
      port,
      service,
      metrics: new CsrServerMetrics(new Registry()),
      log: pino({ level: 'silent' }),
    });
    await expect(started).rejects.toThrow(
      new RegExp(
        `^cannot serve the CSR API on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*--csr-port=0.*--csr-enabled=false`,
      ),
    );
  });

  it("grpc-js's own lines go to the log, not to stderr", async () => {
    occupant = createServer();
    await new Promise<void>((resolve) => occupant!.listen(0, '127.0.0.1', resolve));
    const { port } = occupant.address() as { port: number };
    const lines: Array<{ level: number; component?: string; msg: string }> = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const stderr = vi.spyOn(process.stderr, 'write');
    const consoleError = vi.spyOn(console, 'error');
    try {
      const started = startCsrServer({
        host: '127.0.0.1',
        port,
        service: {} as CertificateService,
        metrics: new CsrServerMetrics(new Registry()),
        log,
      });
      await expect(started).rejects.toThrow(/cannot serve the CSR API/);
      expect(stderr).not.toHaveBeenCalled();
      expect(consoleError).not.toHaveBeenCalled();
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: 20,
          component: 'grpc-js',
          msg: expect.stringMatching(/No address added/),
        }),
      );
    } finally {
      stderr.mockRestore();
      consoleError.mockRestore();
    }
  });
});

describe('a call answered at its deadline', () => {
  it('keeps its slot until its work stops, and tells the work to stop', async () => {
    const notBefore = new Date(Date.now() - 60_000);
    const ca = await createTestCa({ notBefore });
    const keys = await generateKeyPair('ECDSA_P256');
    const leaf = await issueLeafCertificate({
      publicKey: keys.publicKey,
      spiffeId: 'spiffe://cluster.local/ns/ca/sa/alcazar',
      dnsNames: ['alcazar.test'],
      notBefore,
      notAfter: new Date(Date.now() + 3_600_000),
      issuer: ca.issuer,
    });
    const started: Array<{ signal: AbortSignal | undefined; finish: () => void }> = [];
    const service = {
      createCertificate: (call: IncomingCall) =>
        new Promise<string[]>((_, reject) =>
          started.push({
            signal: call.signal,
            finish: () => reject(new Refusal('DEADLINE_EXCEEDED', 'Abandoned', 'stopped')),
          }),
        ),
    } as unknown as CertificateService;
    const server = await startCsrServer({
      host: '127.0.0.1',
      port: 0,
      service,
      metrics: new CsrServerMetrics(new Registry()),
      log: pino({ level: 'silent' }),
      limits: { callDeadlineMs: 100, maxCallsInFlight: 2 },
    });
    server.setServingCertificate({
      certificateChainPem: leaf.pem,
      privateKeyPem: privateKeyToPem(keys.privateKey),
      rootBundlePem: ca.root.pem,
      notBefore: notBefore.getTime(),
      notAfter: Date.now() + 3_600_000,
      generation: 'g1',
    });
    const client = new CsrClient({ port: server.port, roots: ca.root.pem, serverName: 'alcazar.test' });
    try {
      const csr = 'not looked at';
      const first = await Promise.all([client.call({ csr }, 't'), client.call({ csr }, 't')]);
      expect(first.map((o) => (o.ok ? 'OK' : o.code))).toEqual([
        status.DEADLINE_EXCEEDED,
        status.DEADLINE_EXCEEDED,
      ]);
      expect(started.map((w) => w.signal?.aborted)).toEqual([true, true]);
      // Their work has not stopped yet: the slots are still taken.
      expect(await client.call({ csr }, 't')).toMatchObject({ ok: false, code: status.RESOURCE_EXHAUSTED });
      for (const work of started) work.finish();
      await new Promise((resolve) => setImmediate(resolve));
      const third = await client.call({ csr }, 't');
      expect(third).toMatchObject({ ok: false, code: status.DEADLINE_EXCEEDED });
      expect(started).toHaveLength(3);
    } finally {
      client.close();
      for (const work of started) work.finish();
      await server.close();
    }
  });
});
