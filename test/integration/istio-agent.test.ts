// Istio's real pilot-agent as the client of alcazar's CSR API: it writes a key and chain for its
// ServiceAccount's SPIFFE ID, renews them on its own schedule, and two agents keep completing mTLS
// handshakes through a root rotation and the death of the leader, with two replicas behind a
// Service.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type V1Secret } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectCertificate } from '../../src/pki/index.js';
import { decodeCertificatesPem } from '../../src/pki/pem.js';
import { type ControllerProcess, startController } from './support/controller.js';
import { csrPort, requestToken } from './support/csr-client.js';
import {
  type Balancer,
  istioAgentBinary,
  type RunningAgent,
  readAgentFiles,
  startBalancer,
  startFileMesh,
  startIstioAgent,
} from './support/istio-agent.js';
import { adminKubeConfig, createTestNamespace } from './support/kube.js';
import { waitFor } from './support/wait.js';
import {
  annotateCertificateAuthority,
  deleteCertificateAuthority,
  readSecret,
  setCertificateAuthoritySpec,
} from './support/workload.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const customObjects = kc.makeApiClient(CustomObjectsApi);
const cleanups: Array<() => Promise<void>> = [];
const replicas: ControllerProcess[] = [];
const agents: RunningAgent[] = [];
let balancer: Balancer | undefined;
let binary: string;
const dir = mkdtempSync(join(tmpdir(), 'alcazar-istio-agent-'));

beforeAll(() => {
  binary = istioAgentBinary();
}, 60 * 60_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await balancer?.close();
  await Promise.all(replicas.map((r) => r.stop()));
  await deleteCertificateAuthority(customObjects);
  await Promise.all(cleanups.map((c) => c()));
  rmSync(dir, { recursive: true, force: true });
});

/** Agents renew at half of SECRET_TTL; each rotation step waits longer than that, so every agent holds both roots before the new one signs. */
const SECRET_TTL_S = 30;
const replicaArgs = (identity: string) => [
  '--leader-elect',
  `--identity=${identity}`,
  // Roomier than ha.test.ts: on a loaded machine a 3 s renew deadline makes the leader flap.
  '--lease-duration=10s',
  '--renew-deadline=8s',
  '--retry-period=1s',
  '--csr-port=0',
  '--csr-dns-names=istiod.istio-system.svc',
  '--root-rotation-check-interval=1s',
  `--root-rotation-propagation-delay=${SECRET_TTL_S}s`,
];

const leafOf = (chainPem: string) => inspectCertificate(decodeCertificatesPem(chainPem)[0]!);

