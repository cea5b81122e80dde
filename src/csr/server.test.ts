import { createServer, type Server } from 'node:net';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CsrServerMetrics } from '../telemetry/csr-metrics.js';
import { startCsrServer } from './server.js';
import type { CertificateService } from './service.js';

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
