import { describe, expect, it } from 'vitest';
import { estimateMinutes, parseOptions } from './options.js';

const parse = (argv: string[]) => {
  const opts = parseOptions(argv);
  if (opts === 'help') throw new Error('help');
  return opts;
};

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
