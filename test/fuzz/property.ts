import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { Corpus } from './corpus.js';
import { expectTyped, type FuzzTarget } from './target.js';

/** The property every target must hold: a value or one of its typed errors, nothing else. */
export function propertyOf(fuzzTarget: FuzzTarget, corpus: () => Corpus) {
  return fc.asyncProperty(fuzzTarget.input(corpus), async (input) => {
    try {
      await fuzzTarget.run(input, corpus());
    } catch (error) {
      expectTyped(error, fuzzTarget.expected);
    }
  });
}

/** A counterexample fit for a log: printed as is, or for targets that hold keys only its size and digest. */
export function describeCounterexample(fuzzTarget: FuzzTarget, example: unknown): string {
  const text = JSON.stringify(example, (_, value) =>
    value && typeof value === 'object' && value.type === 'Buffer' && Array.isArray(value.data)
      ? `<hex ${Buffer.from(value.data).toString('hex')}>`
      : value,
  );
  if (!fuzzTarget.secret)
    return text.length > 4_000 ? `${text.slice(0, 4_000)}… (${text.length} chars)` : text;
  const digest = createHash('sha256').update(text).digest('hex').slice(0, 16);
  return `<withheld: may hold key material; ${text.length} chars, sha256 ${digest}; reproduce with the seed and path>`;
}
