import { createServer, type Server } from 'node:net';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
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
});
