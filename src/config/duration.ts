/**
 * Go-style duration strings ("90m", "1h30m", "2160h", "1.5h", "500ms"), the notation Kubernetes
 * users already write in flags and manifests and the one CEL's `duration()` reads, so a value
 * accepted here means the same thing to the apiserver's validation rules.
 */

const NANOS_PER_UNIT: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5 micro sign
  μs: 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/** Go keeps durations in an int64 of nanoseconds; anything longer cannot be a valid duration. */
const MAX_NANOS = 2n ** 63n - 1n;

const NANOS_PER_MS = 1_000_000n;

const HINT = "use units ns, us, ms, s, m or h, as in '45s', '90m', '1h30m' or '2160h'";

export type DurationParseResult = { ok: true; ms: number } | { ok: false; message: string };

/**
 * Parses a Go-style duration into milliseconds (fractional below one millisecond). Accepts what
 * Go's time.ParseDuration accepts: an optional sign, then one or more decimal numbers each with a
 * unit of ns, us (µs), ms, s, m or h; a bare "0" is zero.
 */
export function tryParseDuration(text: string): DurationParseResult {
  const fail = (reason: string): DurationParseResult => ({
    ok: false,
    message: `invalid duration ${JSON.stringify(text)}: ${reason} (${HINT})`,
  });

  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return { ok: true, ms: 0 };
  if (rest === '') return fail('it is empty');
  if (/\s/.test(rest)) return fail('it contains white space');

  let totalNanos = 0n;
  const term = /^(\d*)(?:\.(\d*))?([^\d.]*)/;
  while (rest !== '') {
    const match = term.exec(rest);
    const [whole = '', integerDigits = '', fractionDigits = '', unit = ''] = match ?? [];
    if (integerDigits === '' && fractionDigits === '') return fail('expected a number');
    if (unit === '') return fail(`the number ${whole} has no unit`);
    const nanosPerUnit = NANOS_PER_UNIT[unit];
    if (nanosPerUnit === undefined) return fail(`unknown unit '${unit}'`);

    totalNanos += BigInt(integerDigits || '0') * nanosPerUnit;
    if (fractionDigits !== '') {
      // Truncate below one nanosecond, as Go does.
      totalNanos += (BigInt(fractionDigits) * nanosPerUnit) / 10n ** BigInt(fractionDigits.length);
    }
    if (totalNanos > MAX_NANOS) return fail('it is longer than the longest duration (about 292 years)');
    rest = rest.slice(whole.length);
  }

  const ms = nanosToMs(totalNanos);
  return { ok: true, ms: negative ? -ms : ms };
}

/** Like tryParseDuration, but throws an Error carrying the message. */
export function parseDuration(text: string): number {
  const result = tryParseDuration(text);
  if (!result.ok) throw new Error(result.message);
  return result.ms;
}

function nanosToMs(nanos: bigint): number {
  const wholeMs = nanos / NANOS_PER_MS;
  const remainderNanos = nanos % NANOS_PER_MS;
  return Number(wholeMs) + Number(remainderNanos) / 1e6;
}

const FORMAT_UNITS: ReadonlyArray<readonly [unit: string, nanos: bigint]> = [
  ['h', NANOS_PER_UNIT.h!],
  ['m', NANOS_PER_UNIT.m!],
  ['s', NANOS_PER_UNIT.s!],
  ['ms', NANOS_PER_UNIT.ms!],
  ['us', NANOS_PER_UNIT.us!],
  ['ns', NANOS_PER_UNIT.ns!],
];

/**
 * Formats milliseconds as the canonical duration string: units from hours down, zero parts left
 * out, no fractions ("2160h", "1h30m", "1s500ms", "0s"). parseDuration(formatDuration(x)) === x
 * for every whole number of milliseconds.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`cannot format ${ms} as a duration`);
  const sign = ms < 0 ? '-' : '';
  const magnitude = Math.abs(ms);
  // Split before scaling so that long durations stay exact: whole milliseconds are exact in a
  // double up to 2^53, nanoseconds only up to about 104 days.
  const wholeMs = Math.trunc(magnitude);
  const subMsNanos = Math.round((magnitude - wholeMs) * 1e6);
  let nanos = BigInt(wholeMs) * NANOS_PER_MS + BigInt(subMsNanos);
  if (nanos === 0n) return '0s';

  let text = '';
  for (const [unit, size] of FORMAT_UNITS) {
    const count = nanos / size;
    if (count > 0n) {
      text += `${count}${unit}`;
      nanos -= count * size;
    }
  }
  return sign + text;
}
