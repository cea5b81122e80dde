// List + watch with the safety nets client-node's informer lacks (REFERENCE §6):
// - a periodic relist that diffs against the store, so a missed event is
//   repaired within one resync period;
// - a watchdog that restarts a watch which stays open but delivers nothing
//   (bookmarks count as life, so an idle but healthy watch is left alone);
// - 410 Gone / ERROR events and transport errors lead to a relist with backoff;
// - the store keeps a caller-chosen summary of each object, not the object;
// - optionally metadata only (source.metadata): the watch and the resyncs carry
//   PartialObjectMetadata, and an object is read (GET) only when its
//   resourceVersion is new to the store and not one this process wrote
//   (writing()); the first list, at start-up, is still a full one;
// - at every periodic resync, every object in the store is handed to the
//   `resync` handlers (no API call), so level-triggered controllers look at
//   every key again.
import { type KubeConfig, type KubernetesObject, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError } from './client.js';
import { type Clock, sleep, systemClock } from './clock.js';
import { ContentFetcher } from './content-fetcher.js';

export interface ListPage<R> {
  items: R[];
  metadata?: { resourceVersion?: string; _continue?: string };
}

export interface ListOptions {
  limit: number;
  _continue?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface InformerSource<R extends KubernetesObject> {
  /** Watch path, e.g. `/api/v1/serviceaccounts`. */
  watchPath: string;
  list(opts: ListOptions): Promise<ListPage<R>>;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * Metadata-only mode: the informer's watch source delivers PartialObjectMetadata, resyncs and
   * recoveries list with `list` here, and an object whose resourceVersion is new to the store is
   * read with `get`. The first list (nothing cached yet) uses the full list above.
   */
  metadata?: {
    list(opts: ListOptions): Promise<ListPage<KubernetesObject>>;
    /** The object now, or undefined when it is gone. */
    get(key: string): Promise<R | undefined>;
    /** Reads at once (default 4). */
    concurrency?: number;
  };
}

/** Where watch events come from: the API server (kubeWatchSource), or an in-memory fake in tests. */
export interface WatchSource {
  /**
   * Opens a watch on `path`. `onEvent` gets each event (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR);
   * `done` is called once when the watch ends, with the error if it failed. Resolves with a way to
   * end it from this side.
   */
  watch(
    path: string,
    params: Record<string, string | number | boolean | undefined>,
    // biome-ignore lint/suspicious/noExplicitAny: events carry objects or a Status
    onEvent: (phase: string, obj: any) => void,
    done: (err?: unknown) => void,
  ): Promise<{ abort(): void }>;
}

/** Watches through client-node; `accept` asks for another representation (e.g. PARTIAL_METADATA). */
export function kubeWatchSource(kubeConfig: KubeConfig, accept?: string): WatchSource {
  const config = accept ? withAccept(kubeConfig, accept) : kubeConfig;
  return { watch: (path, params, onEvent, done) => new Watch(config).watch(path, params, onEvent, done) };
}

/** client-node's Watch takes no headers: it gets them from the config, so the config adds one. */
function withAccept(kubeConfig: KubeConfig, accept: string): KubeConfig {
  return {
    getCurrentCluster: () => kubeConfig.getCurrentCluster(),
    applyToFetchOptions: async (opts: Parameters<KubeConfig['applyToFetchOptions']>[0]) => {
      const init = await kubeConfig.applyToFetchOptions(opts);
      (init.headers as unknown as { set(name: string, value: string): void }).set('Accept', accept);
      return init;
    },
  } as KubeConfig;
}

export interface InformerHandlers<T> {
  added?(key: string, value: T): void;
  updated?(key: string, previous: T, value: T): void;
  deleted?(key: string, previous: T): void;
  /** After every complete list (start, resync, recovery). */
  relisted?(): void;
  /** At every periodic resync, for every object in the store, changed or not. */
  resync?(key: string, value: T): void;
}

export interface InformerOptions<R extends KubernetesObject, T> {
  name: string;
  /** For the default watch source; not needed when `watch` is given. */
  kubeConfig?: KubeConfig;
  source: InformerSource<R>;
  watch?: WatchSource;
  clock?: Clock;
  /** Reduces an object to what decisions need; the store holds only this. */
  summarize: (obj: R) => T;
  /** First subscriber; more can be added with subscribe() before start(). */
  handlers?: InformerHandlers<T>;
  log: Logger;
  /** How often every key is handed to the `resync` handlers (from the store: no API call). */
  resyncPeriodMs: number;
  /**
   * How often a resync also lists everything again, repairing an event a live watch lost (default:
   * at every resync). Between relists the watch resumes from where it got to: the API server
   * replays what came after, or answers 410 Gone, and that relists.
   */
  relistPeriodMs?: number;
  stallTimeoutMs: number;
  pageSize?: number;
  onWatchRestart?: (reason: WatchEnd) => void;
}

export type WatchEnd = 'closed' | 'expired' | 'stalled' | 'resync' | 'error' | 'stopped';

/** A watch that closes or fails sooner than this without an event counts as a failure (backoff). */
const EARLY_WATCH_END_MS = 1_000;

interface Entry<T> {
  resourceVersion: string;
  value: T;
  /**
   * The list that last saw this key (or that was under way when it was stored). A relist marks
   * what it sees in place instead of building a map of every key: at 100,000 objects that map
   * outlived each page, was promoted to the old generation and cost full collections.
   */
  listed: number;
}

export function objectKey(obj: KubernetesObject): string {
  const { namespace, name } = obj.metadata ?? {};
  return namespace ? `${namespace}/${name}` : `${name}`;
}

/** A list given up between pages because the informer was stopped (at 100,000 a list is ~200 pages). */
class InformerStopped extends Error {
  override name = 'InformerStopped';
}

/** A metadata relist that finds more changed objects than this (and a tenth of all) lists them in full. */
const FULL_RELIST_MIN_CHANGES = 100;

const jitter = (ms: number, share = 0.2) => Math.round(ms * (1 + share * Math.random()));

export class Informer<R extends KubernetesObject, T> {
  private readonly store = new Map<string, Entry<T>>();
  /** Counts lists (see Entry.listed). */
  private listGeneration = 0;
  /** requestResync() was called: the next end of the watch relists, whatever the relist period. */
  private relistRequested = false;
  private synced = false;
  private readonly syncWaiters: Array<() => void> = [];
  private stopped = false;
  private abortCurrent: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly subscribers: InformerHandlers<T>[] = [];
  private readonly clock: Clock;
  private readonly watchSource: WatchSource;
  /** Why the last list or watch failed, until one works again. */
  private failure: string | undefined;
  /** Metadata-only mode: reads objects whose resourceVersion is new. */
  private readonly fetcher: ContentFetcher<R> | undefined;
  /**
   * Keys this process is writing: the resourceVersion of the last event seen for each meanwhile,
   * and whether the key left the watch meanwhile.
   */
  private readonly writes = new Map<string, { count: number; seen?: string; removed?: boolean }>();

