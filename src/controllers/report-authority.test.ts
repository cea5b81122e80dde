import { describe, expect, it } from 'vitest';
import type { SigningAuthority } from '../ca/authority.js';
import { createMetrics } from '../telemetry/metrics.js';
import { reportAuthority } from './manager.js';

const NOT_AFTER = new Date(Date.UTC(2036, 0, 1));

describe('reportAuthority', () => {
  it('drops the root series once no CA is loaded, as README says', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const root = { fingerprintSha256: 'ab', notAfter: NOT_AFTER };
    const authority = {
      signer: { notAfter: NOT_AFTER },
      roots: [root],
      activeRootFingerprint: 'ab',
    } as unknown as SigningAuthority;
    reportAuthority(metrics, { status: 'ready', authority });
    let text = await metrics.scrape();
    expect(text).toContain(`citadel_server_root_cert_expiry_timestamp ${NOT_AFTER.getTime() / 1000}`);
    expect(text).toContain(
      'alcazar_root_certificate_expiry_timestamp_seconds{fingerprint="ab",active="true"}',
    );
    reportAuthority(metrics, { status: 'failed', reason: 'ChainInvalid', message: 'x' });
    text = await metrics.scrape();
    expect(text).toContain('citadel_server_root_cert_expiry_timestamp 0');
    expect(text).not.toContain('alcazar_root_certificate_expiry_timestamp_seconds{');
    expect(text).toContain('alcazar_ca_ready 0');
  });
});
