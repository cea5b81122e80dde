// One fuzz target: an API that reads outside bytes, what to feed it, and
// which errors it may raise. Anything else it throws — a TypeError, a
// RangeError, a stack overflow — is a crash.
import type fc from 'fast-check';
import type { Corpus } from './corpus.js';

// biome-ignore lint/suspicious/noExplicitAny: error classes take any constructor arguments
export type ErrorClass = abstract new (...args: any[]) => Error;

export interface FuzzTarget<T = unknown> {
  name: string;
  /** The API under test, as the report names it. */
  about: string;
  input: (corpus: () => Corpus) => fc.Arbitrary<T>;
  /** Calls the API; may assert on the value it returns (bounds, shape). */
  run: (input: T, corpus: Corpus) => unknown;
  /** The typed errors the API documents. Empty: it must never throw. */
  expected: readonly ErrorClass[];
  /** The input can hold key material: a counterexample is reported by digest and length, never printed. */
  secret?: boolean;
  /** Inputs in the seeded run inside `npm run test:unit` (default 300). */
  quickRuns?: number;
}

export function target<T>(definition: FuzzTarget<T>): FuzzTarget<unknown> {
  return definition as FuzzTarget<unknown>;
}

/** Throws unless the error is one of the expected classes. */
export function expectTyped(error: unknown, expected: readonly ErrorClass[]): void {
  if (expected.some((errorClass) => error instanceof errorClass)) return;
  throw error;
}

/** A property violated by a value the API returned (not a crash, but as bad). */
export class BoundViolation extends Error {
  override name = 'BoundViolation';
}

export function bound(condition: boolean, message: string): void {
  if (!condition) throw new BoundViolation(message);
}