  constructor(private readonly opts: InformerOptions<R, T>) {
    if (opts.handlers) this.subscribers.push(opts.handlers);
    this.clock = opts.clock ?? systemClock;
    if (!opts.watch && !opts.kubeConfig)
      throw new Error(`informer ${opts.name}: a kubeConfig or a watch source`);
    this.watchSource = opts.watch ?? kubeWatchSource(opts.kubeConfig!);
    const { metadata } = opts.source;
    if (metadata)
      this.fetcher = new ContentFetcher<R>({
        name: opts.name,
        get: (key) => metadata.get(key),
        found: (key, obj) => (obj ? this.applyObject(key, obj) : this.remove(key)),
        clock: this.clock,
        log: opts.log,
        concurrency: metadata.concurrency ?? 4,
      });
  }

  /** Objects read one by one since start (metadata-only mode). */
  get reads(): number {
    return this.fetcher?.reads ?? 0;
  }

  /**
   * Runs a write of the object at `key` and stores what the API answered, so the watch event the
   * write causes is not read back: in metadata-only mode an event seen while the write is under
   * way waits for the answer, and the object is read only if the event's resourceVersion is not
   * the one the write produced (someone else wrote too). `write` resolves with the object written.
   */
  async writing(key: string, write: () => Promise<R>): Promise<R> {
    const pending = this.writes.get(key) ?? { count: 0 };
    pending.count++;
    this.writes.set(key, pending);
    try {
      const written = await write();
      this.fetcher?.invalidate(key);
      // The key left the watch while the write was under way (deleted, or out of the selector
      // after it): the answer must not put it back. An event after that is read as usual.
      if (!pending.removed) this.applyObject(key, written);
      return written;
    } finally {
      if (--pending.count === 0) {
        this.writes.delete(key);
        if (pending.seen !== undefined && pending.seen !== this.store.get(key)?.resourceVersion)
          this.fetcher?.request(key);
      }
    }
  }

