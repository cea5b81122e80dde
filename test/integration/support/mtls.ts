// Two workloads doing mTLS handshakes in a loop, each re-reading its Secret
// whenever it changes (as a sidecar does when the kubelet updates the mounted
// files). Counts every handshake and every failure.
import {
  connect,
  createSecureContext,
  createServer,
  type SecureContext,
  type SecureContextOptions,
  type Server,
} from 'node:tls';
import { type KubeConfig, type V1Secret, Watch } from '@kubernetes/client-node';
import { pemsOf } from './workload.js';

/** What a handshake loop counts: handshakes that succeeded, and those that failed with why (the first 20). */
export interface HandshakeTally {
  ok: number;
  failed: number;
  failures: string[];
}

/**
 * A server with `options` that demands a client certificate and answers 'ok' to a client whose SAN
 * is `clientId` (e.g. `URI:spiffe://…`), naming any other client instead.
 */
export function identityCheckingServer(options: SecureContextOptions, clientId: string): Server {
  return createServer({ ...options, requestCert: true, rejectUnauthorized: true }, (socket) => {
    const peer = socket.getPeerCertificate().subjectaltname;
    socket.end(peer === clientId ? 'ok' : `wrong client ${peer}`);
  });
}

/**
 * One mTLS handshake with the identityCheckingServer on `port`, counted in `tally`: ok when the
 * server's SAN is `serverId` and it answered 'ok' (it accepted our certificate), failed otherwise.
 */
export function handshakeOnce(
  port: number,
  secureContext: SecureContext,
  serverId: string,
  tally: HandshakeTally,
): Promise<void> {
  return new Promise<void>((resolve) => {
    const fail = (why: string) => {
      tally.failed++;
      if (tally.failures.length < 20) tally.failures.push(why);
      resolve();
    };
    const socket = connect({
      host: '127.0.0.1',
      port,
      secureContext,
      checkServerIdentity: (_, cert) =>
        cert.subjectaltname === serverId ? undefined : new Error(`unexpected server ${cert.subjectaltname}`),
    });
    let body = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('handshake timed out')));
    socket.on('data', (d) => {
      body += d;
    });
    socket.on('end', () => {
      if (body !== 'ok') return fail(body || 'closed without a reply');
      tally.ok++;
      resolve();
    });
    socket.on('error', (err) => fail(err.message));
  });
}

export interface HandshakeStats extends HandshakeTally {
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
    server = identityCheckingServer(tlsOptions(secret), clientId);
    server.listen(0, '127.0.0.1', () => listening((server!.address() as { port: number }).port));
  });
  const clientWatch = follow(kc, namespace, `istio.${clientSa}`, (secret) => {
    stats.reloads.client++;
    client = tlsOptions(secret);
  });
  const watches = [await serverWatch, await clientWatch];
  const port = await serverReady;

  const handshake = () => handshakeOnce(port, createSecureContext(client!), serverId, stats);

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
