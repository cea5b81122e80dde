import type { KubernetesObject } from '@kubernetes/client-node';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeApiServer } from './fake-api.js';
import { FakeClock, settle } from './fake-clock.js';
import { Informer, type ListOptions, type WatchEnd, type WatchSource } from './informer.js';
import { listPage, MERGE_PATCH_CONTENT, PARTIAL_METADATA_LIST, secretsPath } from './raw.js';

interface Secret extends KubernetesObject {
  data?: Record<string, string>;
}

const log = pino({ level: 'silent' });
const SECRETS = '/api/v1/secrets';
let informer: Informer<Secret, string> | undefined;

afterEach(async () => {
  await informer?.stop();
  informer = undefined;
});

/** A watch source that can go deaf: events meanwhile are lost, as when a watch misses them. */
function deafenable(inner: WatchSource): WatchSource & { deaf: boolean } {
  const source = {
    deaf: false,
    watch: ((path, params, onEvent, done) =>
      inner.watch(
        path,
        params,
        (phase, obj) => !source.deaf && onEvent(phase, obj),
        done,
      )) as WatchSource['watch'],
  };
  return source;
}

function setup(
  opts: {
    resyncPeriodMs?: number;
    stallTimeoutMs?: number;
    labelSelector?: string;
    concurrency?: number;
  } = {},
) {
  const api = new FakeApiServer();
  const clock = new FakeClock();
  const watch = deafenable(api.metadataWatchSource);
  const lists = { full: 0, metadata: 0 };
  const events: string[] = [];
  const resynced: string[] = [];
  const restarts: WatchEnd[] = [];
  /** Reads through the fetcher; past 10 they fail, so a read loop ends the test instead of hanging it. */
  const gets = { count: 0, gate: undefined as Promise<void> | undefined };
  /** Reads wait from now until the returned function lets them through. */
  const holdReads = () => {
    let open!: () => void;
    gets.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    return open;
  };
  const seed = (name: string, v: string, labels?: Record<string, string>) =>
    api.seed(secretsPath('ns', name), { metadata: { name, labels }, data: { v } });
  const start = async () => {
    informer = new Informer<Secret, string>({
      name: 'secrets',
      source: {
        watchPath: SECRETS,
        labelSelector: opts.labelSelector,
        list: async (o: ListOptions) => {
          lists.full++;
          return listPage<Secret>(api, SECRETS, o);
        },
        metadata: {
          concurrency: opts.concurrency,
          list: async (o: ListOptions) => {
            lists.metadata++;
            return listPage<KubernetesObject>(api, SECRETS, o, PARTIAL_METADATA_LIST);
          },
          get: async (key) => {
            if (++gets.count > 10) throw new Error('read in a loop');
            await gets.gate;
            const [namespace = '', name = ''] = key.split('/');
            return api.get(secretsPath(namespace, name))
              ? api.request<Secret>('GET', secretsPath(namespace, name))
              : undefined;
          },
        },
      },
      watch,
      clock,
      summarize: (s) => {
        if (s.data === undefined) throw new Error('summarised an object without its content');
        return `${s.metadata?.name}=${s.data.v}`;
      },
      handlers: {
        added: (key, v) => events.push(`added ${key} ${v}`),
        updated: (key, before, after) => events.push(`updated ${key} ${before} -> ${after}`),
        deleted: (key) => events.push(`deleted ${key}`),
        resync: (key) => resynced.push(key),
      },
      log,
      resyncPeriodMs: opts.resyncPeriodMs ?? 3_600_000,
      stallTimeoutMs: opts.stallTimeoutMs ?? 3_600_000,
      onWatchRestart: (reason) => restarts.push(reason),
    });
    informer.start();
    await informer.waitForSync();
    await settle();
    return informer;
  };
  const patch = (name: string, v: string) =>
    api.request<Secret>('PATCH', secretsPath('ns', name), { data: { v } }, MERGE_PATCH_CONTENT);
  /** Takes the label `mine` away: a watch selecting on it is told DELETED. */
  const unlabel = (name: string) =>
    api.request(
      'PATCH',
      secretsPath('ns', name),
      { metadata: { labels: { mine: null } } },
      MERGE_PATCH_CONTENT,
    );
  return {
    api,
    clock,
    watch,
    lists,
    events,
    resynced,
    restarts,
    gets,
    holdReads,
    seed,
    start,
    patch,
    unlabel,
  };
}

