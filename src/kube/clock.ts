// The one seam for time. Everything that reads the time or waits (informer,
// work queue, leader election, controllers) takes a Clock, so unit tests set
// the time instead of waiting for it.
import { performance } from 'node:perf_hooks';

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch (timestamps written to objects, certificate validity). */
  now(): number;
  /** Monotonic milliseconds, for local durations a wall-clock step must not stretch. */
  monotonic(): number;
  /**
   * Calls `fn` once after `ms`. A system timer does not keep the process alive unless `keepAlive`
   * (a loop that is itself the process's reason to run, e.g. a retry pause).
   */
  setTimer(fn: () => void, ms: number, opts?: { keepAlive?: boolean }): Timer;
}

/** setTimeout cannot wait longer than this; longer delays fire early and re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimer(fn, ms, opts) {
    const at = Date.now() + ms;
    let handle: NodeJS.Timeout;
    const arm = (wait: number) => {
      handle = setTimeout(
        () => {
          const rest = at - Date.now();
          if (rest > 0 && wait === MAX_TIMER_MS) arm(Math.min(rest, MAX_TIMER_MS));
          else fn();
        },
        Math.max(0, wait),
      );
      if (!opts?.keepAlive) handle.unref();
    };
    arm(Math.min(ms, MAX_TIMER_MS));
    return { cancel: () => clearTimeout(handle) };
  },
};

/** Resolves after `ms` on `clock`; `wake` (if given) receives a function that ends the wait early. */
export function sleep(clock: Clock, ms: number, wake?: (end: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = clock.setTimer(resolve, ms, { keepAlive: true });
    wake?.(() => {
      timer.cancel();
      resolve();
    });
  });
}
