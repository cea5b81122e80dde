import type { KubernetesObject } from '@kubernetes/client-node';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock, settle } from './fake-clock.js';
import { Informer, type ListOptions, type WatchEnd, type WatchSource } from './informer.js';

interface Obj extends KubernetesObject {
  data?: string;
}

const obj = (name: string, rv: string, data = ''): Obj => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv },
  data,
});

/** An API server in memory: a list of objects and the watches opened on it. */
class FakeApi {
  objects = new Map<string, Obj>();
  resourceVersion = 1;
  lists: ListOptions[] = [];
  failLists = 0;
  watches: Array<{
    params: Record<string, unknown>;
    emit: (phase: string, o: unknown) => void;
    end: (err?: unknown) => void;
    aborted: boolean;
  }> = [];

  put(name: string, data = ''): Obj {
    const o = obj(name, String(++this.resourceVersion), data);
    this.objects.set(name, o);
    return o;
  }

  list = async (opts: ListOptions) => {
    this.lists.push(opts);
    if (this.failLists > 0) {
      this.failLists--;
      throw new Error('connection refused');
    }
    return { items: [...this.objects.values()], metadata: { resourceVersion: String(this.resourceVersion) } };
  };

  source: WatchSource = {
    watch: async (_path, params, onEvent, done) => {
      const w = { params, emit: onEvent, end: done, aborted: false };
      this.watches.push(w);
      return {
        abort: () => {
          w.aborted = true;
        },
      };
    },
  };

  get current() {
    return this.watches.at(-1)!;
  }
}

const log = pino({ level: 'silent' });
let informer: Informer<Obj, string> | undefined;

afterEach(async () => {
  await informer?.stop();
  informer = undefined;
});

function start(
  api: FakeApi,
  clock: FakeClock,
  extra: { relistPeriodMs?: number; resync?: boolean } = {},
  watch: WatchSource = api.source,
) {
  const events: string[] = [];
  const restarts: WatchEnd[] = [];
  let summaries = 0;
  informer = new Informer<Obj, string>({
    name: 'test',
    source: { watchPath: '/api/v1/things', list: api.list },
    watch,
    clock,
    summarize: (o) => {
      summaries++;
      return `${o.metadata?.name}=${o.data}`;
    },
    handlers: {
      added: (key, v) => events.push(`added ${key} ${v}`),
      updated: (key, before, after) => events.push(`updated ${key} ${before} -> ${after}`),
      deleted: (key, before) => events.push(`deleted ${key} ${before}`),
      relisted: () => events.push('relisted'),
      ...(extra.resync ? { resync: (key: string) => events.push(`resync ${key}`) } : {}),
    },
    log,
    resyncPeriodMs: 60_000,
    relistPeriodMs: extra.relistPeriodMs,
    stallTimeoutMs: 10_000,
    onWatchRestart: (reason) => restarts.push(reason),
  });
  informer.start();
  return { informer, events, restarts, summaries: () => summaries };
}

