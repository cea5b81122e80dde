// The load the CSR scenario puts on a CSR API server: `concurrency` clients, each on its own
// connection (as separate agents are), each sending its next CreateCertificate as soon as its
// previous one returned (closed loop), until the prepared calls run out. Everything a call needs
// (key, CSR, token) is made before the clock starts, so the client's own work is only gRPC.
import { CsrClient } from '../../test/integration/support/csr-client.js';

export interface PreparedCall {
  csr: string;
  token: string;
  /** The SPIFFE ID the certificate must carry (checked on samples after the timed part). */
  spiffeId: string;
}

export interface CallFailure {
  code: number;
  details: string;
}

export interface LoadResult {
  /** Per successful call, ms from send to answer (client clock). */
  latenciesMs: number[];
  /** First call sent → last answer received. */
  wallMs: number;
  ok: number;
  /** gRPC code → count of failed calls, and one example message per code. */
  failures: Record<string, { count: number; example: string }>;
  /** A few answers (leaf first) kept to check after the timed part. */
  samples: Array<{ call: PreparedCall; chain: string[] }>;
  /** CPU ms this (the client's) process used during the timed part. */
  clientCpuMs: number;
}

export interface Target {
  port: number;
  roots: string;
  serverName: string;
}

/** Opens `count` clients to a server, each with a connection of its own, all connected. */
export async function connectClients(target: Target, count: number): Promise<CsrClient[]> {
  const clients = Array.from(
    { length: count },
    () =>
      new CsrClient({
        port: target.port,
        roots: target.roots,
        serverName: target.serverName,
        // grpc-js shares one connection between channels with equal options unless told not to.
        channelOptions: { 'grpc.use_local_subchannel_pool': 1 },
        deadlineMs: 60_000,
      }),
  );
  try {
    await Promise.all(clients.map((c) => c.connect()));
  } catch (err) {
    for (const c of clients) c.close();
    throw err;
  }
  return clients;
}

/** Sends every call through the clients (concurrency = clients.length); see the file comment. */
export async function runClosedLoop(
  clients: readonly CsrClient[],
  calls: readonly PreparedCall[],
  keepSamples = 4,
): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const failures: LoadResult['failures'] = {};
  const samples: LoadResult['samples'] = [];
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const worker = async (client: CsrClient) => {
    for (;;) {
      const index = next++;
      if (index >= calls.length) return;
      const call = calls[index]!;
      const sent = performance.now();
      const outcome = await client.call({ csr: call.csr }, call.token);
      const took = performance.now() - sent;
      if (outcome.ok && outcome.chain.length >= 2) {
        latenciesMs.push(took);
        if (samples.length < keepSamples) samples.push({ call, chain: outcome.chain });
      } else {
        const code = outcome.ok ? 'short-chain' : String(outcome.code);
        const details = outcome.ok ? `${outcome.chain.length} element(s)` : outcome.details;
        failures[code] ??= { count: 0, example: details.slice(0, 300) };
        failures[code].count++;
      }
    }
  };
  await Promise.all(clients.map(worker));
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    latenciesMs,
    wallMs,
    ok: latenciesMs.length,
    failures,
    samples,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
  };
}
