import { describe, expect, it } from 'vitest';
import { FakeApiServer } from '../kube/fake-api.js';
import { configMapsPath } from '../kube/raw.js';
import { IssuanceRecord, SWEEP_INTERVAL_MS } from './issuance-record.js';

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
const path = (name: string) => configMapsPath(NS, name);
const MANAGED = { 'app.kubernetes.io/managed-by': 'alcazar' };
const seed = (
  api: FakeApiServer,
  name: string,
  data: Record<string, string>,
  labels: Record<string, string> = MANAGED,
) => api.seed(path(name), { metadata: { name, namespace: NS, labels }, data });

/** New shards are named alcazar-issued-a, -b, … so a test knows where to look. */
function setup(opts: { maxWritesInFlight?: number; entriesPerShard?: number; raw?: FakeApiServer } = {}) {
  const api = opts.raw ?? new FakeApiServer();
  let now = start;
  let names = 0;
  const record = new IssuanceRecord({
    raw: api,
    namespace: NS,
    now: () => now,
    newName: () => `alcazar-issued-${String.fromCharCode(97 + names++)}`,
    ...(opts.maxWritesInFlight && { maxWritesInFlight: opts.maxWritesInFlight }),
    ...(opts.entriesPerShard && { entriesPerShard: opts.entriesPerShard }),
  });
  const dataOf = (name: string) => api.get(path(name))?.data as Record<string, string> | undefined;
  const shards = () =>
    Object.fromEntries(
      'abcdefgh'
        .split('')
        .map((c) => [c, Object.keys(dataOf(`alcazar-issued-${c}`) ?? {}).sort()] as const)
        .filter(([, keys]) => keys.length > 0),
    );
  return { api, record, dataOf, shards, setNow: (t: number) => (now = t) };
}

const writesOf = (api: FakeApiServer, method: string) => api.writes.filter((w) => w.method === method);

