import { describe, expect, it } from 'vitest';
import { estimateMinutes, parseOptions } from './options.js';

const parse = (argv: string[]) => {
  const opts = parseOptions(argv);
  if (opts === 'help') throw new Error('help');
  return opts;
};

describe('bench options', () => {
  it('leaves the large sizes out of the default run', () => {
    const o = parse([]);
    expect(o.n).toEqual([1000, 10_000]);
    expect(o.idleN).toBe(10_000);
    expect(o.scale).toBe(false);
  });

  it('--scale measures 50,000 and 100,000, with 100,000 managed while idle and during reaction', () => {
    const o = parse(['--scale']);
    expect(o.n).toEqual([50_000, 100_000]);
    expect(o.idleN).toBe(100_000);
    expect(o.reactionN).toBe(100_000);
    expect(o.rotationN).toBe(100_000);
  });

  it('lets explicit sizes win over --scale, and refuses --scale with --quick', () => {
    const o = parse(['--scale', '--n', '20000', '--idle-n', '30000']);
    expect(o.n).toEqual([20_000]);
    expect(o.idleN).toBe(30_000);
    expect(() => parseOptions(['--scale', '--quick'])).toThrow(/contradict/);
  });
});

describe('parseOptions: the csr scenario', () => {
  it('defaults to 1,000 calls per window at 1, 16 and 128 clients, cold and warm', () => {
    const opts = parse(['--scenario', 'csr']);
    expect(opts.scenarios).toEqual(['csr']);
    expect(opts).toMatchObject({ csrN: 1000, csrConcurrency: [1, 16, 128], csrTokens: ['cold', 'warm'] });
    expect(parse(['--scenario', 'csr', '--quick']).csrN).toBe(200);
  });

  it('takes sizes, concurrencies and token modes from flags', () => {
    const opts = parse(['--scenario=csr', '--csr-n=300', '--csr-concurrency=4,64', '--csr-tokens=warm']);
    expect(opts).toMatchObject({ csrN: 300, csrConcurrency: [4, 64], csrTokens: ['warm'] });
  });

  it('refuses what it cannot use, saying which flag', () => {
    expect(() => parse(['--csr-tokens=hot'])).toThrow(/--csr-tokens: unknown mode 'hot'/);
    expect(() => parse(['--csr-concurrency=1.5'])).toThrow(/--csr-concurrency: 1.5 is not a whole number/);
    expect(() => parse(['--csr-n=0'])).toThrow(/--csr-n: '0' is not a positive number/);
  });

  it('counts the scenario in the time estimate (a default run stays under ten minutes)', () => {
    const csr = estimateMinutes(parse(['--scenario', 'csr']));
    expect(csr).toBeGreaterThan(estimateMinutes(parse(['--scenario', 'csr', '--csr-tokens=warm'])));
    expect(csr).toBeLessThan(10);
  });
});
