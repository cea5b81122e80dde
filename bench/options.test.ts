import { describe, expect, it } from 'vitest';
import { type BenchOptions, parseOptions } from './options.js';

const parse = (argv: string[]) => parseOptions(argv) as BenchOptions;

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