describe('the issuance record', () => {
  it('creates a shard with the label of what alcazar owns, then only patches in new keys', async () => {
    const { api, record, dataOf } = setup();
    await record.record(entry('0a', start + HOUR));
    expect(api.get(path('alcazar-issued-a'))?.metadata?.labels).toEqual({
      'app.kubernetes.io/managed-by': 'alcazar',
    });
    await record.record(entry('0b', start + HOUR));
    expect(writesOf(api, 'PATCH').map((w) => w.body)).toEqual([
      { data: { shop_cart_0b: `${s(start + HOUR)} ${s(start)}` } },
    ]);
    expect(Object.keys(dataOf('alcazar-issued-a')!).sort()).toEqual(['shop_cart_0a', 'shop_cart_0b']);
    expect(api.writes.some((w) => w.method === 'PUT')).toBe(false);
  });

  it('records that arrive while writes are in flight share the next write, whatever their identity', async () => {
    const { api, record, shards } = setup({ maxWritesInFlight: 2 });
    const serials = ['01', '02', '03', '04', '05', '06'];
    await Promise.all(serials.map((serial, i) => record.record(entry(serial, start + HOUR, `sa-${i}`))));
    // Two creates of one record each went out at once (one shard per lane); the four that came
    // meanwhile shared one patch.
    expect(api.writes.map((w) => [w.method, Object.keys((w.body as { data: object }).data).length])).toEqual([
      ['POST', 1],
      ['POST', 1],
      ['PATCH', 4],
    ]);
    expect(Object.values(shards()).flat().sort()).toEqual(
      serials.map((serial, i) => `shop_sa-${i}_${serial}`),
    );
  });

  it('records sent soon ride along with the next write, or share one after the linger', async () => {
    const { api, record, shards } = setup({ maxWritesInFlight: 1 });
    const soon = [record.recordSoon(entry('01', start + HOUR)), record.recordSoon(entry('02', start + HOUR))];
    await record.record(entry('03', start + HOUR)); // carries both
    await Promise.all(soon);
    expect(api.writes).toHaveLength(1);
    const later = [
      record.recordSoon(entry('04', start + HOUR)),
      record.recordSoon(entry('05', start + HOUR)),
    ];
    await new Promise((r) => setImmediate(r));
    expect(api.writes).toHaveLength(1); // lingering
    await Promise.all(later); // after lingerMs, in one write
    expect(api.writes).toHaveLength(2);
    expect(shards()).toEqual({
      a: ['shop_cart_01', 'shop_cart_02', 'shop_cart_03', 'shop_cart_04', 'shop_cart_05'],
    });
  });

  it('a shard never holds more than entriesPerShard keys: a batch fills its room, the rest opens the next', async () => {
    const { record, shards } = setup({ maxWritesInFlight: 1, entriesPerShard: 3 });
    await record.record(entry('01', start + HOUR));
    await Promise.all(
      ['02', '03', '04', '05', '06'].map((serial) => record.record(entry(serial, start + HOUR))),
    );
    await record.record(entry('07', start + HOUR));
    expect(shards()).toEqual({
      a: ['shop_cart_01', 'shop_cart_02', 'shop_cart_03'],
      b: ['shop_cart_04', 'shop_cart_05', 'shop_cart_06'],
      c: ['shop_cart_07'],
    });
  });

  it('a failed write rejects the records it carried, and the next record still writes', async () => {
    const { record, api, dataOf } = setup();
    await record.record(entry('01', start + HOUR));
    api.failNext('PATCH', path('alcazar-issued-a'), 500);
    await expect(record.record(entry('02', start + HOUR))).rejects.toThrow(/500/);
    await record.record(entry('03', start + HOUR));
    expect(Object.keys(dataOf('alcazar-issued-a')!).sort()).toEqual(['shop_cart_01', 'shop_cart_03']);
  });

  it('a shard deleted under it (by hand, or swept elsewhere) is replaced by a new one with the batch', async () => {
    const { api, record, shards } = setup({ maxWritesInFlight: 1 });
    await record.record(entry('01', start + HOUR));
    await api.request('DELETE', path('alcazar-issued-a'));
    await record.record(entry('02', start + HOUR));
    expect(shards()).toEqual({ b: ['shop_cart_02'] });
  });

  it('a name another replica took is tried again with a new one', async () => {
    const { api, record, shards } = setup();
    seed(api, 'alcazar-issued-a', { shop_web_0f: `${s(start + HOUR)} ${s(start)}` });
    await record.record(entry('01', start + HOUR));
    expect(shards()).toEqual({ a: ['shop_web_0f'], b: ['shop_cart_01'] });
  });

  it('finds recorded certificates by serial and by identity in every shard and layout, and nothing else', async () => {
    const { api, record } = setup({ entriesPerShard: 1 });
    await record.record(entry('0a', start + HOUR));
    await record.record(entry('0b', start + HOUR, 'web'));
    await record.record(entry('0c', start - 1000)); // already expired: not recorded
    seed(api, 'alcazar-issued-05', {
      shop_legacy: `0d ${s(start + HOUR)} ${s(start)}`,
      shop_cart: `0e ${s(start + HOUR)} ${s(start)}\n0f ${s(start - 1000)} ${s(start - HOUR)}`,
    });
    seed(api, 'istio', { shop_cart_10: `${s(start + HOUR)} ${s(start)}` }); // not the record's
    seed(api, 'alcazar-issued-06', { shop_cart_11: `${s(start + HOUR)} ${s(start)}` }, {}); // not alcazar's
    const found = await record.findSerials(['0a', '0b', '0c', '0d', '0e', '0f', '10', '11']);
    expect([...found.values()].map((c) => `${c.serviceAccount}/${c.serial}`).sort()).toEqual([
      'cart/0a',
      'cart/0e',
      'legacy/0d',
      'web/0b',
    ]);
    expect((await record.forIdentity('shop', 'cart')).map((c) => c.serial).sort()).toEqual(['0a', '0e']);
  });

  it('a withdrawn record is dropped if not yet sent, else nulled by the next patch to its shard', async () => {
    const { api, record, dataOf } = setup({ maxWritesInFlight: 1 });
    const first = record.record(entry('01', start + HOUR)); // in flight
    const second = record.record(entry('02', start + HOUR)); // waiting for the next write
    record.withdraw(entry('02', start + HOUR));
    record.withdraw(entry('01', start + HOUR));
    await Promise.all([first, second]);
    expect(Object.keys(dataOf('alcazar-issued-a')!)).toEqual(['shop_cart_01']);
    await record.record(entry('03', start + HOUR));
    expect(writesOf(api, 'PATCH').at(-1)?.body).toEqual({
      data: { shop_cart_01: null, shop_cart_03: `${s(start + HOUR)} ${s(start)}` },
    });
    expect(Object.keys(dataOf('alcazar-issued-a')!)).toEqual(['shop_cart_03']);
  });

  it('withdrawn keys take no room, and leave a full shard in one last patch before its lane moves on', async () => {
    const { api, record, shards } = setup({ maxWritesInFlight: 1, entriesPerShard: 2 });
    await record.record(entry('01', start + HOUR));
    record.withdraw(entry('01', start + HOUR));
    await record.record(entry('02', start + HOUR)); // nulls 01: shard a holds one key
    await record.record(entry('03', start + HOUR)); // still room in a
    expect(shards()).toEqual({ a: ['shop_cart_02', 'shop_cart_03'] });
    record.withdraw(entry('03', start + HOUR));
    await record.record(entry('04', start + HOUR)); // a is full: a new shard
    expect(shards()).toEqual({ a: ['shop_cart_02'], b: ['shop_cart_04'] });
    expect(writesOf(api, 'PATCH').at(-1)?.body).toEqual({ data: { shop_cart_03: null } });
  });

  it('a failed last removal from a full shard fails no record: the removal is best effort', async () => {
    const { api, record, shards } = setup({ maxWritesInFlight: 1, entriesPerShard: 1 });
    await record.record(entry('01', start + HOUR));
    record.withdraw(entry('01', start + HOUR));
    api.failNext('PATCH', path('alcazar-issued-a'), 500, 'etcd is slow');
    await record.record(entry('02', start + HOUR)); // a is full: b is opened, a's removal fails
    expect(shards()).toEqual({ a: ['shop_cart_01'], b: ['shop_cart_02'] });
  });

  it('opening a shard sweeps the ones holding nothing valid, at most once per interval', async () => {
    const { api, record, setNow, shards } = setup({ maxWritesInFlight: 1, entriesPerShard: 1 });
    seed(api, 'alcazar-issued-00', { shop_cart: `0a ${s(start - 1000)} ${s(start - HOUR)}` }); // legacy, expired
    seed(api, 'alcazar-issued-01', { shop_cart: `0b ${s(start + HOUR)} ${s(start)}` }); // legacy, valid
    seed(api, 'alcazar-issued-x', { shop_cart_0c: `${s(start - 1000)} ${s(start - HOUR)}` });
    seed(api, 'alcazar-issued-y', { unreadable: 'x' });
    seed(api, 'istio', {}); // not the record's
    seed(api, 'alcazar-issued-z', {}, {}); // not alcazar's: no label
    await record.record(entry('01', start + 2 * HOUR));
    await waitFor(() => writesOf(api, 'DELETE').length === 3);
    const left = () => ['00', '01', 'x', 'y', 'a', 'b'].filter((n) => api.get(path(`alcazar-issued-${n}`)));
    expect(left()).toEqual(['01', 'a']);
    expect(api.get(path('istio'))).toBeDefined();
    expect(api.get(path('alcazar-issued-z'))).toBeDefined();
    // Shard a expires; opening b within the interval does not sweep, after it does (but never an open shard).
    setNow(start + HOUR + 1);
    await record.record(entry('02', start + 3 * HOUR));
    expect(left()).toEqual(['01', 'a', 'b']);
    setNow(start + 2 * HOUR + SWEEP_INTERVAL_MS);
    await record.record(entry('03', start + 3 * HOUR));
    await waitFor(() => writesOf(api, 'DELETE').length === 5);
    expect(left()).toEqual(['b']);
    expect(shards()).toEqual({ b: ['shop_cart_02'], c: ['shop_cart_03'] });
  });

  it('a sweep keeps a shard that was written after it was listed', async () => {
    const api = new FakeApiServer();
    seed(api, 'alcazar-issued-x', { shop_cart_0c: `${s(start - 1000)} ${s(start - HOUR)}` });
    // Just before our delete, a replica appends a valid certificate to the listed shard.
    const raw = {
      request: async <T>(...args: Parameters<FakeApiServer['request']>): Promise<T> => {
        if (args[0] === 'DELETE')
          await api.request('PATCH', path('alcazar-issued-x'), {
            data: { shop_web_0d: `${s(start + HOUR)} ${s(start)}` },
          });
        return api.request<T>(...args);
      },
    };
    const errors: unknown[] = [];
    const record = new IssuanceRecord({
      raw,
      namespace: NS,
      now: () => start,
      onSweepError: (e) => errors.push(e),
    });
    await record.record(entry('01', start + HOUR));
    await waitFor(() => writesOf(api, 'DELETE').length === 1);
    expect(api.get(path('alcazar-issued-x'))?.data).toHaveProperty('shop_web_0d');
    expect(errors).toEqual([]);
    expect((await record.forIdentity('shop', 'web')).map((c) => c.serial)).toEqual(['0d']);
  });
});

