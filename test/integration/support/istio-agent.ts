// Istio's real pilot-agent (built from the istio.io/istio Go module by hack/istio/build.sh) with
// Envoy disabled: it gets its key and certificate from alcazar's CSR API and keeps them renewed in
// OUTPUT_CERTS, as a sidecar would. Plus the pieces of a pod and a cluster it needs around it: a
// projected token, the mounted trust bundle, and a Service in front of the CA replicas.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { repoRoot } from '../../cluster/paths.js';
import { testLogDir } from './controller.js';
import { type HandshakeTally, handshakeOnce, identityCheckingServer } from './mtls.js';

/** Builds pilot-agent once (cached under ~/.cache/alcazar/tools/istio-<version>/) and returns its path. */
export function istioAgentBinary(): string {
  return execFileSync('bash', [join(repoRoot, 'hack/istio/build.sh'), 'pilot-agent'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 60 * 60_000,
  }).trim();
}

export interface AgentOptions {
  binary: string;
  dir: string;
  namespace: string;
  serviceAccount: string;
  caPort: number;
  statusPort: number;
  /** The workload certificate lifetime the agent asks for (it renews at half). */
  secretTtl: string;
  token: string;
  rootCertPem: string;
}

export interface RunningAgent {
  readonly certsDir: string;
  /** Writes the token and trust bundle files, as the kubelet refreshes mounted volumes. */
  updateRootCert(pem: string): void;
  output(): string;
  stop(): Promise<void>;
}

export function startIstioAgent(opts: AgentOptions): RunningAgent {
  const tokens = join(opts.dir, 'var/run/secrets/tokens');
  const istio = join(opts.dir, 'var/run/secrets/istio');
  const certsDir = join(opts.dir, 'certs');
  for (const dir of [tokens, istio, certsDir]) mkdirSync(dir, { recursive: true });
  writeFileSync(join(tokens, 'istio-token'), opts.token, { mode: 0o600 });
  const rootFile = join(istio, 'root-cert.pem');
  writeFileSync(rootFile, opts.rootCertPem);
  mkdirSync(testLogDir, { recursive: true });
  const logFile = join(testLogDir, `pilot-agent-${opts.namespace}-${opts.serviceAccount}-${Date.now()}.log`);
  const log = createWriteStream(logFile);
  let output = '';
  const child: ChildProcess = spawn(opts.binary, ['proxy', 'sidecar'], {
    cwd: opts.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: opts.dir,
      DISABLE_ENVOY: 'true',
      OUTPUT_CERTS: certsDir,
      // "localhost" makes the agent check the server certificate for istiod.istio-system.svc.
      CA_ADDR: `localhost:${opts.caPort}`,
      POD_NAMESPACE: opts.namespace,
      POD_NAME: `${opts.serviceAccount}-0`,
      SERVICE_ACCOUNT: opts.serviceAccount,
      INSTANCE_IP: '127.0.0.1',
      SECRET_TTL: opts.secretTtl,
      PROXY_CONFIG: JSON.stringify({
        statusPort: opts.statusPort,
        discoveryAddress: `localhost:${opts.caPort}`,
      }),
    },
  });
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    certsDir,
    updateRootCert: (pem) => {
      if (readFileSync(rootFile, 'utf8') !== pem) writeFileSync(rootFile, pem);
    },
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      log.end();
    },
  };
}

export interface AgentFiles {
  certChain: string;
  key: string;
  root: string;
}

export function readAgentFiles(certsDir: string): AgentFiles | undefined {
  const files = ['cert-chain.pem', 'key.pem', 'root-cert.pem'].map((f) => join(certsDir, f));
  if (!files.every(existsSync)) return undefined;
  const [certChain, key, root] = files.map((f) => readFileSync(f, 'utf8'));
  if (!certChain || !key || !root) return undefined;
  return { certChain, key, root };
}

/** A Service in front of the CA replicas: each new connection goes to the next backend that accepts it. */
export interface Balancer {
  port: number;
  /** Connections each backend took. */
  accepted: Map<number, number>;
  close(): Promise<void>;
}

export async function startBalancer(backends: number[]): Promise<Balancer> {
  let next = 0;
  const accepted = new Map(backends.map((b) => [b, 0]));
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    const attempt = (tries: number) => {
      const port = backends[next++ % backends.length]!;
      const upstream = connect({ host: '127.0.0.1', port });
      upstream.once('connect', () => {
        accepted.set(port, (accepted.get(port) ?? 0) + 1);
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        client.pipe(upstream).pipe(client);
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
      });
      upstream.once('error', () => (tries > 1 ? attempt(tries - 1) : client.destroy()));
    };
    attempt(backends.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface FileMeshStats extends HandshakeTally {
  /** Moments the agent had written a new certificate but not yet its key (files are written one by one). */
  skipped: number;
}

/**
 * Two workloads handshaking mTLS in a loop with the files two agents keep renewed: the client
 * presents the client agent's certificate, the server the server agent's, each trusting its own
 * agent's root-cert.pem (as Envoy would through the agent's ROOTCA), both reloaded on change.
 */
export async function startFileMesh(
  clientDir: string,
  serverDir: string,
  clientId: string,
  serverId: string,
): Promise<{ stats: FileMeshStats; stop(): Promise<FileMeshStats> }> {
  const stats: FileMeshStats = { ok: 0, failed: 0, failures: [], skipped: 0 };
  const contextOf = (files: AgentFiles) => ({ cert: files.certChain, key: files.key, ca: files.root });
  let serverFiles = readAgentFiles(serverDir)!;
  const server = identityCheckingServer(contextOf(serverFiles), `URI:${clientId}`);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  const handshake = async (client: AgentFiles) => {
    let secureContext: tls.SecureContext;
    try {
      secureContext = tls.createSecureContext(contextOf(client));
    } catch {
      stats.skipped++; // key not written yet: next round
      return;
    }
    await handshakeOnce(port, secureContext, `URI:${serverId}`, stats);
  };

  let running = true;
  const loop = (async () => {
    while (running) {
      const latestServer = readAgentFiles(serverDir);
      if (latestServer && latestServer.certChain !== serverFiles.certChain) {
        try {
          server.setSecureContext(contextOf(latestServer));
          serverFiles = latestServer;
        } catch {
          stats.skipped++; // key not written yet: next round
        }
      }
      const client = readAgentFiles(clientDir);
      if (client) await handshake(client);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stats,
    stop: async () => {
      running = false;
      await loop;
      await new Promise((r) => server.close(r));
      return stats;
    },
  };
}
