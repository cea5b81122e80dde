// A keyed work queue with the semantics controllers rely on:
// - a key waiting in the queue is held once, however often it is added;
// - a key being processed is never handed to a second worker; adding it
//   meanwhile marks it dirty and it is queued again when the first finishes;
// - delayed adds keep the earliest deadline per key;
// - failures back off exponentially per key until `forget`;
// - urgent keys (e.g. certificates already expired) are handed out first.
import { type Clock, systemClock, type Timer } from './clock.js';

/** A FIFO with O(1) push and shift. */
class Fifo {
  private items: string[] = [];
  private head = 0;

  push(item: string): void {
    this.items.push(item);
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

export interface WorkQueueOptions {
  /** First retry delay after a failure. */
  baseRetryDelayMs?: number;
  /** Upper bound for a retry delay. */
  maxRetryDelayMs?: number;
  /** Injected clock, for tests. */
  clock?: Clock;
  /** Only the time of day from a clock (older tests); `clock` wins. */
  now?: () => number;
}

export class WorkQueue {
  private readonly queue = new Fifo();
  private readonly urgent = new Fifo();
  /** Keys waiting to be handed out: dirty and not being processed. A lane may also hold stale duplicates. */
  private waiting = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: Timer }>();
  private readonly failures = new Map<string, number>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private idleWaiters: Array<() => void> = [];
  private shuttingDown = false;
  private readonly baseRetryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly clock: Clock;

  constructor(opts: WorkQueueOptions = {}) {
    this.baseRetryDelayMs = opts.baseRetryDelayMs ?? 100;
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? 5 * 60_000;
    this.clock = opts.clock ?? (opts.now ? { ...systemClock, now: opts.now } : systemClock);
  }

  /** Keys waiting to be handed to a worker (not counting delayed ones). */
  get depth(): number {
    return this.waiting;
  }

  /** Keys scheduled for later. */
  get scheduled(): number {
    return this.delayed.size;
  }

  add(key: string): void {
    this.enqueue(key, this.queue);
  }

  /** Like add, but ahead of every key added normally; moves a waiting key to the front. */
  addUrgent(key: string): void {
    if (!this.shuttingDown && this.dirty.has(key) && !this.processing.has(key)) {
      this.urgent.push(key); // already waiting in the normal lane: that entry becomes a stale duplicate
      return;
    }
    this.enqueue(key, this.urgent);
  }

  private enqueue(key: string, lane: Fifo): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // re-queued by done()
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.waiting++;
    lane.push(key);
  }

  /** Adds the key after `delayMs`, unless it is already due earlier. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    existing?.timer.cancel();
    this.arm(key, at);
  }

  /** When the key is next due, if it is scheduled. */
  scheduledAt(key: string): number | undefined {
    return this.delayed.get(key)?.at;
  }

  private arm(key: string, at: number): void {
    const timer = this.clock.setTimer(
      () => {
        if (this.clock.now() < at) {
          this.arm(key, at); // the clock was behind the timer: wait for the rest
          return;
        }
        this.delayed.delete(key);
        this.add(key);
      },
      Math.max(at - this.clock.now(), 0),
    );
    this.delayed.set(key, { at, timer });
  }

  /** Re-adds a key after a failure, with per-key exponential backoff. */
  addRateLimited(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const delay = Math.min(this.baseRetryDelayMs * 2 ** failures, this.maxRetryDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears a key's failure count, after a success. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Waits for the next key; undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    for (;;) {
      const key = this.urgent.shift() ?? this.queue.shift();
      if (key === undefined) break;
      if (!this.dirty.has(key) || this.processing.has(key)) continue; // a stale duplicate
      this.waiting--;
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key finished; a key added while it was processing goes back in the queue. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
    if (this.isIdle) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Nothing queued and nothing being processed (scheduled keys do not count). */
  get isIdle(): boolean {
    return this.depth === 0 && this.processing.size === 0;
  }

  /** Resolves the next time the queue is idle (at once if it is now). */
  whenIdle(): Promise<void> {
    if (this.isIdle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) timer.cancel();
    this.delayed.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }
}

export type KeyHandler = (key: string) => Promise<void>;

/**
 * Runs `workers` loops that take keys and call `handle`. A handler that throws
 * gets its key retried with backoff; one that returns normally is forgotten.
 * Resolves when the queue shuts down and every loop has finished its key.
 */
export async function runWorkers(
  queue: WorkQueue,
  workers: number,
  handle: KeyHandler,
  onError: (key: string, err: unknown, retryInMs: number) => void,
): Promise<void> {
  const loop = async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        await handle(key);
        queue.forget(key);
      } catch (err) {
        onError(key, err, queue.addRateLimited(key));
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, loop));
}