/** Waits (10 s of real time at most, not a count of turns) until `condition` holds. */
async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!condition() && performance.now() < deadline) await new Promise((r) => setImmediate(r));
  expect(condition()).toBe(true);
}

describe('the RBAC for the issuance record', () => {
  it('lets the controller list, patch and delete ConfigMaps in its namespace, and keeps the old shards for upgrades', async () => {
    const { readFileSync } = await import('node:fs');
    const { loadAll } = await import('js-yaml');
    const docs = loadAll(
      readFileSync(new URL('../../manifests/21-rbac-namespace.yaml', import.meta.url), 'utf8'),
    ) as {
      kind: string;
      rules?: { resources: string[]; resourceNames?: string[]; verbs: string[] }[];
    }[];
    const role = docs.find((d) => d.kind === 'Role')!;
    const rules = role.rules!.filter((r) => r.resources.includes('configmaps'));
    expect(rules.find((r) => !r.resourceNames)?.verbs).toEqual(['list', 'patch', 'delete']);
    const legacy = rules.find((r) => r.resourceNames?.includes('alcazar-issued-00'))!;
    expect(legacy.resourceNames).toEqual(
      Array.from({ length: 64 }, (_, i) => `alcazar-issued-${String(i).padStart(2, '0')}`),
    );
    expect(legacy.verbs).toEqual(['get', 'update']);
  });
});
