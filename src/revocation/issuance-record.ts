// What alcazar issued to whom, kept in the API server so that revoking a ServiceAccount also
// covers certificates alcazar no longer holds (issued over the CSR API, or superseded in a Secret
// by a renewal but still valid). It survives restarts and fail-over because it lives in
// ConfigMaps in the CA namespace: SHARD_COUNT ConfigMaps alcazar-issued-00 … alcazar-issued-63,
// one data key per certificate (layout: ./record-layout.ts).
//
// Cost (README "Revoking a certificate"): a write is one JSON merge patch of one shard that carries
// only the new keys (no read, no resourceVersion, no retry on 409: the API server applies
// concurrent patches one after the other). At most two writes are in flight; every record that
// arrives meanwhile shares the next one, which goes to a free shard picked at random: any shard may
// hold any identity's certificates (readers read all 64), so writes batch across identities and
// shards fill evenly. The API server's cost of a patch grows with the shard's size (it stores the
// whole object again), which is why an identity's certificates are not kept together: one busy
// ServiceAccount would make its one shard, and every write to it, large. Expired keys are removed
// by the next patch to their shard, as nulls learned from an earlier patch's answer, so a shard
// stays bounded without a compactor.
import { isConflict, isNotFound } from '../kube/client.js';
import { type ApiRequester, configMapsPath, MERGE_PATCH_CONTENT } from '../kube/raw.js';
import { normalizeSerialHex } from '../pki/crl.js';
import {
  entryKey,
  type IssuanceEntry,
  planAppend,
  planHousekeeping,
  type RecordedCertificate,
  readIdentity,
  readShard,
  type ShardPatch,
} from './record-layout.js';

export type { IssuanceEntry, RecordedCertificate } from './record-layout.js';

export const SHARD_COUNT = 64;
export const ISSUANCE_RECORD_PREFIX = 'alcazar-issued-';
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'alcazar' };
/** How often one shard's answer is scanned for expired and legacy keys. */
const HOUSEKEEPING_INTERVAL_MS = 60_000;
const MAX_CREATE_RACES = 3;
/** Records per patch at most (a patch of 500 keys is ~40 KB). */
const MAX_BATCH = 500;
/** How long after sending a record it can still be withdrawn (a TokenReview's answer comes well within). */
const WITHDRAW_WINDOW_MS = 120_000;

const keyOf = (e: IssuanceEntry) =>
  entryKey(e.namespace, e.serviceAccount, normalizeSerialHex(e.serial) ?? e.serial);

export function shardName(index: number): string {
  return `${ISSUANCE_RECORD_PREFIX}${String(index).padStart(2, '0')}`;
}

interface Pending {
  entry: IssuanceEntry;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface ShardConfigMap {
  metadata?: { resourceVersion?: string };
  data?: Record<string, string>;
}

/** Per shard: what the last scan of a written shard found for the next writes to do. */
interface ShardState {
  scannedAt: number;
  expiredKeys: string[];
  conversion: { patch: ShardPatch; resourceVersion: string } | undefined;
}

export interface IssuanceRecordOptions {
  /** Not write-fenced: every replica records what it issues. */
  raw: ApiRequester;
  /** The CA namespace. */
  namespace: string;
  now?: () => number;
  /** Writes in flight at once (default 2); each carries every record that arrived meanwhile. */
  maxWritesInFlight?: number;
  /** Which free shard the next write goes to (default: at random, so shards fill evenly). */
  pickShard?: (free: number[]) => number;
}

export class IssuanceRecord {
  /** Records waiting for the next write, whichever shard it goes to. */
  private pending: Pending[] = [];
  /** Shards with a write in flight. */
  private readonly writing = new Set<number>();
  private readonly shards = new Map<number, ShardState>();
  /** Per shard: keys of withdrawn records that were sent there, null in the next patch. */
  private readonly withdrawn = new Map<number, string[]>();
  /** Where recently sent records went (key → shard), so a withdrawal can find them. */
  private readonly sentTo = new Map<string, { shard: number; at: number }>();
  private readonly now: () => number;
  private readonly maxWrites: number;
  private readonly pickShard: (free: number[]) => number;

