/**
 * TokenReviews (authentication.k8s.io/v1) over one keep-alive connection pool. A TokenReview
 * client that opened a connection per review once leaked 28k connections in Citadel (Istio
 * #11744); here every review shares one agent with a bounded number of sockets.
 */
import * as https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { TokenReviewer, TokenReviewResult } from './authenticate.js';

const PATH = '/apis/authentication.k8s.io/v1/tokenreviews';

export interface KubeTokenReviewerOptions {
  kubeConfig: KubeConfig;
  /** Sockets to the API server at most (default 8, the authenticator's review concurrency). */
  maxSockets?: number;
  timeoutMs?: number;
}

export interface KubeTokenReviewer {
  review: TokenReviewer;
  close(): void;
}

export function kubeTokenReviewer(opts: KubeTokenReviewerOptions): KubeTokenReviewer {
  const cluster = opts.kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('no cluster in the kubeconfig');
  const url = new URL(cluster.server.replace(/\/+$/, '') + PATH);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let agent: https.Agent | undefined;

  const review: TokenReviewer = async (token, audiences) => {
    // Credentials may rotate (a projected token file): read them for each request. The TLS
    // material goes into one agent, made once, that keeps connections open.
    const options: https.RequestOptions = { method: 'POST', headers: {} };
    await opts.kubeConfig.applyToHTTPSOptions(options);
    agent ??= new https.Agent({
      keepAlive: true,
      maxSockets: opts.maxSockets ?? 8,
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      rejectUnauthorized: options.rejectUnauthorized,
      servername: options.servername,
    });
    const body = Buffer.from(
      JSON.stringify({
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences },
      }),
    );
    const headers = {
      ...(options.headers as Record<string, string>),
      Accept: 'application/json',
      'Content-Type': 'application/json',
      'Content-Length': String(body.length),
    };
    const answer = await new Promise<{ code: number; text: string }>((resolve, reject) => {
      const req = https.request(url, { method: 'POST', headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ code: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
      });
      req.on('error', reject);
      req.setTimeout(timeoutMs, () =>
        req.destroy(new Error(`TokenReview: no answer within ${timeoutMs} ms`)),
      );
      req.end(body);
    });
    if (answer.code !== 201 && answer.code !== 200) {
      // Never the body's token: the API server does not echo it, but keep the message short anyway.
      throw new Error(`TokenReview failed with HTTP ${answer.code}: ${answer.text.slice(0, 200)}`);
    }
    const status = (JSON.parse(answer.text) as { status?: Record<string, unknown> }).status ?? {};
    const user = (status.user ?? {}) as { username?: string; groups?: string[] };
    return {
      authenticated: status.authenticated === true,
      username: user.username,
      groups: user.groups,
      audiences: status.audiences as string[] | undefined,
      error: typeof status.error === 'string' ? status.error : undefined,
    } satisfies TokenReviewResult;
  };

  return { review, close: () => agent?.destroy() };
}
