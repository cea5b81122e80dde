import { describe, expect, it } from 'vitest';
import { FakeApiServer } from '../kube/fake-api.js';
import { configMapsPath } from '../kube/raw.js';
import { IssuanceRecord, SHARD_COUNT, shardName } from './issuance-record.js';

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
const path = (shard: number) => configMapsPath(NS, shardName(shard));
const seedLegacy = (api: FakeApiServer, shard: number, data: Record<string, string>) =>
  api.seed(path(shard), { metadata: { name: shardName(shard), namespace: NS }, data });

/** Writes go to the lowest free shard unless told otherwise, so a test knows where to look. */
function setup(opts: { maxWritesInFlight?: number; pickShard?: (free: number[]) => number } = {}) {
  const api = new FakeApiServer();
  let now = start;
  const record = new IssuanceRecord({
    raw: api,
    namespace: NS,
    now: () => now,
    pickShard: opts.pickShard ?? ((free) => free[0]!),
    ...(opts.maxWritesInFlight && { maxWritesInFlight: opts.maxWritesInFlight }),
  });
  const dataOf = (shard = 0) => api.get(path(shard))?.data as Record<string, string> | undefined;
  const allKeys = () =>
    Array.from({ length: SHARD_COUNT }, (_, i) => Object.keys(dataOf(i) ?? {}))
      .flat()
      .sort();
  const patchesOf = (shard = 0) =>
    api.writes
      .filter((w) => w.path === path(shard) && w.method === 'PATCH')
      .map((w) => w.body as { data: object });
  return { api, record, dataOf, allKeys, patchesOf, setNow: (t: number) => (now = t) };
}

async function waitForWrites(api: FakeApiServer, count: number): Promise<void> {
  for (let i = 0; i < 100 && api.writes.length < count; i++) await new Promise((r) => setImmediate(r));
  expect(api.writes.length).toBe(count);
}

