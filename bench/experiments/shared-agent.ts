// Experiment, not a fix: preloaded into the controller (node --import) to
// measure what one shared keep-alive https.Agent would save. client-node
// 1.4.0 builds a new https.Agent for every request
// (KubeConfig.applySecurityAuthentication → createAgent), so every API call
// opens a TCP connection, builds a TLS context from the kubeconfig's PEMs,
// handshakes and verifies the server's certificate.
import { Agent } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

type CreateAgent = (cluster: { server: string; proxyUrl?: string } | null, options: object) => unknown;
const prototype = KubeConfig.prototype as unknown as { createAgent: CreateAgent };
const original = prototype.createAgent;
const agents = new Map<string, Agent>();

prototype.createAgent = function (this: KubeConfig, cluster, options) {
  if (!cluster || cluster.proxyUrl || !cluster.server.startsWith('https:')) {
    return original.call(this, cluster, options);
  }
  let agent = agents.get(cluster.server);
  if (!agent) {
    agent = new Agent({ ...options, keepAlive: true });
    agents.set(cluster.server, agent);
  }
  return agent;
};
