// What alcazar issued to whom, kept in the API server so that revoking a ServiceAccount also
// covers certificates alcazar no longer holds (issued over the CSR API, or superseded in a Secret
// by a renewal but still valid). It survives restarts and fail-over because it lives in
// ConfigMaps in the CA namespace, one data key per certificate (layout: ./record-layout.ts).
//
// Cost (README "Revoking a certificate"): the API server's cost of a write grows with the object
// it rewrites (it stores and returns the whole ConfigMap), so the record is many small shards of at
// most `entriesPerShard` keys (64: ~6 KiB) rather than a few large ones. Each replica writes its own
// shards, `alcazar-issued-<12 random hex>`: a write is a JSON merge patch that carries only the new
// keys (no read, no resourceVersion, no retry on 409) or, once a shard is full, the create of the
// next one. At most two writes are in flight; every record that arrives meanwhile shares the next
// one, so writes batch across identities. Readers list every shard (any shard may hold any
// identity's certificates). A shard whose certificates have all expired is deleted, guarded by the
// resourceVersion it was read at (a write since then keeps it); that sweep runs when a replica
// opens a new shard, at most every SWEEP_INTERVAL_MS.
//
// Shards of the previous layouts (alcazar-issued-00 … -63, which replicas of earlier versions
// write during a rolling upgrade) are read like the others, never written, and swept the same way.
import { randomBytes } from 'node:crypto';
import { isConflict, isNotFound } from '../kube/client.js';
import { type ApiRequester, configMapsPath, listPage, MERGE_PATCH_CONTENT } from '../kube/raw.js';
import { normalizeSerialHex } from '../pki/crl.js';
import {
  entryKey,
  type IssuanceEntry,
  planAppend,
  type RecordedCertificate,
  readIdentity,
  readShard,
} from './record-layout.js';

export type { IssuanceEntry, RecordedCertificate } from './record-layout.js';

export const ISSUANCE_RECORD_PREFIX = 'alcazar-issued-';
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'alcazar' };
const MANAGED_BY_SELECTOR = 'app.kubernetes.io/managed-by=alcazar';
export const DEFAULT_ENTRIES_PER_SHARD = 64;
/** How often at most a replica lists the record to delete shards that hold nothing valid. */
export const SWEEP_INTERVAL_MS = 10 * 60_000;
const LIST_PAGE_SIZE = 200;
const MAX_NAME_RACES = 3;
/** How long after sending a record it can still be withdrawn (a TokenReview's answer comes well within). */
const WITHDRAW_WINDOW_MS = 120_000;

const keyOf = (e: Pick<IssuanceEntry, 'namespace' | 'serviceAccount' | 'serial'>) =>
  entryKey(e.namespace, e.serviceAccount, normalizeSerialHex(e.serial) ?? e.serial);

export function newShardName(): string {
  return `${ISSUANCE_RECORD_PREFIX}${randomBytes(6).toString('hex')}`;
}

