import { describe, expect, it } from 'vitest';
import { parseStatusArgs, StatusUsageError } from './args.js';

describe('parseStatusArgs', () => {
  it('defaults: text, istio-system, alcazar-leader, 20 listed', () => {
    expect(parseStatusArgs([])).toEqual({
      output: 'text',
      caNamespace: 'istio-system',
      leaseName: 'alcazar-leader',
      maxFailing: 20,
    });
  });

  it('takes every flag', () => {
    expect(
      parseStatusArgs([
        '-o',
        'json',
        '--kubeconfig',
        '/k',
        '--ca-namespace',
        'ca',
        '--lease-name',
        'x-leader',
        '--max-failing',
        '5',
      ]),
    ).toEqual({ output: 'json', kubeconfig: '/k', caNamespace: 'ca', leaseName: 'x-leader', maxFailing: 5 });
  });

  it('--no-lease looks for no Lease, and contradicts --lease-name', () => {
    expect(parseStatusArgs(['--no-lease'])).toEqual({
      output: 'text',
      caNamespace: 'istio-system',
      maxFailing: 20,
    });
    expect(() => parseStatusArgs(['--no-lease', '--lease-name', 'x'])).toThrow(StatusUsageError);
  });

  it('--help returns undefined', () => {
    expect(parseStatusArgs(['--help'])).toBeUndefined();
  });

  it.each([
    [['-o', 'yaml']],
    [['--ca-namespace', 'Bad_NS']],
    [['--max-failing', '-1']],
    [['extra']],
    [['--nope']],
  ])('rejects %j', (argv) => {
    expect(() => parseStatusArgs(argv)).toThrow(StatusUsageError);
  });
});
