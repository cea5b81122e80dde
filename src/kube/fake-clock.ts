// A Clock for unit tests: time moves only when the test says so.
import type { Clock, Timer } from './clock.js';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private pending: Pending[] = [];

  constructor(start: number | string = '2030-01-01T00:00:00Z') {
    this.current = typeof start === 'number' ? start : Date.parse(start);
  }

  now(): number {
    return this.current;
  }

  monotonic(): number {
    return this.current;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const entry = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.pending.push(entry);
    return { cancel: () => (this.pending = this.pending.filter((p) => p !== entry)) };
  }

  /** Timers waiting to fire. */
  get timers(): number {
    return this.pending.length;
  }

  /** When the next timer fires, if any. */
  get nextAt(): number | undefined {
    return this.pending.reduce<number | undefined>(
      (min, p) => (min === undefined || p.at < min ? p.at : min),
      undefined,
    );
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due in order, each at its own time.
   * Between timers the microtask queue and pending I/O callbacks run, so async code a timer
   * resumed gets to its next await.
   */
  async advance(ms: number): Promise<void> {
    const until = this.current + ms;
    for (;;) {
      await settle();
      const due = this.pending.filter((p) => p.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.pending = this.pending.filter((p) => p !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
    }
    this.current = until;
    await settle();
  }
}

/** Lets promise chains and setImmediate callbacks run to their next real wait. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