  /** Adds handlers; a late subscriber is told about every object already in the store. */
  subscribe(handlers: InformerHandlers<T>): void {
    this.subscribers.push(handlers);
    for (const [key, entry] of this.store) this.safely(() => handlers.added?.(key, entry.value));
  }

  private notify(event: (h: InformerHandlers<T>) => void): void {
    for (const handlers of this.subscribers) this.safely(() => event(handlers));
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  get name(): string {
    return this.opts.name;
  }

  /** For readiness: why this informer is not listing and watching, if it is not. */
  get lastFailure(): string | undefined {
    return this.failure;
  }

  get size(): number {
    return this.store.size;
  }

  get(key: string): T | undefined {
    return this.store.get(key)?.value;
  }

  *entries(): IterableIterator<[string, T]> {
    for (const [key, entry] of this.store) yield [key, entry.value];
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.fetcher?.stop();
    this.abortCurrent?.();
    this.wake?.();
    await this.loop;
  }

  /** Forces a relist now (e.g. after something suggests the cache is off). */
  requestResync(): void {
    this.relistRequested = true;
    this.abortCurrent?.();
  }

  private async run(): Promise<void> {
    const { log } = this.opts;
    let failures = 0;
    let resourceVersion: string | undefined;
    /** The last watch ended at the periodic resync: after the relist, every key is handed out. */
    let resyncDue = false;
    let listedAt = 0;
    while (!this.stopped) {
      try {
        if (resourceVersion === undefined) {
          resourceVersion = this.fetcher && this.synced ? await this.relistMetadata() : await this.relist();
          listedAt = this.clock.now();
          this.failure = undefined;
          if (resyncDue) this.resyncFromStore();
          resyncDue = false;
        }
        const resyncAt = this.clock.now() + jitter(this.opts.resyncPeriodMs);
        let end: WatchEnd;
        do {
          const result = await this.watchOnce(resourceVersion, resyncAt);
          end = result.end;
          resourceVersion = result.resourceVersion;
          if (result.early && (end === 'closed' || end === 'expired')) {
            // Ended before it delivered anything (a proxy that closes streams, a server that keeps
            // answering with an error): through the backoff, or it is reopened in a tight loop.
            throw new Error(`watch ${end === 'closed' ? 'closed' : 'failed'} at once, without an event`);
          }
        } while (end === 'closed' && !this.stopped);
        // Only a watch that worked clears the backoff: a list that succeeds before a watch that
        // always fails (e.g. a CRD not installed yet) must still back off.
        failures = 0;
        if (end === 'stopped') return;
        this.opts.onWatchRestart?.(end);
        const relistDue =
          this.relistRequested || this.clock.now() - listedAt >= (this.opts.relistPeriodMs ?? 0);
        if (end === 'resync' && !relistDue) {
          // A resync from the store alone: at 100,000 a relist was most of an idle controller's
          // CPU (docs/BENCHMARKS.md). The watch resumes from where it got to.
          this.resyncFromStore();
          continue;
        }
        this.relistRequested = false;
        if (end !== 'resync') log.info({ informer: this.opts.name, reason: end }, 'watch ended; relisting');
        resyncDue ||= end === 'resync';
        resourceVersion = undefined;
      } catch (err) {
        if (this.stopped) return;
        failures++;
        resourceVersion = undefined;
        this.opts.onWatchRestart?.('error');
        const delay = Math.min(200 * 2 ** Math.min(failures, 8), 30_000);
        this.failure = describeApiError(err);
        log.warn(
          { informer: this.opts.name, err: describeApiError(err), retryInMs: delay },
          'list/watch failed; retrying',
        );
        await this.pause(jitter(delay));
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return sleep(this.clock, ms, (end) => {
      this.wake = end;
    });
  }

  /**
   * Lists everything, replaces the store, and reports the differences as events. Each page is
   * reduced to summaries as it arrives: holding all pages of 10,000 Secrets at once took the
   * process from ~150 MB to over 330 MB RSS (docs/BENCHMARKS.md), and V8 keeps what it grew.
   */
  private async relist(): Promise<string> {
    const { source, summarize } = this.opts;
    const generation = ++this.listGeneration;
    /** Keys new or changed since the store's copy, with their summaries, in list order. */
    const changed: Array<{ key: string; resourceVersion: string; value: T }> = [];
    const resourceVersion = await this.listPages(source.list, (item) => {
      const key = objectKey(item);
      const rv = item.metadata?.resourceVersion ?? '';
      const entry = this.store.get(key);
      if (entry) entry.listed = generation;
      if (entry?.resourceVersion !== rv) changed.push({ key, resourceVersion: rv, value: summarize(item) });
    });

    for (const [key, entry] of this.store) if (entry.listed !== generation) this.remove(key);
    for (const { key, resourceVersion: rv, value } of changed) {
      const previous = this.store.get(key);
      this.store.set(key, { resourceVersion: rv, value, listed: generation });
      if (previous) this.notify((h) => h.updated?.(key, previous.value, value));
      else this.notify((h) => h.added?.(key, value));
    }
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
    this.notify((h) => h.relisted?.());
    return resourceVersion;
  }

  /**
   * Metadata-only relist: keys gone from the API are removed, keys whose resourceVersion differs
   * from the store's (or that are new) are read. Repairs whatever events the watch missed.
   */
  private async relistMetadata(): Promise<string> {
    const generation = ++this.listGeneration;
    const changed: string[] = [];
    let listed = 0;
    const resourceVersion = await this.listPages(this.opts.source.metadata!.list, (item) => {
      const key = objectKey(item);
      const entry = this.store.get(key);
      listed++;
      if (entry) entry.listed = generation;
      if (entry?.resourceVersion !== (item.metadata?.resourceVersion ?? '')) changed.push(key);
    });
    // Many changes (a long outage, a bulk edit): one paged full list costs less than a GET each.
    if (changed.length > Math.max(FULL_RELIST_MIN_CHANGES, listed / 10)) return this.relist();
    const gone: string[] = [];
    for (const [key, entry] of this.store) if (entry.listed !== generation) gone.push(key);
    for (const key of gone) this.remove(key);
    for (const key of changed) this.fetcher!.request(key);
    this.notify((h) => h.relisted?.());
    return resourceVersion;
  }

  /**
   * Every page of a list, each item handed to `each` as its page arrives (a page is never kept);
   * returns the list's resourceVersion. Stopped between pages, it gives up: a partial list must
   * not be applied (it would remove every key not yet listed).
   */
  private async listPages<I extends KubernetesObject>(
    list: (o: ListOptions) => Promise<ListPage<I>>,
    each: (item: I) => void,
  ): Promise<string> {
    const { source } = this.opts;
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const page = await list({
        limit: this.opts.pageSize ?? 500,
        _continue: cont,
        labelSelector: source.labelSelector,
        fieldSelector: source.fieldSelector,
      });
      for (const item of page.items) each(item);
      cont = page.metadata?._continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (cont && !this.stopped);
    if (this.stopped) throw new InformerStopped();
    return resourceVersion;
  }

  /** Every object in the store to the `resync` handlers: a level-triggered look at every key. */
  private resyncFromStore(): void {
    for (const handlers of this.subscribers) {
      if (!handlers.resync) continue;
      for (const [key, entry] of this.store) this.safely(() => handlers.resync!(key, entry.value));
    }
  }

  private remove(key: string): void {
    const previous = this.store.get(key);
    this.fetcher?.forget(key);
    const writing = this.writes.get(key);
    if (writing) {
      // What was seen before is gone with it; only an event after this brings the key back.
      writing.removed = true;
      writing.seen = undefined;
    }
    if (!previous) return;
    this.store.delete(key);
    this.notify((h) => h.deleted?.(key, previous.value));
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.log.error({ informer: this.opts.name, err }, 'event handler failed');
    }
  }

  private apply(phase: string, obj: R): void {
    const key = objectKey(obj);
    if (phase === 'DELETED') {
      this.remove(key);
      return;
    }
    if (!this.fetcher) {
      this.applyObject(key, obj);
      return;
    }
    // Metadata only: read the object if this version is new, unless our own write is producing it.
    const rv = obj.metadata?.resourceVersion ?? '';
    if (this.store.get(key)?.resourceVersion === rv) return;
    const writing = this.writes.get(key);
    if (writing) {
      writing.seen = rv;
      writing.removed = false; // back in the watch
    } else this.fetcher.request(key);
  }

  /** Stores the summary of a whole object, unless the store has this version already. */
  private applyObject(key: string, obj: R): void {
    const rv = obj.metadata?.resourceVersion ?? '';
    const previous = this.store.get(key);
    if (previous?.resourceVersion === rv) return; // replayed event
    const value = this.opts.summarize(obj);
    this.store.set(key, { resourceVersion: rv, value, listed: this.listGeneration });
    if (previous) this.notify((h) => h.updated?.(key, previous.value, value));
    else this.notify((h) => h.added?.(key, value));
  }

  /** One watch from `resourceVersion` until it ends; returns why and where it got to. */
  private watchOnce(
    resourceVersion: string,
    resyncAt: number,
  ): Promise<{ end: WatchEnd; resourceVersion: string; early: boolean }> {
    const { source, stallTimeoutMs } = this.opts;
    const { clock } = this;
    return new Promise((resolve, reject) => {
      let latest = resourceVersion;
      const openedAt = clock.now();
      let lastActivity = openedAt;
      /** Events delivered, and a 410 Gone (the one ERROR whose remedy is a relist at once). */
      let delivered = 0;
      let end: WatchEnd | undefined;
      let controller: { abort(): void } | undefined;
      let settled = false;
      const finish = (why: WatchEnd, err?: unknown) => {
        if (settled) return;
        settled = true;
        watchdog.cancel();
        this.abortCurrent = undefined;
        controller?.abort();
        if (err !== undefined && why === 'error') reject(err);
        else {
          const early = delivered === 0 && clock.now() - openedAt < EARLY_WATCH_END_MS;
          resolve({ end: why, resourceVersion: latest, early });
        }
      };
      const checkEvery = Math.max(Math.min(stallTimeoutMs / 4, 5_000), 20);
      let watchdog = { cancel: () => {} };
      const check = () => {
        if (clock.now() >= resyncAt) {
          end = 'resync';
          finish('resync');
        } else if (clock.now() - lastActivity > stallTimeoutMs) {
          end = 'stalled';
          finish('stalled');
        } else {
          watchdog = clock.setTimer(check, checkEvery);
        }
      };
      watchdog = clock.setTimer(check, checkEvery);
      this.abortCurrent = () => finish(this.stopped ? 'stopped' : 'resync');

      this.watchSource
        .watch(
          source.watchPath,
          {
            resourceVersion,
            allowWatchBookmarks: true,
            // The server ends the watch after this; we then resume from `latest` without a relist.
            timeoutSeconds: Math.round(jitter(300, 1)),
            labelSelector: source.labelSelector,
            fieldSelector: source.fieldSelector,
          },
          (phase: string, obj: R & { code?: number; message?: string }) => {
            lastActivity = clock.now();
            if (settled) return;
            if (phase === 'ERROR') {
              end = 'expired';
              if (obj.code === 410) delivered++; // the resourceVersion is too old: relist at once
              this.opts.log.info(
                { informer: this.opts.name, code: obj.code, message: obj.message },
                'watch error',
              );
              finish('expired');
              return;
            }
            delivered++;
            const rv = obj.metadata?.resourceVersion;
            if (rv) latest = rv;
            if (phase !== 'BOOKMARK') this.apply(phase, obj);
          },
          (err: unknown) => {
            if (settled) return;
            if (err && !(err instanceof Error && err.name === 'AbortError')) finish('error', err);
            else finish(end ?? 'closed');
          },
        )
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
          },
          (err: unknown) => finish('error', err),
        );
    });
  }
}
