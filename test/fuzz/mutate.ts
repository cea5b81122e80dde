// Arbitraries for hostile input: valid seeds bent by a few edits (the input
// that gets past the first checks of a parser), random DER trees, and text
// edits of PEM. Positions are taken modulo the current length, so every edit
// applies to any seed and shrinks towards the start of the input.
import fc from 'fast-check';
import { pemBegin, pemEnd } from '../../src/pki/testing.js';

export type ByteEdit =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'duplicate'; at: number; length: number; to: number }
  /** Overwrites a length octet with a long-form length (e.g. 0x84 ff ff ff ff, "4 GiB follow"). */
  | { kind: 'length'; at: number; bytes: number[] };

const position = fc.nat({ max: 1 << 20 });

/** Long-form length claims: indefinite, zero-padded, huge, more octets than allowed. */
const lengthClaims: number[][] = [
  [0x80],
  [0x81, 0x00],
  [0x81, 0xff],
  [0x82, 0xff, 0xff],
  [0x84, 0x7f, 0xff, 0xff, 0xff],
  [0x84, 0xff, 0xff, 0xff, 0xff],
  [0x85, 0x01, 0x00, 0x00, 0x00, 0x00],
  [0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0xff],
];

export const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: position, value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({
    kind: fc.constant('duplicate' as const),
    at: position,
    length: fc.integer({ min: 1, max: 256 }),
    to: position,
  }),
  fc.record({ kind: fc.constant('length' as const), at: position, bytes: fc.constantFrom(...lengthClaims) }),
);

export function applyByteEdits(seed: Uint8Array, edits: readonly ByteEdit[]): Buffer {
  let bytes = Buffer.from(seed);
  for (const edit of edits) {
    const at = edit.at % (bytes.length + 1);
    switch (edit.kind) {
      case 'set':
        if (at < bytes.length) bytes[at] = edit.value;
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), edit.bytes, bytes.subarray(at)]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + edit.length)]);
        break;
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
      case 'duplicate': {
        const piece = bytes.subarray(at, at + edit.length);
        const to = edit.to % (bytes.length + 1);
        bytes = Buffer.concat([bytes.subarray(0, to), piece, bytes.subarray(to)]);
        break;
      }
      case 'length':
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(edit.bytes), bytes.subarray(at + 1)]);
        break;
    }
  }
  return bytes;
}

/** One of `seeds` with one to eight edits. */
export function mutatedBytes(seeds: () => readonly Uint8Array[]): fc.Arbitrary<Buffer> {
  return fc
    .record({ pick: fc.nat(), edits: fc.array(byteEdit, { minLength: 1, maxLength: 8 }) })
    .map(({ pick, edits }) => {
      const all = seeds();
      return applyByteEdits(all[pick % all.length]!, edits);
    });
}

/** DER-shaped trees of random tags and contents, with correct lengths: they pass the TLV reader. */
export const derTree: fc.Arbitrary<Buffer> = fc.letrec<{ node: Buffer }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc
      .record({ tag: fc.integer({ min: 0, max: 0x1e }), value: fc.uint8Array({ maxLength: 40 }) })
      .map(({ tag, value }) => tlvOf(tag, value)),
    fc
      .record({
        tag: fc.constantFrom(0x30, 0x31, 0xa0, 0xa1, 0xa3, 0x04, 0x03),
        children: fc.array(tie('node'), { maxLength: 5 }),
      })
      .map(({ tag, children }) =>
        tlvOf(tag, tag === 0x03 ? Buffer.concat([Buffer.from([0]), ...children]) : Buffer.concat(children)),
      ),
  ),
})).node;

function tlvOf(tag: number, value: Uint8Array): Buffer {
  const length = value.length;
  const header =
    length < 0x80
      ? [tag, length]
      : length < 0x100
        ? [tag, 0x81, length]
        : [tag, 0x82, length >> 8, length & 0xff];
  return Buffer.concat([Buffer.from(header), value]);
}

/** Anything DER-ish: random bytes, a random tree, or a mutated seed. */
export function hostileDer(seeds: () => readonly Uint8Array[]): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)), weight: 1 },
    { arbitrary: derTree, weight: 2 },
    { arbitrary: mutatedBytes(seeds), weight: 5 },
  );
}

export type TextEdit =
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'duplicateLine'; line: number }
  | { kind: 'dropLine'; line: number }
  | { kind: 'replaceLine'; line: number; text: string };

/** Characters that mean something to a PEM reader. */
const pemChars = fc.constantFrom(...'-=:/+ \t\r\nABEGINDKYRTCFaz019'.split(''));
const pemText = fc.oneof(
  fc.string({ unit: pemChars, maxLength: 24 }),
  fc.constantFrom(
    pemBegin('CERTIFICATE'),
    pemEnd('CERTIFICATE'),
    pemBegin('EC PRIVATE KEY'),
    pemEnd('PRIVATE KEY'),
    '-----BEGIN ',
    'Proc-Type: 4,ENCRYPTED',
    '====',
    '\r\n',
  ),
  fc.string({ maxLength: 16 }),
);

export const textEdit: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: position, text: pemText }),
  fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 80 }) }),
  fc.record({ kind: fc.constant('duplicateLine' as const), line: position }),
  fc.record({ kind: fc.constant('dropLine' as const), line: position }),
  fc.record({ kind: fc.constant('replaceLine' as const), line: position, text: pemText }),
);

export function applyTextEdits(seed: string, edits: readonly TextEdit[]): string {
  let text = seed;
  for (const edit of edits) {
    if (edit.kind === 'insert' || edit.kind === 'delete') {
      const at = edit.at % (text.length + 1);
      text =
        edit.kind === 'insert'
          ? text.slice(0, at) + edit.text + text.slice(at)
          : text.slice(0, at) + text.slice(at + edit.length);
      continue;
    }
    const lines = text.split('\n');
    const line = edit.line % lines.length;
    if (edit.kind === 'duplicateLine') lines.splice(line, 0, lines[line]!);
    else if (edit.kind === 'dropLine') lines.splice(line, 1);
    else lines[line] = edit.text;
    text = lines.join('\n');
  }
  return text;
}

/** One of `seeds` (PEM text) with one to six text edits, or arbitrary text. */
export function hostilePem(seeds: () => readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.string({ maxLength: 300 }), weight: 1 },
    {
      arbitrary: fc
        .record({ pick: fc.nat(), edits: fc.array(textEdit, { minLength: 1, maxLength: 6 }) })
        .map(({ pick, edits }) => {
          const all = seeds();
          return applyTextEdits(all[pick % all.length]!, edits);
        }),
      weight: 5,
    },
  );
}
