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

/**
 * Deadlines of delayed keys, earliest first (ties in the order they were scheduled). Entries are
 * never removed from the middle: one superseded by an earlier deadline stays until it surfaces and
 * is then recognised as stale by its owner.
 */
class DeadlineHeap {
  private readonly items: Array<{ at: number; seq: number; key: string }> = [];
  private seq = 0;

  get length(): number {
    return this.items.length;
  }

  peek(): { at: number; key: string } | undefined {
    return this.items[0];
  }

  push(key: string, at: number): void {
    const { items } = this;
    items.push({ at, seq: this.seq++, key });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { at: number; key: string } | undefined {
    const { items } = this;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    for (let i = 0; ; ) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < items.length && this.before(left, smallest)) smallest = left;
      if (right < items.length && this.before(right, smallest)) smallest = right;
      if (smallest === i) break;
      this.swap(i, smallest);
      i = smallest;
    }
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }

  private before(a: number, b: number): boolean {
    const x = this.items[a]!;
    const y = this.items[b]!;
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }

  private swap(a: number, b: number): void {
    const { items } = this;
    [items[a], items[b]] = [items[b]!, items[a]!];
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
  /**
   * When each delayed key is due. One timer, for the earliest deadline, serves them all: a timer
   * per key (a renewal scheduled for every ServiceAccount) cost ~300 bytes each.
   */
  private readonly delayed = new Map<string, number>();
  private readonly deadlines = new DeadlineHeap();
  private timer: { at: number; timer: Timer } | undefined;
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
    if (existing !== undefined && existing <= at) return;
    this.delayed.set(key, at);
    this.deadlines.push(key, at);
    // Superseded deadlines stay in the heap until they surface; rebuild before they dominate it.
    if (this.deadlines.length > 2 * this.delayed.size + 1024) this.rebuildDeadlines();
    this.arm();
  }

  /** When the key is next due, if it is scheduled. */
  scheduledAt(key: string): number | undefined {
    return this.delayed.get(key);
  }

  private rebuildDeadlines(): void {
    this.deadlines.clear();
    for (const [key, at] of this.delayed) this.deadlines.push(key, at);
  }

  /** The earliest deadline still current, dropping superseded ones from the top of the heap. */
  private nextDeadline(): { at: number; key: string } | undefined {
    for (;;) {
      const top = this.deadlines.peek();
      if (!top || this.delayed.get(top.key) === top.at) return top;
      this.deadlines.pop();
    }
  }

  /** Keeps the one timer set for the earliest deadline. */
  private arm(): void {
    const next = this.nextDeadline();
    if (this.timer && next && this.timer.at <= next.at) return;
    this.timer?.timer.cancel();
    this.timer = undefined;
    if (!next) return;
    const at = next.at;
    const timer = this.clock.setTimer(() => this.fire(), Math.max(at - this.clock.now(), 0));
    this.timer = { at, timer };
  }

  /** Adds every key now due; a clock behind the timer just waits for the rest. */
  private fire(): void {
    this.timer = undefined;
    const now = this.clock.now();
    for (let next = this.nextDeadline(); next && next.at <= now; next = this.nextDeadline()) {
      this.deadlines.pop();
      this.delayed.delete(next.key);
      this.add(next.key);
    }
    if (!this.shuttingDown) this.arm();
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
    this.timer?.timer.cancel();
    this.timer = undefined;
    this.delayed.clear();
    this.deadlines.clear();
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
