import { describe, expect, it } from 'vitest';
import { FakeApiServer } from '../kube/fake-api.js';
import { configMapsPath } from '../kube/raw.js';
import { IssuanceRecord, SHARD_COUNT, shardName, shardOf } from './issuance-record.js';

const NS = 'istio-system';
const HOUR = 3_600_000;
const start = Date.UTC(2026, 10, 30, 12);
const s = (ms: number) => String(Math.floor(ms / 1000));
const entry = (serial: string, notAfter: number, sa = 'cart') => ({
  namespace: 'shop',
  serviceAccount: sa,
  serial,
  notAfter: new Date(notAfter),
  issuedAt: new Date(start),
});

function setup() {
  const api = new FakeApiServer();
  let now = start;
  const record = new IssuanceRecord({ raw: api, namespace: NS, now: () => now });
  const shardPath = configMapsPath(NS, shardName(shardOf('shop', 'cart')));
  const dataOf = () => api.get(shardPath)?.data as Record<string, string> | undefined;
  const patchesOf = () =>
    api.writes
      .filter((w) => w.path === shardPath && w.method === 'PATCH')
      .map((w) => w.body as { data: object });
  return { api, record, shardPath, dataOf, patchesOf, setNow: (t: number) => (now = t) };
}

describe('the issuance record', () => {
  it('creates a missing shard with the label of what alcazar owns, then only patches in new keys', async () => {
    const { api, record, shardPath, dataOf, patchesOf } = setup();
    await record.record(entry('0a', start + HOUR));
    expect(api.get(shardPath)?.metadata?.labels).toEqual({ 'app.kubernetes.io/managed-by': 'alcazar' });
    await record.record(entry('0b', start + HOUR));
    expect(patchesOf().at(-1)).toEqual({ data: { shop_cart_0b: `${s(start + HOUR)} ${s(start)}` } });
    expect(Object.keys(dataOf()!).sort()).toEqual(['shop_cart_0a', 'shop_cart_0b']);
    expect(api.writes.some((w) => w.method === 'PUT')).toBe(false);
  });

  it('records that arrive while a write is in flight share the next one', async () => {
    const { record, patchesOf, api, shardPath } = setup();
    api.seed(shardPath, { metadata: { name: shardName(shardOf('shop', 'cart')), namespace: NS }, data: {} });
    await Promise.all(['01', '02', '03', '04'].map((serial) => record.record(entry(serial, start + HOUR))));
    expect(patchesOf().map((p) => Object.keys(p.data).length)).toEqual([1, 3]);
  });

  it('a failed write rejects the records it carried, and the next record still writes', async () => {
    const { record, api, shardPath, dataOf } = setup();
    await record.record(entry('01', start + HOUR));
    api.failNext('PATCH', shardPath, 500);
    await expect(record.record(entry('02', start + HOUR))).rejects.toThrow(/500/);
    await record.record(entry('03', start + HOUR));
    expect(Object.keys(dataOf()!).sort()).toEqual(['shop_cart_01', 'shop_cart_03']);
  });

  it('removes expired keys in a later patch to the same shard, so the shard stays bounded', async () => {
    const { record, dataOf, setNow } = setup();
    await record.record(entry('01', start + HOUR));
    setNow(start + 2 * HOUR);
    await record.record(entry('02', start + 3 * HOUR)); // its answer shows 01 expired
    setNow(start + 2 * HOUR + 1000);
    await record.record(entry('03', start + 3 * HOUR)); // carries 01: null
    expect(Object.keys(dataOf()!).sort()).toEqual(['shop_cart_02', 'shop_cart_03']);
  });

  it('converts a shard of the previous layout without losing a valid certificate', async () => {
    const { api, record, shardPath, dataOf } = setup();
    api.seed(shardPath, {
      metadata: { name: shardName(shardOf('shop', 'cart')), namespace: NS },
      data: { shop_cart: `0a ${s(start + HOUR)} ${s(start)}\n0b ${s(start - 1000)} ${s(start - HOUR)}` },
    });
    expect((await record.forIdentity('shop', 'cart')).map((c) => c.serial)).toEqual(['0a']);
    await record.record(entry('0c', start + HOUR));
    await waitForWrites(api, 2); // the patch, then the guarded conversion
    expect(Object.keys(dataOf()!).sort()).toEqual(['shop_cart_0a', 'shop_cart_0c']);
    expect((api.writes[1]!.body as { metadata: object }).metadata).toEqual({
      resourceVersion: expect.any(String),
    });
    expect((await record.forIdentity('shop', 'cart')).map((c) => c.serial).sort()).toEqual(['0a', '0c']);
  });

  it('does not convert over a write it has not seen: an old replica appending meanwhile loses nothing', async () => {
    const api = new FakeApiServer();
    let now = start;
    const shardPath = configMapsPath(NS, shardName(shardOf('shop', 'cart')));
    const legacy = (lines: string[]) => ({
      metadata: { name: shardName(shardOf('shop', 'cart')), namespace: NS },
      data: { shop_cart: lines.join('\n') },
    });
    api.seed(shardPath, legacy([`0a ${s(start + HOUR)} ${s(start)}`]));
    // After our first patch, a replica of the previous version rewrites the legacy key with one
    // more line (its read-merge-PUT), before our conversion is sent.
    let oldReplicaWrote = false;
    const raw = {
      request: async <T>(...args: Parameters<FakeApiServer['request']>): Promise<T> => {
        const answer = await api.request<T>(...args);
        if (args[0] === 'PATCH' && !oldReplicaWrote) {
          oldReplicaWrote = true;
          const current = api.get(shardPath)!;
          const lines = [current.data.shop_cart, `0b ${s(start + HOUR)} ${s(start)}`];
          await api.request('PUT', shardPath, {
            ...current,
            data: { ...current.data, shop_cart: lines.join('\n') },
          });
        }
        return answer;
      },
    };
    const record = new IssuanceRecord({ raw, namespace: NS, now: () => now });
    await record.record(entry('0c', start + HOUR));
    await waitForWrites(api, 3); // our patch, the old replica's PUT, our conversion (409)
    expect(api.get(shardPath)!.data.shop_cart).toContain('0b');
    // The next scan sees the line and converts it.
    now += 61_000;
    await record.record(entry('0d', start + HOUR));
    await waitForWrites(api, 5);
    expect(Object.keys(api.get(shardPath)!.data).sort()).toEqual([
      'shop_cart_0a',
      'shop_cart_0b',
      'shop_cart_0c',
      'shop_cart_0d',
    ]);
  });

  it('finds recorded certificates by serial across shards, in both layouts', async () => {
    const { api, record } = setup();
    await record.record(entry('0a', start + HOUR));
    await record.record(entry('0b', start + HOUR, 'web'));
    const other = configMapsPath(NS, shardName(shardOf('shop', 'legacy')));
    api.seed(other, {
      metadata: { name: shardName(shardOf('shop', 'legacy')), namespace: NS },
      data: { shop_legacy: `0d ${s(start + HOUR)} ${s(start)}` },
    });
    const found = await record.findSerials(['0a', '0b', '0d', '0e']);
    expect([...found.values()].map((c) => `${c.serviceAccount}/${c.serial}`).sort()).toEqual([
      'cart/0a',
      'legacy/0d',
      'web/0b',
    ]);
  });

  it('spreads identities over its shards with stable names', () => {
    const used = new Set(Array.from({ length: 2000 }, (_, i) => shardOf('ns', `sa-${i}`)));
    expect(used.size).toBe(SHARD_COUNT);
    expect(shardOf('a', 'b')).toBe(shardOf('a', 'b'));
    expect(shardName(7)).toBe('alcazar-issued-07');
  });
});

async function waitForWrites(api: FakeApiServer, count: number): Promise<void> {
  for (let i = 0; i < 100 && api.writes.length < count; i++) await new Promise((r) => setImmediate(r));
  expect(api.writes.length).toBe(count);
}

describe('the RBAC for the issuance record', () => {
  it('names exactly the shards the code writes', async () => {
    const { readFileSync } = await import('node:fs');
    const { loadAll } = await import('js-yaml');
    const docs = loadAll(
      readFileSync(new URL('../../manifests/21-rbac-namespace.yaml', import.meta.url), 'utf8'),
    ) as {
      kind: string;
      rules?: { resources: string[]; resourceNames?: string[]; verbs: string[] }[];
    }[];
    const role = docs.find((d) => d.kind === 'Role')!;
    const rule = role.rules!.find((r) => r.resources.includes('configmaps'))!;
    expect(rule.resourceNames).toEqual(Array.from({ length: SHARD_COUNT }, (_, i) => shardName(i)));
    expect(rule.verbs).toEqual(['get', 'patch', 'update']);
  });
});
