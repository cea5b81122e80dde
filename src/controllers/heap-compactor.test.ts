import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { exposeCollector, HeapCompactor } from './heap-compactor.js';

const log = pino({ level: 'silent' });

describe('exposeCollector', () => {
  it('finds a full-collection function without --expose-gc, and leaves no global gc behind', () => {
    expect(typeof exposeCollector()).toBe('function');
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});

describe('HeapCompactor', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gives back what a burst left unreachable', () => {
    const compactor = new HeapCompactor({ log });
    // Built and dropped inside a function: nothing (not even an assertion) keeps it reachable.
    const burst = () =>
      Array.from({ length: 300_000 }, (_, i) => ({ id: i, text: `object ${i} of a burst` })).length;
    expect(burst()).toBe(300_000);
    const compaction = compactor.compactNow(['test'])!;
    expect(compaction.reasons).toEqual(['test']);
    // 300,000 small objects with their strings are well over 10 MB.
    expect(compaction.heapUsedBeforeBytes - compaction.heapUsedAfterBytes).toBeGreaterThan(10 * 2 ** 20);
  });

  it('collects once, after requests have stopped for the quiet period, with every reason', () => {
    vi.useFakeTimers();
    const collect = vi.fn();
    const compactor = new HeapCompactor({ log, collect, quietMs: 1_000, youngBytes: () => 0 });
    compactor.request('start-up');
    vi.advanceTimersByTime(600);
    compactor.request('relist');
    vi.advanceTimersByTime(600);
    expect(collect).not.toHaveBeenCalled(); // the second request restarted the quiet period
    const spy = vi.spyOn(compactor, 'compactNow');
    vi.advanceTimersByTime(400);
    expect(collect).toHaveBeenCalledTimes(1);
    expect(spy).toHaveBeenCalledWith(['start-up', 'relist']);
    vi.advanceTimersByTime(10_000);
    expect(collect).toHaveBeenCalledTimes(1);
  });

  it('tries again after another quiet period while the young generation stays large, at most three times', () => {
    vi.useFakeTimers();
    const MB = 2 ** 20;
    const collect = vi.fn();
    const young = [32 * MB, 1 * MB];
    const compactor = new HeapCompactor({
      log,
      collect,
      quietMs: 1_000,
      youngBytes: () => young.shift() ?? 0,
    });
    compactor.request('start-up');
    vi.advanceTimersByTime(1_000);
    expect(collect).toHaveBeenCalledTimes(1); // kept 32 MB
    vi.advanceTimersByTime(1_000);
    expect(collect).toHaveBeenCalledTimes(2); // released
    vi.advanceTimersByTime(10_000);
    expect(collect).toHaveBeenCalledTimes(2);

    const stubborn = vi.fn();
    const never = new HeapCompactor({ log, collect: stubborn, quietMs: 1_000, youngBytes: () => 32 * MB });
    never.request('relist');
    vi.advanceTimersByTime(60_000);
    expect(stubborn).toHaveBeenCalledTimes(3);
  });

  it('does nothing once stopped, or without a collector', () => {
    vi.useFakeTimers();
    const collect = vi.fn();
    const stopped = new HeapCompactor({ log, collect, quietMs: 10 });
    stopped.request('relist');
    stopped.stop();
    stopped.request('relist');
    vi.advanceTimersByTime(1_000);
    expect(collect).not.toHaveBeenCalled();

    const none = new HeapCompactor({ log, collect: null, quietMs: 10 });
    none.request('start-up');
    vi.advanceTimersByTime(1_000);
    expect(none.compactNow(['start-up'])).toBeUndefined();
  });
});

describe('HeapCompactor heap warning', () => {
  it('warns when what stays live after a collection passes the share of the limit, and not below it', () => {
    const high: Array<[number, number]> = [];
    const used = process.memoryUsage().heapUsed;
    const near = new HeapCompactor({
      log,
      collect: () => {},
      youngBytes: () => 0,
      heapLimitBytes: () => used * 1.1,
      onHeapHigh: (u, l) => high.push([u, l]),
    });
    near.compactNow(['start-up']);
    expect(high).toHaveLength(1);
    expect(high[0]![1]).toBe(used * 1.1);
    const far = new HeapCompactor({
      log,
      collect: () => {},
      youngBytes: () => 0,
      heapLimitBytes: () => used * 100,
      onHeapHigh: (u, l) => high.push([u, l]),
    });
    far.compactNow(['start-up']);
    expect(high).toHaveLength(1);
  });
});
