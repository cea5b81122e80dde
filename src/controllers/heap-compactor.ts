// V8 keeps the heap that a burst of allocation grew to until its memory
// reducer runs, about two minutes into a quiet spell. At 10,000
// ServiceAccounts the start-up burst (the initial lists, then the first pass)
// leaves the young generation at 32 MB and old space at ~75 MB, most of it
// garbage; one full collection shortly after it (~50 ms) gives that memory
// back at once: RSS 226 → 188 MB in the measurement (docs/BENCHMARKS.md). V8
// shrinks the young generation only when it sees a low allocation rate: a
// collection 1 s or 5 s after the burst left it at 32 MB, 10 s after released
// it — in most runs, not all (one bench run of two kept it), so a collection
// that leaves the young generation large is tried again after another quiet
// period, up to three times. An idle controller has two such bursts, start-up
// and the periodic relist, so those are the only times this runs; never per
// reconcile.
import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';

export type Collect = () => void;

/**
 * V8's full-collection function without `--expose-gc` on the command line: the flag, set at run
 * time, installs `gc` in contexts created afterwards (never in the main one). Undefined if refused.
 */
export function exposeCollector(): Collect | undefined {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as Collect;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Collect) : undefined;
  } catch {
    return undefined;
  }
}

export interface Compaction {
  reasons: string[];
  durationMs: number;
  /** Size of V8's young generation (new space) after the collection. */
  youngBytesAfter: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  heapUsedBeforeBytes: number;
  heapUsedAfterBytes: number;
}

export interface HeapCompactorOptions {
  log: Logger;
  /** How long requests must stop coming before it collects (default 10 s: see the top of this file). */
  quietMs?: number;
  /** The full collection; null when none is available. Default: exposeCollector(). */
  collect?: Collect | null;
  /** Young generation size read after a collection (default: V8's new space). */
  youngBytes?: () => number;
  /** The heap's limit (default: V8's, i.e. --max-old-space-size and the young generation). */
  heapLimitBytes?: () => number;
  /**
   * Called when what stays live after a collection passes `heapWarningShare` of the limit: more
   * ServiceAccounts than the heap flag was sized for (README, "Sizing").
   */
  onHeapHigh?: (usedBytes: number, limitBytes: number) => void;
  /** Default 0.8. */
  heapWarningShare?: number;
}

/** A young generation above this after a collection was not given back (shrunk, it is 1–2 MB). */
export const YOUNG_RELEASED_BYTES = 4 * 2 ** 20;
const ATTEMPTS = 3;

const newSpaceBytes = () =>
  getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;

export class HeapCompactor {
  private readonly collect: Collect | undefined;
  private readonly quietMs: number;
  private readonly pending = new Set<string>();
  private readonly youngBytes: () => number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: HeapCompactorOptions) {
    this.collect = opts.collect === null ? undefined : (opts.collect ?? exposeCollector());
    this.quietMs = opts.quietMs ?? 10_000;
    this.youngBytes = opts.youngBytes ?? newSpaceBytes;
    if (!this.collect) opts.log.debug('no full-collection function: the heap is left to V8 alone');
  }

  /** After a burst: collects once requests have stopped for `quietMs`; requests in between merge. */
  request(reason: string): void {
    if (!this.collect || this.stopped) return;
    this.pending.add(reason);
    this.schedule(1);
  }

  private schedule(attempt: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const reasons = [...this.pending];
      const done = this.compactNow(reasons);
      if (done && done.youngBytesAfter > YOUNG_RELEASED_BYTES && attempt < ATTEMPTS)
        this.schedule(attempt + 1);
      else this.pending.clear();
    }, this.quietMs);
    this.timer.unref();
  }

  /** One full collection now; undefined when there is no collector. */
  compactNow(reasons: string[]): Compaction | undefined {
    if (!this.collect) return undefined;
    const before = process.memoryUsage();
    const started = performance.now();
    this.collect();
    const durationMs = Math.round((performance.now() - started) * 10) / 10;
    const after = process.memoryUsage();
    const compaction: Compaction = {
      reasons,
      durationMs,
      youngBytesAfter: this.youngBytes(),
      rssBeforeBytes: before.rss,
      rssAfterBytes: after.rss,
      heapUsedBeforeBytes: before.heapUsed,
      heapUsedAfterBytes: after.heapUsed,
    };
    const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
    const limit = (this.opts.heapLimitBytes ?? (() => getHeapStatistics().heap_size_limit))();
    if (after.heapUsed > limit * (this.opts.heapWarningShare ?? 0.8)) {
      this.opts.log.warn(
        { heapUsedMb: mb(after.heapUsed), heapLimitMb: mb(limit) },
        'the live heap is close to its limit: raise --max-old-space-size and the memory limit (README, "Sizing")',
      );
      this.opts.onHeapHigh?.(after.heapUsed, limit);
    }
    this.opts.log.debug(
      {
        reasons,
        durationMs,
        rssMb: [mb(before.rss), mb(after.rss)],
        heapUsedMb: [mb(before.heapUsed), mb(after.heapUsed)],
        youngMb: mb(compaction.youngBytesAfter),
      },
      'heap compacted after a burst',
    );
    return compaction;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }
}