describe("Istio's pilot-agent against alcazar", () => {
  it(
    'gets, verifies and renews its certificate; two agents keep handshaking across a root rotation and a leader kill',
    async () => {
      const ca = await createTestNamespace(core, 'ca');
      cleanups.push(ca.remove);
      await setCertificateAuthoritySpec(customObjects, {});
      const [a, b] = await Promise.all([
        startController({ caNamespace: ca.name, args: replicaArgs('replica-a') }),
        startController({ caNamespace: ca.name, args: replicaArgs('replica-b') }),
      ]);
      replicas.push(a!, b!);
      const ports = await Promise.all([csrPort(a!), csrPort(b!)]);
      balancer = await startBalancer(ports);

      const mesh_ = await createTestNamespace(core, 'mesh');
      cleanups.push(mesh_.remove);
      const ns = mesh_.name;
      const trustBundle = async () =>
        (
          await core
            .readNamespacedConfigMap({ namespace: ns, name: 'istio-ca-root-cert' })
            .catch(() => undefined)
        )?.data?.['root-cert.pem'];
      const firstBundle = await waitFor('the trust bundle in the mesh namespace', trustBundle);
      const serviceAccounts = ['client', 'server'];
      for (const sa of serviceAccounts) {
        await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
      }
      const id = (sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
      for (const [i, sa] of serviceAccounts.entries()) {
        agents.push(
          startIstioAgent({
            binary,
            dir: join(dir, sa),
            namespace: ns,
            serviceAccount: sa,
            caPort: balancer.port,
            statusPort: 15020 + 100 * i + (process.pid % 50),
            secretTtl: `${SECRET_TTL_S}s`,
            token: await requestToken(core, ns, sa, ['istio-ca']),
            rootCertPem: firstBundle,
          }),
        );
      }
      // The kubelet keeps the mounted istio-ca-root-cert current; so does the test.
      let copying = true;
      const copier = (async () => {
        while (copying) {
          const bundle = await trustBundle();
          if (bundle) for (const agent of agents) agent.updateRootCert(bundle);
          await new Promise((r) => setTimeout(r, 250));
        }
      })();

      // 1. Each agent writes a key and a chain for its own SPIFFE ID, and OpenSSL verifies the chain.
      const first = await Promise.all(
        agents.map((agent, i) =>
          waitFor(`certificates from agent ${serviceAccounts[i]}`, () => readAgentFiles(agent.certsDir), {
            timeoutMs: 60_000,
          }).catch((err) => {
            throw new Error(`${err.message}\n${agent.output().slice(-3000)}`);
          }),
        ),
      );
      for (const [i, files] of first.entries()) {
        const leaf = leafOf(files.certChain);
        expect(leaf.uris).toEqual([id(serviceAccounts[i]!)]);
        expect(leaf.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(SECRET_TTL_S * 1000);
        const certs = join(dir, `verify-${i}`);
        writeFileSync(`${certs}-chain.pem`, files.certChain);
        writeFileSync(`${certs}-root.pem`, files.root);
        expect(
          execFileSync(
            'openssl',
            [
              'verify',
              '-CAfile',
              `${certs}-root.pem`,
              '-untrusted',
              `${certs}-chain.pem`,
              `${certs}-chain.pem`,
            ],
            {
              encoding: 'utf8',
            },
          ),
        ).toContain(': OK');
      }

      // 2. They renew on their own schedule (half of SECRET_TTL).
      for (const [i, agent] of agents.entries()) {
        const serial = leafOf(first[i]!.certChain).serialNumberHex;
        await waitFor(
          `agent ${serviceAccounts[i]} to renew`,
          () => {
            const files = readAgentFiles(agent.certsDir);
            return files && leafOf(files.certChain).serialNumberHex !== serial;
          },
          { timeoutMs: 60_000 },
        );
      }
      // Both replicas answered (the Service spread the agents' connections).
      const issuedBy = (r: ControllerProcess) =>
        r.lines.filter((l) => l.msg === 'issued certificate for CSR' && l.namespace === ns).length;
      await waitFor('both replicas to issue', () => issuedBy(a!) > 0 && issuedBy(b!) > 0, {
        timeoutMs: 90_000,
      });

      // 3. mTLS between the two agents' files, through a root rotation and a leader kill.
      const mesh = await startFileMesh(agents[0]!.certsDir, agents[1]!.certsDir, id('client'), id('server'));
      await waitFor('handshakes before the rotation', () => mesh.stats.ok >= 20);
      const caSecret = async () => (await readSecret(core, ca.name, 'istio-ca-secret')) as V1Secret;
      const oldRoot = Buffer.from((await caSecret()).data!['ca-cert.pem']!, 'base64').toString();
      const phaseOf = async () =>
        (await caSecret()).metadata?.annotations?.['alcazar.dev/rotation-phase'] ?? 'Idle';
      await annotateCertificateAuthority(customObjects, { 'alcazar.dev/rotate-root': `agent-${Date.now()}` });
      await waitFor('phase Publishing', async () => (await phaseOf()) === 'Publishing', {
        timeoutMs: 30_000,
      });
      const leader = await waitFor('a leader', () =>
        [a!, b!].find((r) => r.lines.some((l) => l.msg === 'became leader')),
      );
      const follower = leader === a ? b! : a!;
      const issuedByFollowerBeforeKill = issuedBy(follower);
      await leader.kill();
      await follower.waitForLog('the follower to take over', (l) => l.msg === 'became leader', 30_000);
      await waitFor('phase Reissuing', async () => (await phaseOf()) === 'Reissuing', { timeoutMs: 120_000 });
      await waitFor('the rotation to finish', async () => (await phaseOf()) === 'Idle', {
        timeoutMs: 180_000,
      });
      const newRoot = Buffer.from((await caSecret()).data!['ca-cert.pem']!, 'base64').toString();
      expect(newRoot).not.toBe(oldRoot);
      // Both agents end up with leaves under the new root and keep handshaking.
      for (const agent of agents) {
        await waitFor(
          'an agent certificate signed by the new root',
          () => {
            const files = readAgentFiles(agent.certsDir);
            const newRootKeyId = inspectCertificate(decodeCertificatesPem(newRoot)[0]!).subjectKeyId;
            return (
              files?.root.includes(newRoot.trim().split('\n')[1]!) &&
              !files.root.includes(oldRoot.trim().split('\n')[1]!) &&
              leafOf(files.certChain).authorityKeyId === newRootKeyId
            );
          },
          { timeoutMs: 90_000 },
        );
      }
      const okAtEnd = mesh.stats.ok;
      await waitFor('handshakes after the rotation', () => mesh.stats.ok >= okAtEnd + 20);
      const stats = await mesh.stop();
      copying = false;
      await copier;
      expect(stats.failures).toEqual([]);
      expect(stats.failed).toBe(0);
      // Issuance went on after the leader died: the follower issued after the kill.
      expect(issuedBy(follower)).toBeGreaterThan(issuedByFollowerBeforeKill);
    },
    15 * 60_000,
  );
});
