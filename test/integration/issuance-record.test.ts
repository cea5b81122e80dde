// The issuance record against the real API server: two replicas appending to one shard at once
// lose nothing, a shard of the previous layout is converted without losing a certificate, and a
// ServiceAccount revocation still covers the certificates the CSR API handed out.
import { describe, expect, it } from 'vitest';
import { RawApi } from '../../src/kube/raw.js';
import { normalizeSerialHex } from '../../src/pki/crl.js';
import { buildTestCsrPem } from '../../src/pki/csr-testing.js';
import { inspectCertificate } from '../../src/pki/index.js';
import { decodeCertificatesPem } from '../../src/pki/pem.js';
import { IssuanceRecord, shardName } from '../../src/revocation/issuance-record.js';
import { CsrClient, csrPort, requestToken } from './support/csr-client.js';
import { useHarness } from './support/harness.js';
import { createRevocation, waitForDecision } from './support/revocation.js';
import { waitFor } from './support/wait.js';

const h = useHarness({ certificateAuthority: true });
const HOUR = 3_600_000;
const seconds = (ms: number) => Math.floor(ms / 1000);

const serialOf = (replica: number, i: number) =>
  `${(replica + 1).toString(16)}${i.toString(16).padStart(5, '0')}`;

describe('the issuance record in the API server', () => {
  it('two replicas writing into the same shards at once lose no certificate', async () => {
    const ca = await h.namespace('rec');
    // Both write to the lowest free shards (0 and 1), so their patches meet on the same objects.
    const replicas = [0, 1].map(
      () => new IssuanceRecord({ raw: new RawApi(h.kc), namespace: ca, pickShard: (free) => free[0]! }),
    );
    const notAfter = new Date(Date.now() + HOUR);
    const WAVES = 10;
    const PER_WAVE = 15;
    await Promise.all(
      replicas.map(async (record, r) => {
        for (let wave = 0; wave < WAVES; wave++)
          await Promise.all(
            Array.from({ length: PER_WAVE }, (_, i) =>
              record.record({
                namespace: 'shop',
                serviceAccount: `sa-${i % 4}`,
                serial: serialOf(r, wave * PER_WAVE + i),
                notAfter,
                issuedAt: new Date(),
              }),
            ),
          );
      }),
    );
    const total = 2 * WAVES * PER_WAVE;
    const wanted = [0, 1].flatMap((r) => Array.from({ length: WAVES * PER_WAVE }, (_, i) => serialOf(r, i)));
    expect((await replicas[1]!.findSerials(wanted)).size).toBe(total);
    const perAccount = await Promise.all(
      [0, 1, 2, 3].map((a) => replicas[0]!.forIdentity('shop', `sa-${a}`)),
    );
    expect(perAccount.map((list) => list.length).reduce((a, b) => a + b)).toBe(total);
    const shards = await Promise.all(
      [0, 1].map((i) => h.core.readNamespacedConfigMap({ namespace: ca, name: shardName(i) })),
    );
    expect(shards.map((cm) => Object.keys(cm.data ?? {}).length).reduce((a, b) => a + b)).toBe(total);
    for (const cm of shards) expect(cm.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('alcazar');
  });

  it('converts a shard of the previous layout, keeping every valid certificate, and drops expired ones', async () => {
    const ca = await h.namespace('rec');
    const now = Date.now();
    const name = shardName(0);
    await h.core.createNamespacedConfigMap({
      namespace: ca,
      body: {
        metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'alcazar' } },
        data: {
          shop_cart: [
            `0a ${seconds(now + HOUR)} ${seconds(now)}`,
            `0b ${seconds(now + 2 * HOUR)} ${seconds(now)}`,
            `0c ${seconds(now - 1000)} ${seconds(now - HOUR)}`,
          ].join('\n'),
        },
      },
    });
    const record = new IssuanceRecord({
      raw: new RawApi(h.kc),
      namespace: ca,
      pickShard: (free) => free[0]!,
    });
    // Read before any write: the previous layout as it is.
    expect((await record.forIdentity('shop', 'cart')).map((c) => c.serial).sort()).toEqual(['0a', '0b']);
    await record.record({
      namespace: 'shop',
      serviceAccount: 'cart',
      serial: '0d',
      notAfter: new Date(now + HOUR),
      issuedAt: new Date(now),
    });
    const converted = await waitFor('the shard converted', async () => {
      const cm = await h.core.readNamespacedConfigMap({ namespace: ca, name });
      return cm.data && !('shop_cart' in cm.data) ? cm.data : undefined;
    });
    expect(Object.keys(converted).sort()).toEqual(['shop_cart_0a', 'shop_cart_0b', 'shop_cart_0d']);
    expect((await record.forIdentity('shop', 'cart')).map((c) => c.serial).sort()).toEqual([
      '0a',
      '0b',
      '0d',
    ]);
  });
});

describe('revoking a ServiceAccount that got certificates over the CSR API', () => {
  it('lists every certificate the CSR API issued to it, recorded before each was handed out', async () => {
    const ns = await h.namespace('rec-csr');
    const ca = await h.namespace('ca');
    await h.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'a' } } });
    const controller = await h.controller({
      caNamespace: ca,
      args: ['--csr-port=0', '--csr-dns-names=alcazar.rec.svc'],
    });
    const roots = await waitFor('the trust bundle', async () => {
      const cm = await h.core
        .readNamespacedConfigMap({ namespace: ns, name: 'istio-ca-root-cert' })
        .catch(() => undefined);
      return cm?.data?.['root-cert.pem'];
    });
    await controller.waitForLog(
      'the serving certificate',
      (l) => l.msg === 'CSR API serving certificate issued',
    );
    const client = new CsrClient({ port: await csrPort(controller), roots, serverName: 'alcazar.rec.svc' });
    h.defer(() => client.close());
    const serials: string[] = [];
    for (let i = 0; i < 3; i++) {
      const outcome = await client.call(
        { csr: buildTestCsrPem({ uris: [`spiffe://cluster.local/ns/${ns}/sa/a`] }), validityDuration: 3600 },
        await requestToken(h.core, ns, 'a'),
      );
      if (!outcome.ok) throw new Error(`CSR refused: ${outcome.details}`);
      serials.push(
        normalizeSerialHex(inspectCertificate(decodeCertificatesPem(outcome.chain[0]!)[0]!).serialNumberHex)!,
      );
    }
    // Handed out means recorded: the record holds each before any revocation looks.
    const record = new IssuanceRecord({ raw: new RawApi(h.kc), namespace: ca });
    const recorded = (await record.forIdentity(ns, 'a')).map((c) => c.serial);
    for (const serial of serials) expect(recorded).toContain(serial);

    await createRevocation(h.customObjects, ns, 'a-leak', {
      serviceAccountName: 'a',
      reason: 'keyCompromise',
    });
    const decided = await waitForDecision(h.customObjects, ns, 'a-leak');
    const revoked = (decided.status?.revoked ?? []).map((r) => normalizeSerialHex(r.serialNumber));
    for (const serial of serials) expect(revoked).toContain(serial);
  });
});