interface Pending {
  entry: IssuanceEntry;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface ShardConfigMap {
  metadata?: { name?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

/** One write lane: the shard it appends to (until full) and whether a write is in flight. */
interface Lane {
  shard: { name: string; keys: number } | undefined;
  busy: boolean;
}

export interface IssuanceRecordOptions {
  /** Not write-fenced: every replica records what it issues. */
  raw: ApiRequester;
  /** The CA namespace. */
  namespace: string;
  now?: () => number;
  /** Writes in flight at once (default 2), each to its own shard; each carries every record that arrived meanwhile. */
  maxWritesInFlight?: number;
  /** Keys per shard at most (default 64). */
  entriesPerShard?: number;
  /** The name of a new shard (default: the prefix and 12 random hex digits). */
  newName?: () => string;
  /** A sweep that failed (the next one tries again); for the log. */
  onSweepError?: (err: unknown) => void;
  /** How long recordSoon() lets a record wait for others to share its write (default 50 ms). */
  lingerMs?: number;
}

export class IssuanceRecord {
  /** Records waiting for the next write, whichever lane it goes out on. */
  private pending: Pending[] = [];
  /** Records nobody waits on yet (recordSoon): they ride along with the next write, or go after lingerMs. */
  private soon: Pending[] = [];
  private soonTimer: NodeJS.Timeout | undefined;
  private readonly lanes: Lane[];
  /** Per shard name: keys of withdrawn records that were sent there, null in its next patch. */
  private readonly withdrawn = new Map<string, string[]>();
  /** Where recently sent records went (key → shard name), so a withdrawal can find them. */
  private readonly sentTo = new Map<string, { shard: string; at: number }>();
  private readonly now: () => number;
  private readonly perShard: number;
  private readonly newName: () => string;
  private lastSweep = Number.NEGATIVE_INFINITY;

  constructor(private readonly opts: IssuanceRecordOptions) {
    this.now = opts.now ?? Date.now;
    this.perShard = Math.max(1, opts.entriesPerShard ?? DEFAULT_ENTRIES_PER_SHARD);
    this.newName = opts.newName ?? newShardName;
    this.lanes = Array.from({ length: Math.max(1, opts.maxWritesInFlight ?? 2) }, () => ({
      shard: undefined,
      busy: false,
    }));
  }

  /**
   * Records that `entry.serial` was issued to namespace/serviceAccount. Resolves once it is stored:
   * call it before handing the certificate out, so a revocation cannot miss it.
   */
  record(entry: IssuanceEntry): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, resolve, reject });
      this.flush();
    });
  }

  /**
   * Like record(), for an entry whose certificate nobody is waiting for yet (a serial reserved
   * ahead): it goes out with the next write, or after lingerMs, so that at a steady trickle of
   * such records several share one write instead of each making its own.
   */
  recordSoon(entry: IssuanceEntry): Promise<void> {
    return new Promise((resolve, reject) => {
      this.soon.push({ entry, resolve, reject });
      this.soonTimer ??= setTimeout(() => {
        this.soonTimer = undefined;
        this.flush();
      }, this.opts.lingerMs ?? 50);
      this.soonTimer.unref?.();
    });
  }

  /**
   * Takes back a record whose certificate was not handed out after all: dropped if it has not been
   * sent yet, else removed by the next patch to its shard (no write of its own: a caller that
   * fails authentication costs at most a share of one write; a full shard gets one last patch of
   * removals before its lane moves on).
   */
  withdraw(entry: Pick<IssuanceEntry, 'namespace' | 'serviceAccount' | 'serial'>): void {
    if (!normalizeSerialHex(entry.serial)) return;
    const key = keyOf(entry);
    const index = this.pending.findIndex((p) => keyOf(p.entry) === key);
    if (index >= 0) {
      this.pending.splice(index, 1)[0]!.resolve();
      return;
    }
    const sent = this.sentTo.get(key);
    if (!sent) return;
    this.sentTo.delete(key);
    if (!this.lanes.some((l) => l.shard?.name === sent.shard)) return;
    const keys = this.withdrawn.get(sent.shard) ?? [];
    keys.push(key);
    this.withdrawn.set(sent.shard, keys);
  }

  /** The still-valid certificates recorded for one identity (every shard: records go to any). */
  async forIdentity(namespace: string, serviceAccount: string): Promise<RecordedCertificate[]> {
    const now = this.now();
    return (await this.listShards()).flatMap((s) =>
      readIdentity(s.data ?? {}, namespace, serviceAccount, now),
    );
  }

  /** The recorded certificates with these serials (canonical hex), wherever they were issued. */
  async findSerials(serials: readonly string[]): Promise<Map<string, RecordedCertificate>> {
    const wanted = new Set(serials);
    const found = new Map<string, RecordedCertificate>();
    if (wanted.size === 0) return found;
    const now = this.now();
    for (const shard of await this.listShards())
      for (const cert of readShard(shard.data ?? {}, now))
        if (wanted.has(cert.serial)) found.set(cert.serial, cert);
    return found;
  }

  /**
   * Every shard of the record, in pages: ConfigMaps named with the prefix and labelled as alcazar's
   * (the CA namespace's other ConfigMaps are neither read nor swept).
   */
  private async listShards(): Promise<ShardConfigMap[]> {
    const shards: ShardConfigMap[] = [];
    let next: string | undefined;
    do {
      const page = await listPage<ShardConfigMap>(this.opts.raw, configMapsPath(this.opts.namespace), {
        limit: LIST_PAGE_SIZE,
        labelSelector: MANAGED_BY_SELECTOR,
        ...(next && { _continue: next }),
      });
      for (const cm of page.items) if (cm.metadata?.name?.startsWith(ISSUANCE_RECORD_PREFIX)) shards.push(cm);
      next = page.metadata?._continue;
    } while (next);
    return shards;
  }

  /** Sends what is pending on every idle lane (records sent soon ride along). */
  private flush(): void {
    if (this.soon.length > 0 && (this.pending.length > 0 || this.soonTimer === undefined)) {
      this.pending.push(...this.soon.splice(0));
      clearTimeout(this.soonTimer);
      this.soonTimer = undefined;
    }
    for (const lane of this.lanes) {
      if (this.pending.length === 0) return;
      if (lane.busy) continue;
      const room = lane.shard ? this.perShard - lane.shard.keys : 0;
      const batch = this.pending.splice(0, room > 0 ? room : this.perShard);
      lane.busy = true;
      void this.send(lane, batch, room > 0).then(
        () =>
          this.settle(lane, () => {
            for (const p of batch) p.resolve();
          }),
        (err: unknown) =>
          this.settle(lane, () => {
            for (const p of batch) p.reject(err);
          }),
      );
    }
  }

  /** Frees the lane before the records it carried are settled, so their callers find it idle. */
  private settle(lane: Lane, done: () => void): void {
    lane.busy = false;
    done();
    this.flush();
  }

  /** Appends a batch to the lane's shard, or opens a new shard with it when full or gone. */
  private async send(lane: Lane, batch: Pending[], append: boolean): Promise<void> {
    const now = this.now();
    const entries = batch.map((p) => p.entry);
    if (append && lane.shard) {
      const { name } = lane.shard;
      const removed = this.withdrawn.get(name) ?? [];
      const patch = planAppend(entries, removed, now);
      this.withdrawn.delete(name);
      if (Object.keys(patch).length === 0) return;
      // Withdrawn keys leave the shard with this patch: they do not take up room in it.
      lane.shard.keys = Math.max(0, lane.shard.keys + entries.length - removed.length);
      this.remember(entries, name, now);
      try {
        await this.opts.raw.request(
          'PATCH',
          configMapsPath(this.opts.namespace, name),
          { data: patch },
          MERGE_PATCH_CONTENT,
        );
        return;
      } catch (err) {
        // Swept (everything in it had been withdrawn or expired) or deleted by hand: a new shard.
        if (!isNotFound(err)) throw err;
      }
    }
    const left = lane.shard
      ? { name: lane.shard.name, keys: this.withdrawn.get(lane.shard.name) ?? [] }
      : undefined;
    if (left) this.withdrawn.delete(left.name);
    // The lane leaves the shard before anything is awaited: a withdrawal meanwhile is not queued
    // for a shard no lane will write again.
    lane.shard = undefined;
    // Leaving a full shard: what was withdrawn from it is removed in one last patch, or it would
    // stay until the certificate would have expired, naming a serial nobody holds (callers refused
    // after their record had started could leave one per shard, for up to 90 days). Best effort,
    // after the new records are written: a failure leaves those keys as before, and fails no record.
    const data = planAppend(entries, [], now) as Record<string, string>;
    try {
      if (Object.keys(data).length > 0) {
        await this.create(lane, entries, data, now);
        this.maybeSweep(now);
      }
    } finally {
      if (left && !append && left.keys.length > 0) void this.removeKeys(left.name, left.keys, now);
    }
  }

  /** Removes keys from a shard; never fails (gone already, or an error: the keys stay until they expire). */
  private async removeKeys(name: string, keys: readonly string[], now: number): Promise<void> {
    try {
      await this.opts.raw.request(
        'PATCH',
        configMapsPath(this.opts.namespace, name),
        { data: planAppend([], keys, now) },
        MERGE_PATCH_CONTENT,
      );
    } catch {
      // Best effort: what it names can never be handed out.
    }
  }

  /**
   * Opens a shard on the lane under a fresh name (a name another replica took is tried again). The
   * lane points at it before the create is sent, so a withdrawal meanwhile finds it.
   */
  private async create(lane: Lane, entries: IssuanceEntry[], data: Record<string, string>, now: number) {
    const { raw, namespace } = this.opts;
    for (let attempt = 1; ; attempt++) {
      const name = this.newName();
      lane.shard = { name, keys: entries.length };
      this.remember(entries, name, now);
      try {
        await raw.request('POST', configMapsPath(namespace), {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name, namespace, labels: MANAGED_BY },
          data,
        });
        return;
      } catch (err) {
        this.withdrawn.delete(name);
        lane.shard = undefined;
        if (!isConflict(err) || attempt >= MAX_NAME_RACES) throw err;
      }
    }
  }

  /** Where each entry went, for WITHDRAW_WINDOW_MS. */
  private remember(entries: IssuanceEntry[], shard: string, now: number): void {
    for (const [key, sent] of this.sentTo) {
      if (now - sent.at < WITHDRAW_WINDOW_MS) break;
      this.sentTo.delete(key);
    }
    for (const entry of entries) this.sentTo.set(keyOf(entry), { shard, at: now });
  }

  /** Starts a sweep if none ran in the last interval; it runs beside the writes. */
  private maybeSweep(now: number): void {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    void this.sweep(now).catch((err: unknown) => this.opts.onSweepError?.(err));
  }

  /**
   * Deletes every shard that holds no valid certificate (all expired, withdrawn, or unreadable),
   * except the ones this replica's lanes append to; each delete is guarded by the resourceVersion
   * the shard was listed at, so a shard written since is kept.
   */
  private async sweep(now: number): Promise<void> {
    const open = new Set(this.lanes.map((l) => l.shard?.name));
    for (const shard of await this.listShards()) {
      const name = shard.metadata?.name;
      if (!name || open.has(name) || readShard(shard.data ?? {}, now).length > 0) continue;
      try {
        await this.opts.raw.request('DELETE', configMapsPath(this.opts.namespace, name), {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          preconditions: { resourceVersion: shard.metadata?.resourceVersion },
        });
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
    }
  }
}
