// Reading the controller's /metrics and /readyz in tests.
import type { ControllerProcess } from './controller.js';

/** The port the controller serves /metrics on, from its log. */
export async function metricsPort(proc: ControllerProcess): Promise<number> {
  const line = await proc.waitForLog(
    'the metrics port',
    (l) => l.msg === 'serving /metrics, /healthz and /readyz',
  );
  return line.port as number;
}

export async function scrape(proc: ControllerProcess): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${await metricsPort(proc)}/metrics`, {
    signal: AbortSignal.timeout(5_000),
  });
  return res.text();
}

/** The controller's /readyz: its status code and the body that says which checks fail. */
export async function readyz(proc: ControllerProcess): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${await metricsPort(proc)}/readyz`, {
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, body: await res.text() };
}

/** The value of one sample, 0 when it is absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text
    .split('\n')
    .find(
      (l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && wanted.every((w) => l.includes(w)),
    );
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Watch restarts of one informer for one reason (alcazar_watch_restarts_total). */
export async function watchRestarts(
  proc: ControllerProcess,
  informer: string,
  reason: string,
): Promise<number> {
  return sample(await scrape(proc), 'alcazar_watch_restarts_total', { informer, reason });
}
