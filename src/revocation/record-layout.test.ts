import { describe, expect, it } from 'vitest';
import { entryKeyValue, parseKey, parseLines, planAppend, readIdentity, readShard } from './record-layout.js';

const now = Date.UTC(2026, 10, 30, 12);
const HOUR = 3_600_000;
const s = (ms: number) => String(Math.floor(ms / 1000));
const entry = (serial: string, notAfter: number, sa = 'cart', namespace = 'shop') => ({
  namespace,
  serviceAccount: sa,
  serial,
  notAfter: new Date(notAfter),
  issuedAt: new Date(now - HOUR),
});

describe('the per-certificate layout', () => {
  it('keys a certificate by namespace, ServiceAccount and canonical serial; the value is notAfter and issuedAt in seconds', () => {
    expect(planAppend([entry('0A', now + HOUR)], [], now)).toEqual({
      shop_cart_0a: `${s(now + HOUR)} ${s(now - HOUR)}`,
    });
  });

  it('keeps ServiceAccount names with dots whole ("_" separates, never ".")', () => {
    const patch = planAppend([entry('ab', now + HOUR, 'team.api.v2')], [], now);
    expect(Object.keys(patch)).toEqual(['shop_team.api.v2_ab']);
    expect(readShard(patch as Record<string, string>, now)).toEqual([
      {
        serial: 'ab',
        namespace: 'shop',
        serviceAccount: 'team.api.v2',
        notAfter: now + HOUR,
        issuedAt: now - HOUR,
      },
    ]);
  });

  it('every key it writes is a valid ConfigMap key, even for a 253-character ServiceAccount name', () => {
    const long = `a${'.b'.repeat(126)}`;
    expect(long).toHaveLength(253);
    for (const sa of ['cart', 'team.api.v2', long]) {
      const [key, value] = entryKeyValue(
        'a-namespace-of-sixty-three-characters-xxxxxxxxxxxxxxxxxxxxxxxx',
        sa,
        'ff'.repeat(20),
        now,
        now,
      );
      expect(key).toMatch(/^[-._a-zA-Z0-9]{1,253}$/);
      const found = readIdentity(
        { [key]: value },
        'a-namespace-of-sixty-three-characters-xxxxxxxxxxxxxxxxxxxxxxxx',
        sa,
        now - 1,
      );
      expect(found.map((c) => c.serviceAccount)).toEqual([sa]);
    }
  });

  it('skips entries that have expired or whose serial is not hex, and records a serial once however it is spelled', () => {
    const patch = planAppend(
      [entry('0A', now + HOUR), entry('0a', now + HOUR), entry('zz', now + HOUR), entry('01', now)],
      [],
      now,
    );
    expect(Object.keys(patch)).toEqual(['shop_cart_0a']);
  });

  it('removes the expired keys it was told about in the same patch', () => {
    expect(planAppend([entry('03', now + HOUR)], ['shop_web_01', 'shop_cart_02'], now)).toEqual({
      shop_web_01: null,
      shop_cart_02: null,
      shop_cart_03: `${s(now + HOUR)} ${s(now - HOUR)}`,
    });
  });
});

describe('reading a shard', () => {
  const data = {
    shop_cart: `0a ${s(now + HOUR)} ${s(now - HOUR)}\n0b ${s(now - 1)} ${s(now - HOUR)}`,
    shop_cart_0c: `${s(now + 2 * HOUR)} ${s(now)}`,
    shop_cart_0d: `${s(now - 1000)} ${s(now - HOUR)}`,
    'shop_team.api_0e': `${s(now + HOUR)} ${s(now)}`,
    'shop_cart.x_0f': `${s(now + HOUR)} ${s(now)}`,
    shop_web_garbage: `${s(now + HOUR)} ${s(now)}`,
    shop_web_10: 'not a number',
  };

  it('reads both layouts and drops what has expired or cannot be read', () => {
    expect(
      readShard(data, now)
        .map((c) => `${c.namespace}/${c.serviceAccount}/${c.serial}`)
        .sort(),
    ).toEqual(['shop/cart.x/0f', 'shop/cart/0a', 'shop/cart/0c', 'shop/team.api/0e']);
  });

  it("finds one identity's certificates in both layouts, and not those of a name it prefixes", () => {
    expect(
      readIdentity(data, 'shop', 'cart', now)
        .map((c) => c.serial)
        .sort(),
    ).toEqual(['0a', '0c']);
    expect(readIdentity(data, 'shop', 'team.api', now).map((c) => c.serial)).toEqual(['0e']);
  });

  it('tells the layouts apart by the key alone', () => {
    expect(parseKey('shop_team.api')).toEqual({
      layout: 'legacy',
      namespace: 'shop',
      serviceAccount: 'team.api',
    });
    expect(parseKey('shop_team.api_ab')).toEqual({
      layout: 'entry',
      namespace: 'shop',
      serviceAccount: 'team.api',
      serial: 'ab',
    });
    expect(parseKey('noseparator')).toBeUndefined();
    expect(parseKey('shop__ab')).toBeUndefined();
  });

  it('ignores legacy lines it cannot read', () => {
    expect(parseLines('zz 1 2\n0b notanumber 3\n\n0c 9999999999 1', now)).toEqual([
      { serial: '0c', notAfter: 9_999_999_999_000, issuedAt: 1000 },
    ]);
  });
});
