// Two workloads doing mTLS handshakes in a loop, each re-reading its Secret
// whenever it changes (as a sidecar does when the kubelet updates the mounted
// files). Counts every handshake and every failure.
import { connect, createSecureContext, createServer, type SecureContextOptions, type Server } from 'node:tls';
import { type KubeConfig, type V1Secret, Watch } from '@kubernetes/client-node';
import { pemsOf } from './workload.js';

export interface HandshakeStats {
  ok: number;
  failed: number;
  failures: string[];
  /** Secret versions each side loaded. */
  reloads: { client: number; server: number };
}

export interface MeshPair {
  stats: HandshakeStats;
  stop(): Promise<HandshakeStats>;
}

function tlsOptions(secret: V1Secret): SecureContextOptions {
  const { certChain, key, root } = pemsOf(secret);
  return { cert: certChain, key, ca: root };
}

async function follow(kc: KubeConfig, namespace: string, name: string, onSecret: (s: V1Secret) => void) {
  return new Watch(kc).watch(
    `/api/v1/namespaces/${namespace}/secrets`,
    { fieldSelector: `metadata.name=${name}` },
    (phase: string, secret: V1Secret) => {
      if ((phase === 'ADDED' || phase === 'MODIFIED') && secret.data?.['cert-chain.pem']) onSecret(secret);
    },
    () => {},
  );
}

export async function startMeshPair(
  kc: KubeConfig,
  namespace: string,
  clientSa: string,
  serverSa: string,
  trustDomain = 'cluster.local',
): Promise<MeshPair> {
  const stats: HandshakeStats = { ok: 0, failed: 0, failures: [], reloads: { client: 0, server: 0 } };
  let client: SecureContextOptions | undefined;
  let server: Server | undefined;
  const serverId = `URI:spiffe://${trustDomain}/ns/${namespace}/sa/${serverSa}`;
  const clientId = `URI:spiffe://${trustDomain}/ns/${namespace}/sa/${clientSa}`;

  let listening: (port: number) => void = () => {};
  const serverReady = new Promise<number>((resolve) => {
    listening = resolve;
  });
  const serverWatch = follow(kc, namespace, `istio.${serverSa}`, (secret) => {
    stats.reloads.server++;
    if (server) {
      server.setSecureContext(tlsOptions(secret));
      return;
    }
    server = createServer(
      { ...tlsOptions(secret), requestCert: true, rejectUnauthorized: true },
      (socket) => {
        const peer = socket.getPeerCertificate().subjectaltname;
        socket.end(peer === clientId ? 'ok' : `wrong client ${peer}`);
      },
    );
    server.listen(0, '127.0.0.1', () => listening((server!.address() as { port: number }).port));
  });
  const clientWatch = follow(kc, namespace, `istio.${clientSa}`, (secret) => {
    stats.reloads.client++;
    client = tlsOptions(secret);
  });
  const watches = [await serverWatch, await clientWatch];
  const port = await serverReady;

  const handshake = () =>
    new Promise<void>((resolve) => {
      const fail = (why: string) => {
        stats.failed++;
        if (stats.failures.length < 20) stats.failures.push(why);
        resolve();
      };
      const socket = connect({
        host: '127.0.0.1',
        port,
        secureContext: createSecureContext(client!),
        checkServerIdentity: (_, cert) =>
          cert.subjectaltname === serverId
            ? undefined
            : new Error(`unexpected server ${cert.subjectaltname}`),
      });
      let body = '';
      socket.setTimeout(5_000, () => socket.destroy(new Error('handshake timed out')));
      socket.on('data', (d) => {
        body += d;
      });
      socket.on('end', () => {
        if (body === 'ok') {
          stats.ok++;
          resolve();
        } else fail(body || 'connection closed without a reply');
      });
      socket.on('error', (err) => fail(err.message));
    });

  let running = true;
  const loop = (async () => {
    while (running) {
      if (client) await handshake();
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  return {
    stats,
    stop: async () => {
      running = false;
      await loop;
      for (const w of watches) w.abort();
      await new Promise((r) => server?.close(r));
      return stats;
    },
  };
}
