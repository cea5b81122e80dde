import { type AgentOptions, Agent as HttpsAgent } from 'node:https';
import { ApiException, KubeConfig } from '@kubernetes/client-node';

/** Loads a kubeconfig from a path, or the default chain ($KUBECONFIG, ~/.kube/config, in-cluster). */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster() || (!path && madeUp(kc)))
    throw new Error('no cluster in the kubeconfig (set --kubeconfig or KUBECONFIG)');
  reuseConnections(kc);
  return kc;
}

/**
 * loadFromDefault found no kubeconfig and is not in a cluster: client-node then makes up cluster
 * "cluster" at http://localhost:8080 for user "user", and the first request failed with "HTTP
 * protocol is not allowed when skipTLSVerify is not set or false", which tells a newcomer nothing.
 */
function madeUp(kc: KubeConfig): boolean {
  const cluster = kc.getCurrentCluster();
  return (
    cluster?.name === 'cluster' &&
    cluster.server === 'http://localhost:8080' &&
    kc.getCurrentUser()?.name === 'user' &&
    kc.getContexts().length === 1
  );
}

type CreateAgent = (cluster: { server: string; proxyUrl?: string } | null, options: AgentOptions) => unknown;

/**
 * client-node 1.4.0 builds a new https.Agent for every request, so each API
 * call opened a TCP connection, built a TLS context and handshook again:
 * measured, that was 60% of the controller's CPU per Secret (13.3 ms -> 5.3 ms
 * with one keep-alive agent; docs/BENCHMARKS.md). Credentials that change
 * (tokens) travel in headers, not in the agent, so one agent per server and
 * TLS options is safe. Relies on the pinned version's createAgent.
 */
function reuseConnections(kc: KubeConfig): void {
  const target = kc as unknown as { createAgent?: CreateAgent };
  const original = target.createAgent;
  if (typeof original !== 'function') return; // another client-node version: keep its behaviour
  const agents = new Map<string, HttpsAgent>();
  target.createAgent = (cluster, options) => {
    if (!cluster || cluster.proxyUrl || !cluster.server.startsWith('https:'))
      return original.call(kc, cluster, options);
    const key = `${cluster.server}|${String(options.ca ?? '')}|${String(options.cert ?? '')}|${options.rejectUnauthorized}`;
    let agent = agents.get(key);
    if (!agent) {
      agent = new HttpsAgent({ ...options, keepAlive: true });
      agents.set(key, agent);
    }
    return agent;
  };
}

export function apiStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

export const isNotFound = (err: unknown) => apiStatus(err) === 404;
export const isConflict = (err: unknown) => apiStatus(err) === 409;

/** The server's explanation of a failed call, without the response headers or body dump. */
export function describeApiError(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as { message?: string } | string | undefined;
    let message: string | undefined;
    if (typeof body === 'string') {
      try {
        message = (JSON.parse(body) as { message?: string }).message;
      } catch {
        message = body.slice(0, 300);
      }
    } else message = body?.message;
    return `HTTP ${err.code}${message ? `: ${message}` : ''}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** One GET: the object, `undefined` when it does not exist, or why it could not be read. */
export type Read<T> = { ok: true; value: T | undefined } | { ok: false; error: string };

/** Runs one GET, turning 404 into `undefined` and any other failure into its explanation. */
export async function readOptional<T>(call: () => Promise<T>): Promise<Read<T>> {
  try {
    return { ok: true, value: await call() };
  } catch (err) {
    if (isNotFound(err)) return { ok: true, value: undefined };
    return { ok: false, error: describeApiError(err) };
  }
}