describe('Informer', () => {
  it('stops between list pages: the rest is not asked for and the partial list is not applied', async () => {
    const api = new FakeApi();
    const pages: ListOptions[] = [];
    let release!: () => void;
    const firstPage = new Promise<void>((resolve) => {
      release = resolve;
    });
    const events: string[] = [];
    informer = new Informer<Obj, string>({
      name: 'paged',
      source: {
        watchPath: '/api/v1/things',
        list: async (o) => {
          pages.push(o);
          if (!o._continue) await firstPage;
          return {
            items: [obj(o._continue ? 'b' : 'a', '3')],
            metadata: { resourceVersion: '5', _continue: o._continue ? undefined : 'page-2' },
          };
        },
      },
      watch: api.source,
      clock: new FakeClock(),
      summarize: (o) => `${o.metadata?.name}`,
      handlers: { added: (key) => events.push(`added ${key}`), relisted: () => events.push('relisted') },
      log,
      resyncPeriodMs: 60_000,
      stallTimeoutMs: 10_000,
    });
    informer.start();
    await settle();
    const stopped = informer.stop();
    release();
    await stopped;
    informer = undefined;
    expect(pages).toHaveLength(1);
    expect(events).toEqual([]);
    expect(api.watches).toHaveLength(0);
  });

  it('lists first, reports each object as added, then watches from the list resourceVersion', async () => {
    const api = new FakeApi();
    api.put('a', '1');
    api.put('b', '2');
    const clock = new FakeClock();
    const { informer, events } = start(api, clock);
    await informer.waitForSync();
    await settle();
    expect(events).toEqual(['added ns/a a=1', 'added ns/b b=2', 'relisted']);
    expect(informer.get('ns/a')).toBe('a=1');
    expect(api.current.params.resourceVersion).toBe(String(api.resourceVersion));
    expect(api.current.params.allowWatchBookmarks).toBe(true);
  });

  it('applies watch events, ignores a replayed one, and resumes after a bookmark from where it got to', async () => {
    const api = new FakeApi();
    const clock = new FakeClock();
    const { informer, events } = start(api, clock);
    await informer.waitForSync();
    await settle();
    const a = api.put('a', '1');
    api.current.emit('ADDED', a);
    api.current.emit('ADDED', a); // a restarted watch replays what it already delivered
    const a2 = api.put('a', '2');
    api.current.emit('MODIFIED', a2);
    api.current.emit('DELETED', a2);
    api.current.emit('BOOKMARK', { metadata: { resourceVersion: '99' } });
    expect(events.slice(1)).toEqual(['added ns/a a=1', 'updated ns/a a=1 -> a=2', 'deleted ns/a a=2']);
    expect(informer.size).toBe(0);

    // The server closes the watch (its timeout): a new one resumes from the bookmark, no relist.
    api.current.end();
    await settle();
    expect(api.watches).toHaveLength(2);
    expect(api.current.params.resourceVersion).toBe('99');
    expect(api.lists).toHaveLength(1);
  });

  it('relists after an ERROR event (410 Gone) and reports only the differences', async () => {
    const api = new FakeApi();
    api.put('keep', 'x');
    api.put('change', '1');
    api.put('gone', 'x');
    const clock = new FakeClock();
    const { informer, events, restarts, summaries } = start(api, clock);
    await informer.waitForSync();
    await settle();
    expect(summaries()).toBe(3);
    events.length = 0;

    // Missed while the watch was down: one changed, one deleted, one added.
    api.put('change', '2');
    api.objects.delete('gone');
    api.put('new', 'y');
    api.current.emit('ERROR', { code: 410, message: 'too old resource version' });
    await settle();

    expect(restarts).toEqual(['expired']);
    expect(api.lists).toHaveLength(2);
    expect(events).toEqual([
      'deleted ns/gone gone=x',
      'updated ns/change change=1 -> change=2',
      'added ns/new new=y',
      'relisted',
    ]);
    // The unchanged object (same resourceVersion) was not summarised again.
    expect(summaries()).toBe(5);
    expect(api.watches[0]!.aborted).toBe(true);
  });

  it('backs off a watch that closes at once without an event, rather than reopening it in a loop', async () => {
    const api = new FakeApi();
    api.put('a');
    const clock = new FakeClock();
    const closing: WatchSource = {
      watch: async (path, params, onEvent, done) => {
        const handle = await api.source.watch(path, params, onEvent, done);
        if (api.watches.length < 50) queueMicrotask(() => done(null)); // a proxy that ends every stream
        return handle;
      },
    };
    const { informer, restarts } = start(api, clock, {}, closing);
    await informer.waitForSync();
    await settle(20);
    expect(api.watches).toHaveLength(1);
    expect(restarts).toEqual(['error']);
    await clock.advance(1_000); // past the first backoff: one relist, one more watch
    expect(api.lists).toHaveLength(2);
    expect(api.watches).toHaveLength(2);
  });

  it('backs off a watch that fails at once with an ERROR other than 410', async () => {
    const api = new FakeApi();
    const clock = new FakeClock();
    const failing: WatchSource = {
      watch: async (path, params, onEvent, done) => {
        const handle = await api.source.watch(path, params, onEvent, done);
        if (api.watches.length < 50) queueMicrotask(() => onEvent('ERROR', { code: 500, message: 'etcd' }));
        return handle;
      },
    };
    const { informer } = start(api, clock, {}, failing);
    await informer.waitForSync();
    await settle(20);
    expect(api.lists).toHaveLength(1);
    expect(api.watches).toHaveLength(1);
    await clock.advance(1_000);
    expect(api.lists).toHaveLength(2);
  });

  it('restarts a watch that stays silent past the stall timeout', async () => {
    const api = new FakeApi();
    const clock = new FakeClock();
    const { informer, restarts } = start(api, clock);
    await informer.waitForSync();
    await settle();
    await clock.advance(5_000);
    api.current.emit('BOOKMARK', { metadata: { resourceVersion: '5' } }); // a bookmark counts as life
    await clock.advance(9_000);
    expect(restarts).toEqual([]);
    await clock.advance(5_000);
    expect(restarts).toEqual(['stalled']);
    expect(api.lists).toHaveLength(2);
    expect(api.watches).toHaveLength(2);
  });

  it('relists every resync period, repairing an event the watch never delivered', async () => {
    const api = new FakeApi();
    api.put('a', '1');
    const clock = new FakeClock();
    const { informer, events, restarts } = start(api, clock);
    await informer.waitForSync();
    await settle();
    api.objects.delete('a'); // deleted, but the watch says nothing
    for (let t = 0; t < 80_000; t += 5_000) {
      api.current.emit('BOOKMARK', { metadata: { resourceVersion: String(api.resourceVersion) } });
      await clock.advance(5_000);
    }
    expect(restarts).toContain('resync');
    expect(events).toContain('deleted ns/a a=1');
  });

  it('between relist periods, a resync hands out every key from the store and resumes the watch without a list', async () => {
    const api = new FakeApi();
    api.put('a', '1');
    const clock = new FakeClock();
    const { informer, events, restarts } = start(api, clock, { relistPeriodMs: 150_000, resync: true });
    await informer.waitForSync();
    await settle();
    const listedAt = clock.now();
    const bookmark = () =>
      api.current.emit('BOOKMARK', { metadata: { resourceVersion: String(api.resourceVersion) } });
    api.put('b', '2'); // a later version the watch has not carried yet: the resumed watch starts after it
    bookmark();
    api.objects.delete('a'); // lost by the watch: only a relist can see it
    events.length = 0;
    // Resyncs come every 60–72 s: two of them fall before 150 s, without a list.
    while (restarts.filter((r) => r === 'resync').length < 2) {
      bookmark();
      await clock.advance(5_000);
    }
    expect(api.lists).toHaveLength(1);
    expect(events).toEqual(['resync ns/a', 'resync ns/a']);
    expect(api.current.params.resourceVersion).toBe(String(api.resourceVersion));
    // The first resync at or after 150 s since the list relists, and repairs what the watch lost.
    while (api.lists.length < 2) {
      bookmark();
      await clock.advance(5_000);
    }
    await settle();
    expect(clock.now() - listedAt).toBeGreaterThanOrEqual(150_000);
    expect(events).toContain('deleted ns/a a=1');
    expect(events).toContain('added ns/b b=2');
  });

  it('relists on requestResync whatever the relist period', async () => {
    const api = new FakeApi();
    const clock = new FakeClock();
    const { informer } = start(api, clock, { relistPeriodMs: 3_600_000 });
    await informer.waitForSync();
    await settle();
    informer.requestResync();
    await settle();
    expect(api.lists).toHaveLength(2);
  });

  it('backs off after a failed list and tries again once the pause is over', async () => {
    const api = new FakeApi();
    api.failLists = 2;
    const clock = new FakeClock();
    const { informer, restarts } = start(api, clock);
    await settle();
    expect(informer.hasSynced).toBe(false);
    expect(restarts).toEqual(['error']);
    await clock.advance(1_000);
    expect(restarts).toEqual(['error', 'error']);
    await clock.advance(2_000);
    expect(informer.hasSynced).toBe(true);
    expect(api.lists).toHaveLength(3);
  });
});