describe('the issuance record', () => {
  it('creates a missing shard with the label of what alcazar owns, then only patches in new keys', async () => {
    const { api, record, dataOf, patchesOf } = setup();
    await record.record(entry('0a', start + HOUR));
    expect(api.get(path(0))?.metadata?.labels).toEqual({ 'app.kubernetes.io/managed-by': 'alcazar' });
    await record.record(entry('0b', start + HOUR));
    expect(patchesOf().at(-1)).toEqual({ data: { shop_cart_0b: `${s(start + HOUR)} ${s(start)}` } });
    expect(Object.keys(dataOf()!).sort()).toEqual(['shop_cart_0a', 'shop_cart_0b']);
    expect(api.writes.some((w) => w.method === 'PUT')).toBe(false);
  });

  it('records that arrive while writes are in flight share the next write, whatever their identity', async () => {
    const { api, record, allKeys } = setup({ maxWritesInFlight: 2 });
    for (const shard of [0, 1, 2]) seedLegacy(api, shard, {});
    const serials = ['01', '02', '03', '04', '05', '06'];
    await Promise.all(serials.map((serial, i) => record.record(entry(serial, start + HOUR, `sa-${i}`))));
    // Two writes of one record each went out at once; the four that came meanwhile shared one.
    expect(api.writes.map((w) => Object.keys((w.body as { data: object }).data).length)).toEqual([1, 1, 4]);
    expect(new Set(api.writes.slice(0, 2).map((w) => w.path)).size).toBe(2); // never two at once to one shard
    expect(allKeys()).toEqual(serials.map((serial, i) => `shop_sa-${i}_${serial}`).sort());
  });

  it('spreads writes over every shard when it picks at random', async () => {
    const api = new FakeApiServer();
    const record = new IssuanceRecord({ raw: api, namespace: NS, maxWritesInFlight: 1 });
    for (let i = 0; i < 400; i++)
      await record.record(entry(i.toString(16).padStart(4, '0'), Date.now() + HOUR));
    expect(new Set(api.writes.map((w) => w.path.split('/').at(-1))).size).toBeGreaterThan(SHARD_COUNT / 2);
  });

  it('a failed write rejects the records it carried, and the next record still writes', async () => {
    const { record, api, dataOf } = setup();
    await record.record(entry('01', start + HOUR));
    api.failNext('PATCH', path(0), 500);
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
    const { api, record, dataOf } = setup();
    seedLegacy(api, 0, {
      shop_cart: `0a ${s(start + HOUR)} ${s(start)}\n0b ${s(start - 1000)} ${s(start - HOUR)}`,
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
    seedLegacy(api, 0, { shop_cart: `0a ${s(start + HOUR)} ${s(start)}` });
    // After our first patch, a replica of the previous version rewrites the legacy key with one
    // more line (its read-merge-PUT), before our conversion is sent.
    let oldReplicaWrote = false;
    const raw = {
      request: async <T>(...args: Parameters<FakeApiServer['request']>): Promise<T> => {
        const answer = await api.request<T>(...args);
        if (args[0] === 'PATCH' && !oldReplicaWrote) {
          oldReplicaWrote = true;
          const current = api.get(path(0))!;
          const lines = [current.data.shop_cart, `0b ${s(start + HOUR)} ${s(start)}`];
          await api.request('PUT', path(0), {
            ...current,
            data: { ...current.data, shop_cart: lines.join('\n') },
          });
        }
        return answer;
      },
    };
    const record = new IssuanceRecord({ raw, namespace: NS, now: () => now, pickShard: (free) => free[0]! });
    await record.record(entry('0c', start + HOUR));
    await waitForWrites(api, 3); // our patch, the old replica's PUT, our conversion (409)
    expect(api.get(path(0))!.data.shop_cart).toContain('0b');
    // The next scan sees the line and converts it.
    now += 61_000;
    await record.record(entry('0d', start + HOUR));
    await waitForWrites(api, 5);
    expect(Object.keys(api.get(path(0))!.data).sort()).toEqual([
      'shop_cart_0a',
      'shop_cart_0b',
      'shop_cart_0c',
      'shop_cart_0d',
    ]);
  });

  it('finds recorded certificates by serial and by identity in every shard, in both layouts', async () => {
    const { api, record } = setup({ pickShard: (free) => free.at(-1)! });
    await record.record(entry('0a', start + HOUR));
    await record.record(entry('0b', start + HOUR, 'web'));
    seedLegacy(api, 5, {
      shop_legacy: `0d ${s(start + HOUR)} ${s(start)}`,
      shop_cart: `0e ${s(start + HOUR)} ${s(start)}`,
    });
    const found = await record.findSerials(['0a', '0b', '0d', '0e', '0f']);
    expect([...found.values()].map((c) => `${c.serviceAccount}/${c.serial}`).sort()).toEqual([
      'cart/0a',
      'cart/0e',
      'legacy/0d',
      'web/0b',
    ]);
    expect((await record.forIdentity('shop', 'cart')).map((c) => c.serial).sort()).toEqual(['0a', '0e']);
  });

  it('a withdrawn record is dropped if not yet sent, else nulled by the next patch to its shard', async () => {
    const { record, dataOf, patchesOf } = setup({ maxWritesInFlight: 1 });
    const first = record.record(entry('01', start + HOUR)); // in flight
    const second = record.record(entry('02', start + HOUR)); // waiting for the next write
    record.withdraw(entry('02', start + HOUR));
    record.withdraw(entry('01', start + HOUR));
    await Promise.all([first, second]);
    expect(Object.keys(dataOf()!)).toEqual(['shop_cart_01']);
    await record.record(entry('03', start + HOUR));
    expect(patchesOf().at(-1)).toEqual({
      data: { shop_cart_01: null, shop_cart_03: `${s(start + HOUR)} ${s(start)}` },
    });
    expect(Object.keys(dataOf()!)).toEqual(['shop_cart_03']);
  });
});

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
