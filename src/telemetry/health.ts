// Liveness and readiness, decided purely from what the caller reports.
// - Liveness asks only "is this process still running its event loop?". It
//   never depends on the API server, the lease or the CA: a failing liveness
//   probe restarts the pod, and a restart cures none of those.
// - Readiness is the caller's checks (caches synced, CA loaded, ...).
// Bodies follow the Kubernetes API server's /readyz style: `[+]name ok`,
// `[-]name failed: why`, then a summary line.

export interface HealthCheck {
  name: string;
  ok: boolean;
  /** Why it fails, or detail worth showing under `?verbose`. */
  message?: string;
}

export interface Readiness {
  checks: HealthCheck[];
}

export type ReadinessProbe = () => Readiness | Promise<Readiness>;

export interface HealthResponse {
  status: 200 | 503;
  body: string;
}

/**
 * 200 listing the checks when all pass, 503 listing the failing ones
 * otherwise. `verbose` lists every check with its message.
 */
export function renderChecks(
  endpoint: string,
  checks: readonly HealthCheck[],
  verbose: boolean,
): HealthResponse {
  const ok = checks.every((check) => check.ok);
  const shown = verbose || ok ? checks : checks.filter((check) => !check.ok);
  const lines = shown.map((check) => {
    const detail = check.message && (verbose || !check.ok) ? `: ${oneLine(check.message)}` : '';
    return check.ok ? `[+]${check.name} ok${detail}` : `[-]${check.name} failed${detail}`;
  });
  lines.push(`${endpoint} check ${ok ? 'passed' : 'failed'}`);
  return { status: ok ? 200 : 503, body: `${lines.join('\n')}\n` };
}

/** A message must not be able to forge further check lines. */
const oneLine = (message: string) => message.replace(/[\r\n]+/g, ' ');

export interface LivenessOptions {
  /** How long without a heartbeat counts as a stuck event loop (default 10 s). */
  thresholdMs?: number;
  /** Heartbeat period (default 1 s). */
  intervalMs?: number;
  /** Injected clock (ms), for tests. */
  now?: () => number;
}

/**
 * The event loop's heartbeat: a timer stamps the time every `intervalMs`.
 * A loop blocked for long cannot answer HTTP at all (the kubelet's probe
 * times out); when the request does get through, a stale stamp shows the
 * loop was stuck, and the lag seen by the last beat shows how badly.
 */
export class Heartbeat {
  readonly thresholdMs: number;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private lastBeatAt: number;
  private lastLagMs = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: LivenessOptions = {}) {
    this.thresholdMs = opts.thresholdMs ?? 10_000;
    this.intervalMs = opts.intervalMs ?? 1_000;
    this.now = opts.now ?? Date.now;
    this.lastBeatAt = this.now();
  }

  start(): this {
    if (this.timer) return this;
    this.beat();
    this.timer = setInterval(() => this.beat(), this.intervalMs);
    this.timer.unref(); // the heartbeat alone must not keep the process alive
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stamps the time; the timer calls it, tests may too. */
  beat(): void {
    const at = this.now();
    this.lastLagMs = this.timer ? Math.max(0, at - this.lastBeatAt - this.intervalMs) : 0;
    this.lastBeatAt = at;
  }

  check(): HealthCheck {
    return livenessCheck({
      lastBeatAt: this.lastBeatAt,
      lastLagMs: this.lastLagMs,
      thresholdMs: this.thresholdMs,
      now: this.now(),
    });
  }
}

export function livenessCheck(state: {
  lastBeatAt: number;
  lastLagMs: number;
  thresholdMs: number;
  now: number;
}): HealthCheck {
  const silentMs = state.now - state.lastBeatAt;
  if (silentMs > state.thresholdMs) {
    return {
      name: 'event-loop',
      ok: false,
      message: `no heartbeat for ${seconds(silentMs)} (threshold ${seconds(state.thresholdMs)})`,
    };
  }
  return { name: 'event-loop', ok: true, message: `last heartbeat lag ${state.lastLagMs} ms` };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
