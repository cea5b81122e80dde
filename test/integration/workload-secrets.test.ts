// ServiceAccount → istio.<sa> Secret, against the real control plane.
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { V1Secret } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { pemBegin } from '../../src/pki/testing.js';
import type { ControllerProcess } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { waitFor } from './support/wait.js';
import {
  leafOf,
  mergePatch,
  opensslVerify,
  pemsOf,
  readSecret,
  waitForSecretGone,
  waitForWorkloadSecret,
} from './support/workload.js';

const harness = useHarness();
const { core } = harness;
let caNamespace: string;
let controller: ControllerProcess;

const namespace = (labels: Record<string, string> = {}) => harness.namespace('ws', labels);

async function serviceAccount(ns: string, name: string, annotations: Record<string, string> = {}) {
  return core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name, annotations } } });
}

async function eventsFor(ns: string, name: string) {
  const list = await core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: `involvedObject.name=${name}`,
  });
  return list.items;
}

beforeAll(async () => {
  caNamespace = await harness.namespace('ca');
  controller = await harness.controller({ caNamespace });
});

describe('workload Secrets', () => {
  it('a new ServiceAccount gets istio.<sa>: Citadel format, our markers, a chain OpenSSL verifies', async () => {
    const ns = await namespace();
    const sa = await serviceAccount(ns, 'cart');
    const secret = await waitForWorkloadSecret(core, ns, 'cart');

    expect(secret.type).toBe('istio.io/key-and-cert');
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(['cert-chain.pem', 'key.pem', 'root-cert.pem']);
    expect(secret.metadata?.annotations?.['istio.io/service-account.name']).toBe('cart');
    expect(secret.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('alcazar');
    expect(secret.metadata?.ownerReferences).toEqual([
      expect.objectContaining({
        kind: 'ServiceAccount',
        name: 'cart',
        uid: sa.metadata?.uid,
        controller: true,
      }),
    ]);
    const leaf = leafOf(secret);
    expect(leaf.uris).toEqual([`spiffe://cluster.local/ns/${ns}/sa/cart`]);
    expect(leaf.isCA).toBe(false);
    expect(leaf.sanCritical).toBe(true);
    expect(leaf.publicKeyAlgorithm).toBe('ECDSA_P256');
    const lifetimeDays = (leaf.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(lifetimeDays).toBeGreaterThan(89.9);
    expect(lifetimeDays).toBeLessThanOrEqual(90);
    expect(opensslVerify(secret)).toContain('OK');
    expect(pemsOf(secret).key.startsWith(pemBegin('EC PRIVATE KEY'))).toBe(true);

    const events = await waitFor('a CertificateIssued event', async () => {
      const list = await eventsFor(ns, 'cart');
      return list.some((e) => e.reason === 'CertificateIssued') ? list : undefined;
    });
    const issued = events.find((e) => e.reason === 'CertificateIssued')!;
    expect(issued.type).toBe('Normal');
    expect(issued.message).toContain(leaf.serialNumberHex);
  });

  it('deleting the ServiceAccount deletes its Secret', async () => {
    const ns = await namespace();
    await serviceAccount(ns, 'gone');
    await waitForWorkloadSecret(core, ns, 'gone');
    await core.deleteNamespacedServiceAccount({ namespace: ns, name: 'gone' });
    await waitForSecretGone(core, ns, 'istio.gone');
  });

  it('deletes it itself: with the ServiceAccount deleted as an orphaner, the garbage collector would keep it', async () => {
    const ns = await namespace();
    await serviceAccount(ns, 'orphaned');
    await waitForWorkloadSecret(core, ns, 'orphaned');
    // Orphan propagation: kube-controller-manager strips the Secret's ownerReference instead of
    // deleting it, so only alcazar's own delete path can remove it.
    await core.deleteNamespacedServiceAccount({
      namespace: ns,
      name: 'orphaned',
      propagationPolicy: 'Orphan',
    });
    await waitForSecretGone(core, ns, 'istio.orphaned');
  });

  it('deleting istio.<sa> while <sa> exists re-creates it with a new certificate', async () => {
    const ns = await namespace();
    await serviceAccount(ns, 'heal');
    const first = await waitForWorkloadSecret(core, ns, 'heal');
    await core.deleteNamespacedSecret({ namespace: ns, name: 'istio.heal' });
    const second = await waitForWorkloadSecret(
      core,
      ns,
      'heal',
      (s) => s.metadata?.uid !== first.metadata?.uid,
    );
    expect(leafOf(second).serialNumberHex).not.toBe(leafOf(first).serialNumberHex);
    expect(opensslVerify(second)).toContain('OK');
  });

  describe('tampered Secrets are rewritten', () => {
    let ns: string;
    beforeAll(async () => {
      ns = await namespace();
    });

    async function tamper(
      sa: string,
      data: Record<string, string | null>,
    ): Promise<{ before: V1Secret; after: V1Secret }> {
      await serviceAccount(ns, sa);
      const before = await waitForWorkloadSecret(core, ns, sa);
      const patched = await core.patchNamespacedSecret(
        { namespace: ns, name: `istio.${sa}`, body: { data } },
        mergePatch,
      );
      const after = await waitForWorkloadSecret(
        core,
        ns,
        sa,
        (s) => s.metadata?.resourceVersion !== patched.metadata?.resourceVersion,
      );
      return { before, after };
    }

    it('an unparsable certificate is reissued', async () => {
      const { after } = await tamper('garbage', {
        'cert-chain.pem': Buffer.from('not a certificate').toString('base64'),
      });
      expect(opensslVerify(after)).toContain('OK');
    });

    it('a key.pem that does not match the certificate is reissued', async () => {
      await serviceAccount(ns, 'donor');
      const donor = await waitForWorkloadSecret(core, ns, 'donor');
      const { before, after } = await tamper('mismatch', { 'key.pem': donor.data!['key.pem']! });
      expect(leafOf(after).serialNumberHex).not.toBe(leafOf(before).serialNumberHex);
      expect(after.data!['key.pem']).not.toBe(donor.data!['key.pem']);
    });

    it('a certificate for another identity is reissued', async () => {
      await serviceAccount(ns, 'other');
      const other = await waitForWorkloadSecret(core, ns, 'other');
      const { after } = await tamper('identity', {
        'cert-chain.pem': other.data!['cert-chain.pem']!,
        'key.pem': other.data!['key.pem']!,
      });
      expect(leafOf(after).uris).toEqual([`spiffe://cluster.local/ns/${ns}/sa/identity`]);
    });

    it('a stale root-cert.pem is refreshed without a new key', async () => {
      const { before, after } = await tamper('staleroot', {
        'root-cert.pem': Buffer.from('stale').toString('base64'),
      });
      expect(after.data!['root-cert.pem']).toBe(before.data!['root-cert.pem']);
      expect(after.data!['key.pem']).toBe(before.data!['key.pem']);
    });

    it('a data key that is not ours is removed', async () => {
      const { before, after } = await tamper('extra', { extra: Buffer.from('x').toString('base64') });
      expect(Object.keys(after.data ?? {}).sort()).toEqual(['cert-chain.pem', 'key.pem', 'root-cert.pem']);
      expect(after.data!['key.pem']).toBe(before.data!['key.pem']);
    });
  });

  it('a Secret at istio.<sa> that alcazar does not own is never touched, and is reported', async () => {
    const ns = await namespace();
    const foreign = await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'istio.legacy' }, type: 'Opaque', stringData: { mine: 'keep me' } },
    });
    await serviceAccount(ns, 'legacy');
    const warning = await waitFor('a ForeignSecret warning event', async () =>
      (await eventsFor(ns, 'legacy')).find((e) => e.reason === 'ForeignSecret'),
    );
    expect(warning.type).toBe('Warning');
    expect(warning.message).toContain('istio.legacy');
    const after = await readSecret(core, ns, 'istio.legacy');
    expect(after?.metadata?.resourceVersion).toBe(foreign.metadata?.resourceVersion);
    // Deleting the ServiceAccount must not delete someone else's Secret either.
    await core.deleteNamespacedServiceAccount({ namespace: ns, name: 'legacy' });
    await controller.waitForLog(
      'the deleted ServiceAccount reconciled',
      (l) =>
        l.msg === 'reconciled' && l.namespace === ns && l.serviceAccount === 'legacy' && l.action === 'none',
    );
    expect((await readSecret(core, ns, 'istio.legacy'))?.metadata?.resourceVersion).toBe(
      foreign.metadata?.resourceVersion,
    );
  });

  it('DNS names from the alcazar.dev/dns-names annotation become DNS SANs; bad ones are reported', async () => {
    // Names of the ServiceAccount's own namespace; other names need an allow rule (tenant-isolation.test.ts).
    const ns = await namespace();
    await serviceAccount(ns, 'web', {
      'alcazar.dev/dns-names': `web.${ns}.svc, WEB.${ns}.svc.cluster.local,not_valid!`,
    });
    const secret = await waitForWorkloadSecret(core, ns, 'web');
    expect(leafOf(secret).dnsNames.sort()).toEqual([`web.${ns}.svc`, `web.${ns}.svc.cluster.local`]);
    const warning = await waitFor('an InvalidDnsNames warning', async () =>
      (await eventsFor(ns, 'web')).find((e) => e.reason === 'InvalidDnsNames'),
    );
    expect(warning.message).toContain('not_valid!');
  });

  describe('namespace targeting', () => {
    it('override=false: no Secrets; existing ones are removed; override=true brings them back', async () => {
      const ns = await namespace();
      await serviceAccount(ns, 'app');
      await waitForWorkloadSecret(core, ns, 'app');
      await core.patchNamespace(
        { name: ns, body: { metadata: { labels: { 'ca.istio.io/override': 'false' } } } },
        mergePatch,
      );
      await waitForSecretGone(core, ns, 'istio.app');
      await waitForSecretGone(core, ns, 'istio.default');
      await core.patchNamespace(
        { name: ns, body: { metadata: { labels: { 'ca.istio.io/override': 'true' } } } },
        mergePatch,
      );
      await waitForWorkloadSecret(core, ns, 'app');
      await waitForWorkloadSecret(core, ns, 'default');
    });

    it('ca.istio.io/env naming another CA namespace is not managed; naming ours is', async () => {
      const other = await namespace({ 'ca.istio.io/env': 'some-other-ca' });
      const ours = await namespace({ 'ca.istio.io/env': caNamespace });
      await serviceAccount(other, 'x');
      await serviceAccount(ours, 'x');
      await waitForWorkloadSecret(core, ours, 'x');
      await controller.waitForLog(
        'the unmanaged ServiceAccount reconciled',
        (l) => l.msg === 'reconciled' && l.namespace === other && l.serviceAccount === 'x',
      );
      expect(await readSecret(core, other, 'istio.x')).toBeUndefined();
    });
  });

  it('two ServiceAccounts complete an mTLS handshake with their Secrets, each checking the peer SPIFFE ID', async () => {
    const ns = await namespace();
    await serviceAccount(ns, 'client');
    await serviceAccount(ns, 'server');
    const client = pemsOf(await waitForWorkloadSecret(core, ns, 'client'));
    const server = pemsOf(await waitForWorkloadSecret(core, ns, 'server'));
    const peerId = (socket: TLSSocket) => socket.getPeerCertificate().subjectaltname;

    const tlsServer = createServer(
      {
        cert: server.certChain,
        key: server.key,
        ca: server.root,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket) => {
        socket.end(peerId(socket) ?? '');
      },
    );
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    const port = (tlsServer.address() as { port: number }).port;
    try {
      const { seenByServer, seenByClient } = await new Promise<{
        seenByServer: string;
        seenByClient: string;
      }>((resolve, reject) => {
        const socket = connect({
          host: '127.0.0.1',
          port,
          cert: client.certChain,
          key: client.key,
          ca: client.root,
          // SPIFFE identities are URIs, not host names: check the URI SAN instead.
          checkServerIdentity: (_, cert) =>
            cert.subjectaltname === `URI:spiffe://cluster.local/ns/${ns}/sa/server`
              ? undefined
              : new Error(`unexpected server identity ${cert.subjectaltname}`),
        });
        let body = '';
        socket.on('data', (d) => {
          body += d;
        });
        socket.on('end', () => resolve({ seenByServer: body, seenByClient: peerId(socket) ?? '' }));
        socket.on('error', reject);
      });
      expect(seenByServer).toBe(`URI:spiffe://cluster.local/ns/${ns}/sa/client`);
      expect(seenByClient).toBe(`URI:spiffe://cluster.local/ns/${ns}/sa/server`);
    } finally {
      tlsServer.close();
    }
  });

  it('a restarted controller reissues nothing that is still valid', async () => {
    const ns = await namespace();
    for (const sa of ['a', 'b', 'c']) await serviceAccount(ns, sa);
    const before = await Promise.all(
      ['a', 'b', 'c', 'default'].map((sa) => waitForWorkloadSecret(core, ns, sa)),
    );
    await controller.stop();
    controller = await harness.controller({ caNamespace });
    await controller.waitForLog(
      'initial reconcile finished',
      (l) => l.msg === 'initial reconcile finished' && l.controller === 'workload-secrets',
    );
    const after = await Promise.all(
      ['a', 'b', 'c', 'default'].map((sa) => readSecret(core, ns, `istio.${sa}`)),
    );
    expect(after.map((s) => s?.metadata?.resourceVersion)).toEqual(
      before.map((s) => s.metadata?.resourceVersion),
    );
    expect(controller.lines.filter((l) => l.msg === 'issued workload certificate')).toEqual([]);
  });
});
