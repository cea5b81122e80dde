import { describe, expect, it } from 'vitest';
import { mergeShard, parseLines, SHARD_COUNT, shardName, shardOf } from './issuance-record.js';

const now = Date.UTC(2026, 10, 30, 12);
const HOUR = 3_600_000;
const entry = (serial: string, notAfter: number, sa = 'cart') => ({
  namespace: 'shop',
  serviceAccount: sa,
  serial,
  notAfter: new Date(notAfter),
  issuedAt: new Date(now - HOUR),
});

describe('the issuance record', () => {
  it('adds an entry under its identity, once however often it is recorded', () => {
    const data = mergeShard({}, [entry('0A', now + HOUR), entry('0a', now + HOUR)], now);
    expect(Object.keys(data)).toEqual(['shop_cart']);
    expect(parseLines(data.shop_cart, now)).toEqual([
      { serial: '0a', notAfter: now + HOUR, issuedAt: now - HOUR },
    ]);
  });

  it('drops expired entries of every identity on each write, and identities left empty', () => {
    const first = mergeShard({}, [entry('01', now + HOUR), entry('02', now + 2 * HOUR, 'web')], now);
    const later = mergeShard(first, [entry('03', now + 3 * HOUR)], now + HOUR);
    expect(Object.keys(later).sort()).toEqual(['shop_cart', 'shop_web']);
    expect(parseLines(later.shop_cart, now + HOUR).map((e) => e.serial)).toEqual(['03']);
    expect(mergeShard(later, [], now + 4 * HOUR)).toEqual({});
  });

  it('ignores lines it cannot read', () => {
    expect(parseLines('zz 1 2\n0b notanumber 3\n\n0c 9999999999 1', now)).toEqual([
      { serial: '0c', notAfter: 9_999_999_999_000, issuedAt: 1000 },
    ]);
  });

  it('spreads identities over its shards with stable names', () => {
    const used = new Set(Array.from({ length: 2000 }, (_, i) => shardOf('ns', `sa-${i}`)));
    expect(used.size).toBe(SHARD_COUNT);
    expect(shardOf('a', 'b')).toBe(shardOf('a', 'b'));
    expect(shardName(7)).toBe('alcazar-issued-07');
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
    expect(rule.verbs).toEqual(['get', 'update']);
  });
});