describe('Informer, metadata only', () => {
  it('seeds the store with one full list, then reads a Secret someone else changed once, from its metadata event', async () => {
    const t = setup();
    t.seed('a', '1');
    t.seed('b', '1');
    const cache = await t.start();
    expect(t.lists).toEqual({ full: 1, metadata: 0 });
    expect(t.api.reads).toEqual([]);

    await t.patch('a', 'edited');
    await settle();
    expect(cache.get('ns/a')).toBe('a=edited');
    expect(t.api.reads).toEqual([secretsPath('ns', 'a')]);
    expect(t.events.at(-1)).toBe('updated ns/a a=1 -> a=edited');
    expect(cache.reads).toBe(1);
  });

  it('reads nothing for a deletion, or for an event whose resourceVersion the store has', async () => {
    const t = setup();
    t.seed('a', '1');
    const cache = await t.start();
    await t.api.request('DELETE', secretsPath('ns', 'a'));
    await settle();
    expect(cache.get('ns/a')).toBeUndefined();
    expect(t.events.at(-1)).toBe('deleted ns/a');
    expect(t.api.reads).toEqual([]);
  });

  it('a Secret deleted while its read is in flight is dropped: the answer is discarded, nothing is read again', async () => {
    const t = setup();
    t.seed('a', '1');
    const cache = await t.start();
    const patched = t.patch('a', 'theirs'); // its event asks for a read…
    await t.api.request('DELETE', secretsPath('ns', 'a')); // …whose answer the deletion makes stale
    await patched;
    await settle();
    expect(t.gets.count).toBe(1);
    expect(cache.get('ns/a')).toBeUndefined();
    expect(t.events.at(-1)).toBe('deleted ns/a');
  });

  it('a Secret that leaves the selector while its read is pending stays out of the store', async () => {
    for (const pending of ['in flight', 'queued', 'retrying'] as const) {
      const t = setup({ labelSelector: 'mine=yes', concurrency: 1 });
      t.seed('a', '1', { mine: 'yes' });
      t.seed('b', '1', { mine: 'yes' });
      const cache = await t.start();
      const open = t.holdReads();
      if (pending === 'retrying') t.api.failNext('GET', secretsPath('ns', 'a'), 500);
      if (pending === 'queued') await t.patch('b', '2'); // b's read holds the only slot (concurrency 1 below)
      await t.patch('a', '2'); // a's event asks for a read
      if (pending === 'retrying') {
        open();
        await settle(); // the read failed: a retry is scheduled
      }
      // The label goes: the API server tells the watch DELETED, and a GET would still find it.
      await t.unlabel('a');
      open();
      await settle();
      await t.clock.advance(60_000);
      expect(cache.get('ns/a'), pending).toBeUndefined();
      expect(t.events.filter((e) => e.includes('ns/a')).at(-1), pending).toBe('deleted ns/a');
      await informer?.stop();
    }
  });

  it('stores our own write from the API answer: its watch event is not read back', async () => {
    const t = setup();
    t.seed('a', '1');
    const cache = await t.start();
    const written = await cache.writing('ns/a', () => t.patch('a', 'ours'));
    await settle();
    expect(written.data?.v).toBe('ours');
    expect(cache.get('ns/a')).toBe('a=ours');
    expect(t.api.reads).toEqual([]);
    expect(t.events.at(-1)).toBe('updated ns/a a=1 -> a=ours');
  });

  it('reads the Secret when someone else wrote after our write: the last event is not our version', async () => {
    const t = setup();
    t.seed('a', '1');
    const cache = await t.start();
    await cache.writing('ns/a', async () => {
      const ours = await t.patch('a', 'ours');
      await t.patch('a', 'theirs'); // lands before our answer is handled
      return ours;
    });
    await settle();
    expect(cache.get('ns/a')).toBe('a=theirs');
    expect(t.api.reads).toEqual([secretsPath('ns', 'a')]);
  });

  it("a write's answer does not put back a Secret that left the watch while the write was under way", async () => {
    const t = setup({ labelSelector: 'mine=yes' });
    t.seed('a', '1', { mine: 'yes' });
    const cache = await t.start();
    await cache.writing('ns/a', async () => {
      const ours = await t.patch('a', 'ours');
      // Someone takes the label away before our answer is handled: the watch says DELETED.
      await t.unlabel('a');
      return ours;
    });
    await settle();
    expect(cache.get('ns/a')).toBeUndefined();
    expect(t.events.at(-1)).toBe('deleted ns/a');
  });

  it('a Secret deleted and created anew by our write while it is under way is stored from the answer', async () => {
    const t = setup();
    t.seed('a', '1');
    const cache = await t.start();
    await cache.writing('ns/a', async () => {
      await t.api.request('DELETE', secretsPath('ns', 'a'));
      return t.api.request<Secret>('POST', secretsPath('ns'), {
        metadata: { name: 'a' },
        data: { v: 'new' },
      });
    });
    await settle();
    expect(cache.get('ns/a')).toBe('a=new');
    expect(t.api.reads).toEqual([]);
  });

  it('a full relist that no longer finds a Secret drops its read in flight', async () => {
    const t = setup({ labelSelector: 'mine=yes', resyncPeriodMs: 60_000 });
    t.seed('a', '1', { mine: 'yes' });
    const cache = await t.start();
    const open = t.holdReads();
    await t.patch('a', '2'); // its read waits
    t.watch.deaf = true; // what follows is missed: the label goes, and 120 Secrets come
    await t.unlabel('a');
    for (let i = 0; i < 120; i++) t.seed(`n${i}`, '1', { mine: 'yes' });
    t.watch.deaf = false;
    await t.clock.advance(150_000); // the resync's metadata relist finds so much changed that it lists in full
    expect(t.lists.full).toBe(2);
    expect(cache.get('ns/a')).toBeUndefined();
    open(); // the read answers with the Secret, label gone
    await settle();
    expect(cache.get('ns/a')).toBeUndefined();
  });

  it('a write that fails still lets an event seen meanwhile be read', async () => {
    const t = setup();
    t.seed('a', '1');
    const cache = await t.start();
    await expect(
      cache.writing('ns/a', async () => {
        await t.patch('a', 'theirs');
        throw new Error('409 conflict');
      }),
    ).rejects.toThrow('409');
    await settle();
    expect(cache.get('ns/a')).toBe('a=theirs');
    expect(t.api.reads).toHaveLength(1);
  });

  it('retries a failed read with backoff', async () => {
    const t = setup();
    t.seed('a', '1');
    const cache = await t.start();
    t.api.failNext('GET', secretsPath('ns', 'a'), 500);
    await t.patch('a', '2');
    await settle();
    expect(cache.get('ns/a')).toBe('a=1');
    await t.clock.advance(1_000);
    expect(cache.get('ns/a')).toBe('a=2');
  });

  it('at the resync period, a metadata-only relist repairs missed events and every key goes to the resync handlers', async () => {
    const t = setup({ resyncPeriodMs: 60_000 });
    for (const name of ['same', 'changed', 'gone']) t.seed(name, '1');
    const cache = await t.start();
    t.watch.deaf = true; // what follows is never delivered
    await t.patch('changed', '2');
    await t.api.request('DELETE', secretsPath('ns', 'gone'));
    t.seed('new', '1');
    t.watch.deaf = false;
    await settle();
    expect(cache.get('ns/changed')).toBe('changed=1');
    expect(t.resynced).toEqual([]);

    await t.clock.advance(75_000); // the period, with its jitter of up to 20%
    expect(t.restarts).toEqual(['resync']);
    expect(t.lists).toEqual({ full: 1, metadata: 1 });
    expect(cache.get('ns/changed')).toBe('changed=2');
    expect(cache.get('ns/gone')).toBeUndefined();
    expect(cache.get('ns/new')).toBe('new=1');
    // Only what changed was read; the unchanged Secret was not.
    expect([...t.api.reads].sort()).toEqual([secretsPath('ns', 'changed'), secretsPath('ns', 'new')]);
    // Every key cached at the relist (a new one is reported as added instead).
    expect([...t.resynced].sort()).toEqual(['ns/changed', 'ns/same']);
    expect(t.events).toContain('added ns/new new=1');
  });

  it('a watch that goes silent is restarted after the stall timeout; the metadata relist repairs what it missed', async () => {
    const t = setup({ stallTimeoutMs: 10_000 });
    t.seed('a', '1');
    const cache = await t.start();
    t.watch.deaf = true;
    await t.patch('a', '2');
    await t.clock.advance(16_000);
    expect(t.restarts).toEqual(['stalled']);
    expect(t.lists).toEqual({ full: 1, metadata: 1 });
    expect(cache.get('ns/a')).toBe('a=2');
    // A stall is not the periodic resync: keys are not all handed out again.
    expect(t.resynced).toEqual([]);
  });

  it('a relist that finds many changes lists in full rather than reading each', async () => {
    const t = setup({ stallTimeoutMs: 10_000 });
    const names = Array.from({ length: 150 }, (_, i) => `s${i}`);
    for (const name of names) t.seed(name, '1');
    const cache = await t.start();
    t.watch.deaf = true;
    for (const name of names) await t.patch(name, '2');
    await t.clock.advance(16_000);
    expect(t.restarts).toEqual(['stalled']);
    expect(t.lists).toEqual({ full: 2, metadata: 1 });
    expect(t.api.reads).toEqual([]);
    expect(names.every((name) => cache.get(`ns/${name}`) === `${name}=2`)).toBe(true);
  });
});
