// What alcazar issued to whom, kept in the API server so that revoking a ServiceAccount also
// covers certificates alcazar no longer holds (issued over the CSR API, or superseded in a Secret
// by a renewal but still valid). It survives restarts and fail-over because it lives in
// ConfigMaps in the CA namespace: SHARD_COUNT ConfigMaps alcazar-issued-00 … alcazar-issued-63,
// an identity's certificates in the shard its namespace/name hashes to, one data key per
// certificate (layout: ./record-layout.ts).
//
// Cost (README "Revoking a certificate"): each record() is one JSON merge patch of its shard that
// carries only the new keys (no read, no resourceVersion, no retry on 409: the API server applies
// concurrent patches one after the other); records to a shard that arrive while one is in flight
// share the next patch. Expired keys are removed by the next patch to their shard, as nulls
// learned from an earlier patch's answer, so a shard stays bounded without a compactor.
import { createHash } from 'node:crypto';
import { apiStatus, isConflict, isNotFound } from '../kube/client.js';
import { type ApiRequester, configMapsPath, MERGE_PATCH_CONTENT } from '../kube/raw.js';
import {
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

export function shardName(index: number): string {
  return `${ISSUANCE_RECORD_PREFIX}${String(index).padStart(2, '0')}`;
}

export function shardOf(namespace: string, serviceAccount: string): number {
  return createHash('sha256').update(`${namespace}/${serviceAccount}`).digest().readUInt32BE(0) % SHARD_COUNT;
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
}

export class IssuanceRecord {
  private readonly pending = new Map<number, Pending[]>();
  private readonly writing = new Set<number>();
  private readonly shards = new Map<number, ShardState>();
  private readonly now: () => number;

  constructor(private readonly opts: IssuanceRecordOptions) {
    this.now = opts.now ?? Date.now;
  }

  /**
   * Records that `entry.serial` was issued to namespace/serviceAccount. Resolves once it is stored:
   * call it before handing the certificate out, so a revocation cannot miss it.
   */
  record(entry: IssuanceEntry): Promise<void> {
    const shard = shardOf(entry.namespace, entry.serviceAccount);
    return new Promise((resolve, reject) => {
      const list = this.pending.get(shard) ?? [];
      list.push({ entry, resolve, reject });
      this.pending.set(shard, list);
      this.flush(shard);
    });
  }

  /** The still-valid certificates recorded for one identity. */
  async forIdentity(namespace: string, serviceAccount: string): Promise<RecordedCertificate[]> {
    const shard = await this.read(shardOf(namespace, serviceAccount));
    return readIdentity(shard?.data ?? {}, namespace, serviceAccount, this.now());
  }

  /** The recorded certificates with these serials (canonical hex), wherever they were issued. */
  async findSerials(serials: readonly string[]): Promise<Map<string, RecordedCertificate>> {
    const wanted = new Set(serials);
    const found = new Map<string, RecordedCertificate>();
    if (wanted.size === 0) return found;
    const shards = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, i) => this.read(i)));
    for (const shard of shards)
      for (const cert of readShard(shard?.data ?? {}, this.now()))
        if (wanted.has(cert.serial)) found.set(cert.serial, cert);
    return found;
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

  /** One write per shard at a time; what arrives meanwhile goes into the next write. */
  private flush(shard: number): void {
    if (this.writing.has(shard)) return;
    const batch = this.pending.get(shard) ?? [];
    const conversion = this.shards.get(shard)?.conversion;
    if (batch.length === 0 && !conversion) return;
    this.pending.delete(shard);
    this.writing.add(shard);
    const write =
      batch.length > 0
        ? this.append(
            shard,
            batch.map((p) => p.entry),
          ).then(
            () => {
              for (const p of batch) p.resolve();
            },
            (err: unknown) => {
              for (const p of batch) p.reject(err);
            },
          )
        : this.convert(shard);
    void write.finally(() => {
      this.writing.delete(shard);
      this.flush(shard);
    });
  }

  private async append(shard: number, entries: IssuanceEntry[]): Promise<void> {
    const now = this.now();
    const state = this.shards.get(shard);
    const patch = planAppend(entries, state?.expiredKeys ?? [], now);
    if (state) state.expiredKeys = [];
    if (Object.keys(patch).length === 0) return;
    this.learn(shard, await this.patchOrCreate(shard, patch), now);
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
      if (isConflict(err) || apiStatus(err) === 409 || isNotFound(err)) {
        state.scannedAt = Number.NEGATIVE_INFINITY;
        return;
      }
      throw err;
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
        if ((isConflict(err) || apiStatus(err) === 409) && attempt < MAX_CREATE_RACES) continue;
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
