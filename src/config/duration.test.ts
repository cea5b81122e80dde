import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration, tryParseDuration } from './duration.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe('parseDuration', () => {
  it.each([
    ['45s', 45_000],
    ['90m', 90 * MINUTE],
    ['1h30m', 90 * MINUTE],
    ['2160h', 2160 * HOUR],
    ['87600h', 87600 * HOUR],
    ['1.5h', 90 * MINUTE],
    ['.5s', 500],
    ['5.s', 5_000],
    ['500ms', 500],
    ['1m30s500ms', 90_500],
    ['1us', 0.001],
    ['1µs', 0.001],
    ['1μs', 0.001],
    ['1500ns', 0.0015],
    ['0', 0],
    ['0s', 0],
    ['+5m', 5 * MINUTE],
    ['-1h', -HOUR],
  ])('reads %s as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBeCloseTo(ms, 9);
  });

  it('accepts the longest duration Go can hold and rejects one nanosecond more', () => {
    expect(tryParseDuration('2562047h47m16.854775807s').ok).toBe(true);
    expect(tryParseDuration('2562047h47m16.854775808s')).toEqual({
      ok: false,
      message: expect.stringContaining('longer than the longest duration'),
    });
  });

  it.each([
    ['', 'it is empty'],
    ['5', 'the number 5 has no unit'],
    ['1d', "unknown unit 'd'"],
    ['2 weeks', 'white space'],
    ['1h 30m', 'white space'],
    ['h', 'expected a number'],
    ['.h', 'expected a number'],
    ['1h-30m', "unknown unit 'h-'"],
    ['--1h', 'expected a number'],
  ])('rejects %j: %s', (text, reason) => {
    const result = tryParseDuration(text);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.message).toContain(reason);
      expect(result.message).toContain(JSON.stringify(text));
      expect(result.message).toContain("as in '45s'");
    }
  });

  it('throws the same message tryParseDuration returns', () => {
    expect(() => parseDuration('1d')).toThrow(/invalid duration "1d": unknown unit 'd'/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [1, '1ms'],
    [1_500, '1s500ms'],
    [45_000, '45s'],
    [10 * MINUTE, '10m'],
    [90 * MINUTE, '1h30m'],
    [2160 * HOUR, '2160h'],
    [87600 * HOUR, '87600h'],
    [HOUR + 1, '1h1ms'],
    [0.5, '500us'],
    [0.0015, '1us500ns'],
    [-90_000, '-1m30s'],
  ])('writes %d ms as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDuration for whole milliseconds, short and long', () => {
    for (const ms of [1, 999, 1_000, 61_001, 3_599_999, 7_776_000_000, 315_360_000_000, 9_223_372_036_854]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });

  it('refuses values that are not durations', () => {
    expect(() => formatDuration(Number.NaN)).toThrow(RangeError);
    expect(() => formatDuration(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});
