// Reads objects one by one for an informer that watches metadata only: a key
// is asked for when its resourceVersion is new to the store, and read with a
// GET. A few reads run at once; a key asked for again while its read is in
// flight is read once more afterwards (the answer in flight may predate what
// was asked for), and a failed read is retried with backoff. What was read
// goes back to the informer through `found`.
import type { Logger } from 'pino';
import { describeApiError } from './client.js';
import type { Clock } from './clock.js';

export interface ContentFetcherOptions<R> {
  name: string;
  /** The object now, or undefined when it is gone (404). */
  get(key: string): Promise<R | undefined>;
  found(key: string, obj: R | undefined): void;
  clock: Clock;
  log: Logger;
  concurrency: number;
}

export class ContentFetcher<R> {
  /** Keys waiting for a read, in the order asked. */
  private readonly waiting = new Set<string>();
  /**
   * Keys being read; `again` when asked for once more meanwhile, `forgotten` when the key left the
   * watch meanwhile (its answer is dropped).
   */
  private readonly reading = new Map<string, { again: boolean; forgotten: boolean }>();
  /** Keys whose last read failed: how many times in a row, and the timer of the retry. */
  private readonly retries = new Map<string, { failures: number; timer?: { cancel(): void } }>();
  private stopped = false;
  /** Reads done (for tests and the informer's log). */
  reads = 0;

  constructor(private readonly opts: ContentFetcherOptions<R>) {}

  /** Reads `key` soon; if a read of it is in flight, once more after it. */
  request(key: string): void {
    if (this.stopped) return;
    const inFlight = this.reading.get(key);
    if (inFlight) {
      inFlight.again = true;
      return;
    }
    this.retries.get(key)?.timer?.cancel();
    this.waiting.add(key);
    this.pump();
  }

  /**
   * The store learnt about `key` from elsewhere (a write's answer, a deletion): a read in flight
   * may answer with an older state, so it is discarded and the key read again.
   */
  invalidate(key: string): void {
    const inFlight = this.reading.get(key);
    if (inFlight) inFlight.again = true;
  }

  /**
   * The key left the watch (deleted, or out of its selector): nothing pending for it is read or
   * handed on. A GET ignores selectors, so a read still pending would otherwise put back an object
   * the watch no longer reports, and no later event would take it out. A later event asks again.
   */
  forget(key: string): void {
    this.waiting.delete(key);
    this.retries.get(key)?.timer?.cancel();
    this.retries.delete(key);
    const inFlight = this.reading.get(key);
    if (inFlight) {
      inFlight.again = false;
      inFlight.forgotten = true;
    }
  }

  /** Keys waiting or being read. */
  get pending(): number {
    return this.waiting.size + this.reading.size;
  }

  stop(): void {
    this.stopped = true;
    this.waiting.clear();
    for (const retry of this.retries.values()) retry.timer?.cancel();
    this.retries.clear();
  }

  private pump(): void {
    while (!this.stopped && this.reading.size < this.opts.concurrency && this.waiting.size > 0) {
      const key = this.waiting.values().next().value as string;
      this.waiting.delete(key);
      void this.read(key);
    }
  }

  private async read(key: string): Promise<void> {
    const flight = { again: false, forgotten: false };
    this.reading.set(key, flight);
    let answer: { obj: R | undefined } | { err: unknown };
    try {
      answer = { obj: await this.opts.get(key) };
      this.reads++;
      this.retries.delete(key);
    } catch (err) {
      answer = { err };
    }
    // No longer in flight before the answer is handed on: `found` of a 404 removes the key, and
    // the removal must not reach this very read (it once made the key be read again, forever).
    this.reading.delete(key);
    if (flight.again)
      this.request(key); // asked for again meanwhile: the answer may be stale
    else if (!this.stopped && !flight.forgotten) {
      // (a key that left the watch meanwhile has its answer dropped)
      if ('obj' in answer) this.opts.found(key, answer.obj);
      else this.retryLater(key, answer.err);
    }
    this.pump();
  }

  private retryLater(key: string, err: unknown): void {
    if (this.stopped) return;
    const retry = this.retries.get(key) ?? { failures: 0 };
    retry.failures++;
    const delay = Math.min(200 * 2 ** Math.min(retry.failures, 8), 30_000);
    this.opts.log.warn(
      { informer: this.opts.name, key, err: describeApiError(err), retryInMs: delay },
      'reading a changed object failed; retrying',
    );
    retry.timer = this.opts.clock.setTimer(() => {
      retry.timer = undefined;
      this.request(key);
    }, delay);
    this.retries.set(key, retry);
  }
}
