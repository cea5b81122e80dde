import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeClock } from './fake-clock.js';
import { runWorkers, WorkQueue } from './workqueue.js';

describe('WorkQueue', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('holds a key once however often it is added', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.depth).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands a key being processed to a second worker, and re-queues it when done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const first = await q.get();
    q.add('a'); // arrives while processing
    expect(q.depth).toBe(0);
    q.done(first!);
    expect(q.depth).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const q = new WorkQueue();
    const next = q.get();
    q.add('late');
    expect(await next).toBe('late');
  });

  it('keeps the earliest deadline when a key is scheduled twice', () => {
    const q = new WorkQueue({ now: () => Date.now() });
    q.addAfter('k', 10_000);
    q.addAfter('k', 5_000);
    q.addAfter('k', 20_000);
    expect(q.scheduledAt('k')).toBe(Date.now() + 5_000);
    vi.advanceTimersByTime(4_999);
    expect(q.depth).toBe(0);
    vi.advanceTimersByTime(1);
    expect(q.depth).toBe(1);
    expect(q.scheduled).toBe(0);
  });

  it('waits past the 24.8-day setTimeout limit by re-arming', () => {
    const q = new WorkQueue({ now: () => Date.now() });
    const fortyDays = 40 * 24 * 3600_000;
    q.addAfter('renew', fortyDays);
    vi.advanceTimersByTime(2 ** 31);
    expect(q.depth).toBe(0);
    vi.advanceTimersByTime(fortyDays - 2 ** 31);
    expect(q.depth).toBe(1);
  });

  it('backs off exponentially per key and resets on forget', () => {
    const q = new WorkQueue({ baseRetryDelayMs: 100, maxRetryDelayMs: 1_000 });
    expect([1, 2, 3, 4, 5].map(() => q.addRateLimited('k'))).toEqual([100, 200, 400, 800, 1_000]);
    expect(q.retries('k')).toBe(5);
    q.forget('k');
    expect(q.addRateLimited('k')).toBe(100);
  });

  it('hands out urgent keys first, moving a waiting key to the front without duplicating it', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('c');
    q.addUrgent('c');
    q.addUrgent('z');
    expect(q.depth).toBe(4);
    const order = [await q.get(), await q.get(), await q.get(), await q.get()];
    expect(order).toEqual(['c', 'z', 'a', 'b']);
    expect(q.depth).toBe(0);
    for (const key of order) q.done(key!);
    expect(q.isIdle).toBe(true);
  });

  it('reports idle once nothing is queued or processing', async () => {
    const q = new WorkQueue();
    q.add('a');
    let idle = false;
    const whenIdle = q.whenIdle().then(() => {
      idle = true;
    });
    const key = await q.get();
    await Promise.resolve();
    expect(idle).toBe(false);
    q.done(key!);
    await whenIdle;
    expect(idle).toBe(true);
  });

  it('releases waiting workers on shutdown and ignores later adds', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('x');
    expect(q.depth).toBe(0);
  });
});

describe('runWorkers', () => {
  it('retries a failing key with backoff and forgets it after success', async () => {
    const q = new WorkQueue({ baseRetryDelayMs: 1 });
    let attempts = 0;
    const errors: string[] = [];
    q.add('flaky');
    const running = runWorkers(
      q,
      2,
      async (key) => {
        attempts++;
        if (attempts < 3) throw new Error(`boom ${key}`);
        q.shutDown();
      },
      (key, err) => errors.push(`${key}: ${(err as Error).message}`),
    );
    await running;
    expect(attempts).toBe(3);
    expect(errors).toEqual(['flaky: boom flaky', 'flaky: boom flaky']);
    expect(q.retries('flaky')).toBe(0);
  });

  it('processes distinct keys concurrently but one key at a time', async () => {
    const q = new WorkQueue();
    const active = new Set<string>();
    let maxParallel = 0;
    let overlapSameKey = false;
    let handled = 0;
    const seen = new Set<string>();
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    const running = runWorkers(
      q,
      4,
      async (key) => {
        if (active.has(key)) overlapSameKey = true;
        active.add(key);
        maxParallel = Math.max(maxParallel, active.size);
        if (!seen.has(key)) q.add(key); // a second event for the same key while it is processing
        seen.add(key);
        await new Promise((r) => setImmediate(r));
        active.delete(key);
        if (++handled === 8) q.shutDown();
      },
      () => {},
    );
    await running;
    expect(overlapSameKey).toBe(false);
    expect(maxParallel).toBe(4);
    expect(handled).toBe(8);
  });
});

describe('WorkQueue on an injected clock', () => {
  it('hands out a key scheduled with addAfter when the fake clock reaches it, not before', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter('renew', 60_000);
    expect(q.scheduledAt('renew')).toBe(clock.now() + 60_000);
    await clock.advance(59_999);
    expect(q.depth).toBe(0);
    await clock.advance(1);
    expect(q.depth).toBe(1);
    expect(await q.get()).toBe('renew');
  });

  it('backs a failing key off on the same clock', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, baseRetryDelayMs: 1_000 });
    expect(q.addRateLimited('k')).toBe(1_000);
    expect(q.addRateLimited('k')).toBe(2_000);
    await clock.advance(999);
    expect(q.depth).toBe(0);
    await clock.advance(1);
    expect(q.depth).toBe(1);
  });
});

describe('WorkQueue deadlines', () => {
  it('serves every scheduled key from one timer, handing keys out in deadline order', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    const delays = Array.from({ length: 500 }, (_, i) => ((i * 7919) % 500) + 1);
    for (const [i, d] of delays.entries()) q.addAfter(`k${i}`, d * 1_000);
    expect(q.scheduled).toBe(500);
    expect(clock.timers).toBe(1);
    const order: number[] = [];
    for (let t = 1; t <= 500; t++) {
      await clock.advance(1_000);
      while (q.depth > 0) {
        const key = (await q.get())!;
        order.push(delays[Number(key.slice(1))]!);
        q.done(key);
      }
      expect(order).toHaveLength(t);
    }
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(q.scheduled).toBe(0);
    expect(clock.timers).toBe(0);
  });

  it('moves a key to an earlier deadline and never hands it out for the superseded one', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    // Many supersessions: the heap is compacted, the answers stay the same.
    for (let i = 0; i < 5_000; i++) q.addAfter('k', 100_000 - i);
    q.addAfter('other', 200_000);
    expect(q.scheduledAt('k')).toBe(clock.now() + 95_001);
    await clock.advance(95_000);
    expect(q.depth).toBe(0);
    await clock.advance(1);
    expect(await q.get()).toBe('k');
    q.done('k');
    await clock.advance(100_000);
    expect(q.depth).toBe(0);
    await clock.advance(5_000);
    expect(await q.get()).toBe('other');
    expect(q.scheduled).toBe(0);
  });

  it('drops every deadline on shutdown', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter('a', 1_000);
    q.addAfter('b', 2_000);
    q.shutDown();
    expect(q.scheduled).toBe(0);
    expect(clock.timers).toBe(0);
    await clock.advance(5_000);
    expect(q.depth).toBe(0);
  });
});