  constructor(private readonly opts: IssuanceRecordOptions) {
    this.now = opts.now ?? Date.now;
    this.maxWrites = opts.maxWritesInFlight ?? 2;
    this.pickShard = opts.pickShard ?? ((free) => free[Math.floor(Math.random() * free.length)]!);
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
   * Takes back a record whose certificate was not handed out after all: dropped if it has not been
   * sent yet, else removed by the next patch to its shard (no write of its own: a caller that
   * fails authentication costs at most a share of one write).
   */
  withdraw(entry: Pick<IssuanceEntry, 'namespace' | 'serviceAccount' | 'serial'>): void {
    const serial = normalizeSerialHex(entry.serial);
    if (!serial) return;
    const key = entryKey(entry.namespace, entry.serviceAccount, serial);
    const index = this.pending.findIndex((p) => keyOf(p.entry) === key);
    if (index >= 0) {
      this.pending.splice(index, 1)[0]!.resolve();
      return;
    }
    const sent = this.sentTo.get(key);
    if (!sent) return;
    this.sentTo.delete(key);
    const keys = this.withdrawn.get(sent.shard) ?? [];
    keys.push(key);
    this.withdrawn.set(sent.shard, keys);
  }

  /** The still-valid certificates recorded for one identity (every shard: records go to any). */
  async forIdentity(namespace: string, serviceAccount: string): Promise<RecordedCertificate[]> {
    const shards = await this.readAll();
    return shards.flatMap((shard) => readIdentity(shard?.data ?? {}, namespace, serviceAccount, this.now()));
  }

  /** The recorded certificates with these serials (canonical hex), wherever they were issued. */
  async findSerials(serials: readonly string[]): Promise<Map<string, RecordedCertificate>> {
    const wanted = new Set(serials);
    const found = new Map<string, RecordedCertificate>();
    if (wanted.size === 0) return found;
    for (const shard of await this.readAll())
      for (const cert of readShard(shard?.data ?? {}, this.now()))
        if (wanted.has(cert.serial)) found.set(cert.serial, cert);
    return found;
  }

  private readAll(): Promise<(ShardConfigMap | undefined)[]> {
    return Promise.all(Array.from({ length: SHARD_COUNT }, (_, i) => this.read(i)));
  }

  private async read(index: number): Promise<ShardConfigMap | undefined> {
    try {
      return await this.opts.raw.request<ShardConfigMap>(
        'GET',
        configMapsPath(this.opts.namespace, shardName(index)),
      );
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * At most maxWrites writes at once, never two to one shard: everything that arrives meanwhile
   * goes into the next write, to whichever free shard is picked. Then a conversion, if one is due.
   */
  private flush(): void {
    while (this.writing.size < this.maxWrites) {
      const free = Array.from({ length: SHARD_COUNT }, (_, i) => i).filter((i) => !this.writing.has(i));
      if (this.pending.length > 0) {
        const batch = this.pending.splice(0, MAX_BATCH);
        this.start(this.pickShard(free), this.write(batch));
        continue;
      }
      const converting = free.find((i) => this.shards.get(i)?.conversion);
      if (converting === undefined) return;
      this.start(converting, () => this.convert(converting).then(() => () => {}));
    }
  }

  /** Frees the shard before the records it carried are settled, so their callers find it free. */
  private start(shard: number, write: (shard: number) => Promise<() => void>): void {
    this.writing.add(shard);
    void write(shard).then((settle) => {
      this.writing.delete(shard);
      settle();
      this.flush();
    });
  }

  /** Sends a batch to a shard; what it resolves to settles the batch's records. */
  private write(batch: Pending[]): (shard: number) => Promise<() => void> {
    return (shard) =>
      this.append(
        shard,
        batch.map((p) => p.entry),
      ).then(
        () => () => {
          for (const p of batch) p.resolve();
        },
        (err: unknown) => () => {
          for (const p of batch) p.reject(err);
        },
      );
  }

  private async append(shard: number, entries: IssuanceEntry[]): Promise<void> {
    const now = this.now();
    const state = this.shards.get(shard);
    const patch = planAppend(
      entries,
      [...(state?.expiredKeys ?? []), ...(this.withdrawn.get(shard) ?? [])],
      now,
    );
    if (state) state.expiredKeys = [];
    this.withdrawn.delete(shard);
    this.remember(entries, shard, now);
    if (Object.keys(patch).length === 0) return;
    this.learn(shard, await this.patchOrCreate(shard, patch), now);
  }

  /** Where each entry went, for WITHDRAW_WINDOW_MS. */
  private remember(entries: IssuanceEntry[], shard: number, now: number): void {
    for (const [key, sent] of this.sentTo) {
      if (now - sent.at < WITHDRAW_WINDOW_MS) break;
      this.sentTo.delete(key);
    }
    for (const entry of entries) this.sentTo.set(keyOf(entry), { shard, at: now });
  }

  /**
   * Rewrites the shard's legacy keys, guarded by the resourceVersion they were read at. A conflict
   * (another write came first) is not an error: the next scan plans it again.
   */
  private async convert(shard: number): Promise<void> {
    const state = this.shards.get(shard);
    const conversion = state?.conversion;
    if (!state || !conversion) return;
    state.conversion = undefined;
    const path = configMapsPath(this.opts.namespace, shardName(shard));
    const body = { metadata: { resourceVersion: conversion.resourceVersion }, data: conversion.patch };
    try {
      const written = await this.opts.raw.request<ShardConfigMap>('PATCH', path, body, MERGE_PATCH_CONTENT);
      this.learn(shard, written, this.now());
    } catch (err) {
      // Planned again at the shard's next scan: after a conflict (another write came first) at
      // once, after any other failure (the API server is away) after the usual interval.
      if (isConflict(err) || isNotFound(err)) state.scannedAt = Number.NEGATIVE_INFINITY;
    }
  }

  /** A merge patch of the shard; creates it when missing (another writer may create it first). */
  private async patchOrCreate(shard: number, patch: ShardPatch): Promise<ShardConfigMap> {
    const { raw, namespace } = this.opts;
    const name = shardName(shard);
    for (let attempt = 1; ; attempt++) {
      try {
        return await raw.request<ShardConfigMap>(
          'PATCH',
          configMapsPath(namespace, name),
          { data: patch },
          MERGE_PATCH_CONTENT,
        );
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      const data = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== null));
      try {
        return await raw.request<ShardConfigMap>('POST', configMapsPath(namespace), {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name, namespace, labels: MANAGED_BY },
          data,
        });
      } catch (err) {
        // Created by another writer since our patch: patch it.
        if (isConflict(err) && attempt < MAX_CREATE_RACES) continue;
        throw err;
      }
    }
  }

  /** Scans a written shard (at most once per interval) for expired keys and legacy keys. */
  private learn(shard: number, written: ShardConfigMap | undefined, now: number): void {
    const state = this.shards.get(shard);
    if (state && now - state.scannedAt < HOUSEKEEPING_INTERVAL_MS) return;
    const plan = planHousekeeping(written?.data ?? {}, now);
    const resourceVersion = written?.metadata?.resourceVersion;
    this.shards.set(shard, {
      scannedAt: now,
      expiredKeys: plan.expiredKeys,
      conversion:
        plan.conversion && resourceVersion ? { patch: plan.conversion, resourceVersion } : undefined,
    });
  }
}
