// The issuance record against the real API server: two replicas writing at once lose nothing and
// keep every shard small, shards that hold nothing valid are swept (those of the previous layouts
// too) while the rest are read as they are, and a ServiceAccount revocation still covers the
// certificates the CSR API handed out.
import { describe, expect, it } from 'vitest';
import { RawApi } from '../../src/kube/raw.js';
import { normalizeSerialHex } from '../../src/pki/crl.js';
import { buildTestCsrPem } from '../../src/pki/csr-testing.js';
import { inspectCertificate } from '../../src/pki/index.js';
import { decodeCertificatesPem } from '../../src/pki/pem.js';
import { ISSUANCE_RECORD_PREFIX, IssuanceRecord } from '../../src/revocation/issuance-record.js';
import { CsrClient, csrPort, requestToken } from './support/csr-client.js';
import { useHarness } from './support/harness.js';
import { createRevocation, waitForDecision } from './support/revocation.js';
import { waitFor } from './support/wait.js';

const h = useHarness({ certificateAuthority: true });
const HOUR = 3_600_000;
const seconds = (ms: number) => Math.floor(ms / 1000);

const serialOf = (replica: number, i: number) =>
  `${(replica + 1).toString(16)}${i.toString(16).padStart(5, '0')}`;

async function shardsIn(namespace: string) {
  const { items } = await h.core.listNamespacedConfigMap({ namespace });
  return items.filter((cm) => cm.metadata?.name?.startsWith(ISSUANCE_RECORD_PREFIX));
}

describe('the issuance record in the API server', () => {
  it('two replicas writing at once lose no certificate, and no shard holds more than its share', async () => {
    const ca = await h.namespace('rec');
    const PER_SHARD = 16;
    const replicas = [0, 1].map(
      () => new IssuanceRecord({ raw: new RawApi(h.kc), namespace: ca, entriesPerShard: PER_SHARD }),
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
    const shards = await shardsIn(ca);
    const sizes = shards.map((cm) => Object.keys(cm.data ?? {}).length);
    expect(sizes.reduce((a, b) => a + b)).toBe(total);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(PER_SHARD);
    for (const cm of shards) expect(cm.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('alcazar');
  });

  it('reads shards of the previous layouts as they are, and sweeps the ones that hold nothing valid', async () => {
    const ca = await h.namespace('rec');
    const now = Date.now();
    const legacy = (name: string, lines: string[]) =>
      h.core.createNamespacedConfigMap({
        namespace: ca,
        body: {
          metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'alcazar' } },
          data: { shop_cart: lines.join('\n') },
        },
      });
    await legacy('alcazar-issued-00', [
      `0a ${seconds(now + HOUR)} ${seconds(now)}`,
      `0b ${seconds(now - 1000)} ${seconds(now - HOUR)}`,
    ]);
    await legacy('alcazar-issued-01', [`0c ${seconds(now - 1000)} ${seconds(now - HOUR)}`]);
    await h.core.createNamespacedConfigMap({
      namespace: ca,
      body: {
        metadata: {
          name: 'alcazar-issued-3f2a9c01d4e5',
          labels: { 'app.kubernetes.io/managed-by': 'alcazar' },
        },
        data: { shop_web_0d: `${seconds(now - 1000)} ${seconds(now - HOUR)}` },
      },
    });
    await h.core.createNamespacedConfigMap({
      namespace: ca,
      body: { metadata: { name: 'mesh-settings' }, data: {} },
    });
    // Named like a shard but not labelled as alcazar's: neither read nor swept.
    await h.core.createNamespacedConfigMap({
      namespace: ca,
      body: { metadata: { name: 'alcazar-issued-mine' }, data: { shop_cart_0f: `${seconds(now + HOUR)} 0` } },
    });
    const record = new IssuanceRecord({ raw: new RawApi(h.kc), namespace: ca });
    expect((await record.forIdentity('shop', 'cart')).map((c) => c.serial)).toEqual(['0a']);
    // Opening its first shard, the record sweeps: the two shards with nothing valid go.
    await record.record({
      namespace: 'shop',
      serviceAccount: 'cart',
      serial: '0e',
      notAfter: new Date(now + HOUR),
      issuedAt: new Date(now),
    });
    const names = await waitFor('the sweep', async () => {
      const left = (await h.core.listNamespacedConfigMap({ namespace: ca })).items.map(
        (cm) => cm.metadata!.name!,
      );
      return left.includes('alcazar-issued-01') || left.includes('alcazar-issued-3f2a9c01d4e5')
        ? undefined
        : left;
    });
    expect(names).toContain('alcazar-issued-00');
    expect(names).toContain('mesh-settings');
    expect(names).toContain('alcazar-issued-mine');
    expect((await record.forIdentity('shop', 'cart')).map((c) => c.serial).sort()).toEqual(['0a', '0e']);
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
    // The third call took a serial recorded ahead (three calls within a minute), and the
    // revocation listed the one reserved after it too. A certificate issued after the revocation
    // must not be born revoked: the reservation made before it is dropped.
    expect(revoked.length).toBeGreaterThan(serials.length);
    const after = await client.call(
      { csr: buildTestCsrPem({ uris: [`spiffe://cluster.local/ns/${ns}/sa/a`] }), validityDuration: 3600 },
      await requestToken(h.core, ns, 'a'),
    );
    if (!after.ok) throw new Error(`CSR refused: ${after.details}`);
    const fresh = normalizeSerialHex(
      inspectCertificate(decodeCertificatesPem(after.chain[0]!)[0]!).serialNumberHex,
    )!;
    expect(revoked).not.toContain(fresh);
    expect((await record.forIdentity(ns, 'a')).map((c) => c.serial)).toContain(fresh);
  });
});
