// A short seeded run of every fuzz target inside `npm run test:unit`; the
// long randomised run is `npm run fuzz -- --minutes N` (test/fuzz/main.ts).
import fc from 'fast-check';
import { beforeAll, describe, it } from 'vitest';
import { buildCorpus, type Corpus } from './corpus.js';
import { propertyOf } from './property.js';
import { fuzzTargets } from './targets.js';

const SEED = 20261130;
let corpus: Corpus;

beforeAll(async () => {
  corpus = await buildCorpus();
});

describe('hostile input never crashes a parser', () => {
  it.each(fuzzTargets.map((t) => [t.name, t] as const))('%s: a value or its typed error', async (_, t) => {
    await fc.assert(
      propertyOf(t, () => corpus),
      { seed: SEED, numRuns: t.quickRuns ?? 300 },
    );
  });
});
