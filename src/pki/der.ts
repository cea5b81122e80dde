/**
 * A minimal DER encoder and reader: just enough ASN.1 for X.509 certificates.
 *
 * Encoders return complete TLVs (tag, length, contents) as Buffers, so pieces nest by concatenation and
 * bytes taken from another certificate (an issuer Name) can be embedded unchanged.
 */

export class DerError extends Error {
  override name = 'DerError';
}

export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Tag byte of a context-specific field: `[n] EXPLICIT` or IMPLICIT constructed uses `constructed`. */
export function contextTag(tagNumber: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | tagNumber;
}

// ---- encoding ----

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, contents: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(contents.length), contents]);
}

export function sequence(...elements: Uint8Array[]): Buffer {
  return tlv(Tag.SEQUENCE, Buffer.concat(elements));
}

/** SET OF: DER orders the elements by their encodings. */
export function setOf(...elements: Uint8Array[]): Buffer {
  const sorted = [...elements].sort((a, b) => Buffer.compare(a, b));
  return tlv(Tag.SET, Buffer.concat(sorted));
}

/** `[n] EXPLICIT inner` */
export function explicit(tagNumber: number, inner: Uint8Array): Buffer {
  return tlv(contextTag(tagNumber, true), inner);
}

/** `[n] IMPLICIT` over a primitive type: the contents of that type under a context tag. */
export function implicitPrimitive(tagNumber: number, contents: Uint8Array): Buffer {
  return tlv(contextTag(tagNumber, false), contents);
}

export function booleanValue(value: boolean): Buffer {
  return tlv(Tag.BOOLEAN, Buffer.from([value ? 0xff : 0x00]));
}

export function nullValue(): Buffer {
  return tlv(Tag.NULL, Buffer.alloc(0));
}

/** A non-negative INTEGER from its magnitude, minimally encoded (a 0x00 is prepended when the top bit is set). */
export function unsignedInteger(value: bigint | number | Uint8Array): Buffer {
  let magnitude: Buffer;
  if (typeof value === 'bigint' || typeof value === 'number') {
    const big = BigInt(value);
    if (big < 0n) throw new DerError(`cannot encode negative integer ${big}`);
    const hex = big.toString(16);
    magnitude = Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
  } else {
    magnitude = Buffer.from(value);
  }
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  let contents = magnitude.subarray(start);
  if (contents.length === 0) contents = Buffer.from([0]);
  if ((contents[0]! & 0x80) !== 0) contents = Buffer.concat([Buffer.from([0]), contents]);
  return tlv(Tag.INTEGER, contents);
}

/** Encoded OIDs by dotted form: the same few are encoded for every certificate (~25 µs a leaf when not kept). */
const encodedOids = new Map<string, Buffer>();

export function objectIdentifier(dotted: string): Buffer {
  let encoded = encodedOids.get(dotted);
  if (encoded === undefined) {
    encoded = encodeObjectIdentifier(dotted);
    if (encodedOids.size < 1_000) encodedOids.set(dotted, encoded);
  }
  return Buffer.from(encoded); // a copy: callers own what they get
}

function encodeObjectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map((arc) => {
    if (!/^\d+$/.test(arc)) throw new DerError(`invalid object identifier "${dotted}"`);
    return Number(arc);
  });
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || first > 2 || (first < 2 && second > 39)) {
    throw new DerError(`invalid object identifier "${dotted}"`);
  }
  const bytes: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const base128: number[] = [arc & 0x7f];
    for (let high = Math.floor(arc / 128); high > 0; high = Math.floor(high / 128)) {
      base128.unshift(0x80 | (high & 0x7f));
    }
    bytes.push(...base128);
  }
  return tlv(Tag.OID, Buffer.from(bytes));
}

export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  return tlv(Tag.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

/**
 * A named-bit BIT STRING (as in KeyUsage): bit 0 is the most significant bit of the first byte, and DER
 * drops trailing zero bits.
 */
export function namedBitString(setBits: readonly number[]): Buffer {
  if (setBits.length === 0) return bitString(Buffer.alloc(0));
  const highest = Math.max(...setBits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of setBits) bytes[Math.floor(bit / 8)]! |= 0x80 >> (bit % 8);
  return bitString(bytes, 7 - (highest % 8));
}

export function octetString(bytes: Uint8Array): Buffer {
  return tlv(Tag.OCTET_STRING, bytes);
}

export function ia5String(text: string): Buffer {
  if ([...text].some((char) => char.charCodeAt(0) > 0x7f))
    throw new DerError(`"${text}" is not an IA5String (ASCII only)`);
  return tlv(Tag.IA5_STRING, Buffer.from(text, 'ascii'));
}

export function utf8String(text: string): Buffer {
  return tlv(Tag.UTF8_STRING, Buffer.from(text, 'utf8'));
}

const PRINTABLE_STRING = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

export function isPrintableString(text: string): boolean {
  return PRINTABLE_STRING.test(text);
}

export function printableString(text: string): Buffer {
  if (!isPrintableString(text)) throw new DerError(`"${text}" is not a PrintableString`);
  return tlv(Tag.PRINTABLE_STRING, Buffer.from(text, 'ascii'));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, always Zulu. */
export function time(date: Date): Buffer {
  const ms = date.getTime();
  if (Number.isNaN(ms)) throw new DerError('cannot encode an invalid Date');
  const year = date.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new DerError(`year ${year} is outside what X.509 times can encode`);
  const pad = (n: number) => String(n).padStart(2, '0');
  const rest =
    pad(date.getUTCMonth() + 1) +
    pad(date.getUTCDate()) +
    pad(date.getUTCHours()) +
    pad(date.getUTCMinutes()) +
    pad(date.getUTCSeconds());
  if (year < 2050) return tlv(Tag.UTC_TIME, Buffer.from(`${pad(year % 100)}${rest}Z`, 'ascii'));
  return tlv(Tag.GENERALIZED_TIME, Buffer.from(`${year}${rest}Z`, 'ascii'));
}

// ---- reading ----

export interface DerElement {
  tag: number;
  /** The contents octets. */
  value: Buffer;
  /** The whole TLV, a view into the input. */
  raw: Buffer;
}

/** Reads the element starting at `offset`; `end` is the offset just past it. */
export function readElementAt(input: Buffer, offset: number): DerElement & { end: number } {
  const tag = input[offset];
  if (tag === undefined) throw new DerError(`truncated DER: expected a tag at offset ${offset}`);
  if ((tag & 0x1f) === 0x1f) throw new DerError(`unsupported high tag number at offset ${offset}`);
  const firstLengthByte = input[offset + 1];
  if (firstLengthByte === undefined)
    throw new DerError(`truncated DER: expected a length at offset ${offset}`);
  let length = firstLengthByte;
  let header = 2;
  if (firstLengthByte & 0x80) {
    const lengthBytes = firstLengthByte & 0x7f;
    if (lengthBytes === 0) throw new DerError(`indefinite length at offset ${offset} is not allowed in DER`);
    if (lengthBytes > 4) throw new DerError(`length at offset ${offset} is too large`);
    if (offset + 2 + lengthBytes > input.length)
      throw new DerError(`truncated DER length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < lengthBytes; i++) length = length * 256 + input[offset + 2 + i]!;
    header += lengthBytes;
  }
  const end = offset + header + length;
  if (end > input.length) {
    throw new DerError(`truncated DER: element at offset ${offset} needs ${length} bytes, has fewer`);
  }
  return {
    tag,
    value: input.subarray(offset + header, end),
    raw: input.subarray(offset, end),
    end,
  };
}

/** Reads exactly one element that spans the whole input. */
export function readElement(input: Buffer, expectedTag?: number): DerElement {
  const element = readElementAt(input, 0);
  if (element.end !== input.length) {
    throw new DerError(`${input.length - element.end} unexpected bytes after the DER element`);
  }
  if (expectedTag !== undefined) expectTag(element, expectedTag, 'element');
  return element;
}

/** The elements inside a constructed element (SEQUENCE, SET, explicit tag). */
export function readChildren(parent: DerElement): DerElement[] {
  const children: DerElement[] = [];
  for (let offset = 0; offset < parent.value.length; ) {
    const child = readElementAt(parent.value, offset);
    children.push(child);
    offset = child.end;
  }
  return children;
}

export function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element === undefined) throw new DerError(`missing ${what}`);
  if (element.tag !== tag) {
    throw new DerError(`expected ${what} (tag 0x${hex2(tag)}), found tag 0x${hex2(element.tag)}`);
  }
  return element;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

export function decodeObjectIdentifier(element: DerElement): string {
  expectTag(element, Tag.OID, 'object identifier');
  const arcs: number[] = [];
  let arc = 0;
  for (const byte of element.value) {
    arc = arc * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(arc < 80 ? Math.floor(arc / 40) : 2, arc < 80 ? arc % 40 : arc - 80);
      else arcs.push(arc);
      arc = 0;
    }
  }
  if (arcs.length === 0 || (element.value.at(-1)! & 0x80) !== 0) {
    throw new DerError('malformed object identifier');
  }
  return arcs.join('.');
}

export function decodeBoolean(element: DerElement): boolean {
  expectTag(element, Tag.BOOLEAN, 'BOOLEAN');
  if (element.value.length !== 1) throw new DerError('malformed BOOLEAN');
  return element.value[0] !== 0;
}

/** A non-negative INTEGER's magnitude without the sign octet. */
export function decodeUnsignedInteger(element: DerElement): Buffer {
  expectTag(element, Tag.INTEGER, 'INTEGER');
  const { value } = element;
  if (value.length === 0) throw new DerError('empty INTEGER');
  if ((value[0]! & 0x80) !== 0) throw new DerError('negative INTEGER where a non-negative one is required');
  return value.length > 1 && value[0] === 0 ? value.subarray(1) : value;
}

/** The bits of a BIT STRING, plus the count of unused bits in its last byte. */
export function decodeBitString(element: DerElement): { bytes: Buffer; unusedBits: number } {
  expectTag(element, Tag.BIT_STRING, 'BIT STRING');
  const unusedBits = element.value[0];
  if (unusedBits === undefined || unusedBits > 7) throw new DerError('malformed BIT STRING');
  return { bytes: element.value.subarray(1), unusedBits };
}

export function decodeTime(element: DerElement): Date {
  const text = element.value.toString('ascii');
  let match: RegExpExecArray | null;
  if (element.tag === Tag.UTC_TIME) {
    match = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
    if (match) {
      const yy = Number(match[1]);
      match[1] = String(yy >= 50 ? 1900 + yy : 2000 + yy);
    }
  } else if (element.tag === Tag.GENERALIZED_TIME) {
    match = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(text);
  } else {
    throw new DerError(`expected UTCTime or GeneralizedTime, found tag 0x${hex2(element.tag)}`);
  }
  if (!match) throw new DerError(`malformed time "${text}"`);
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second));
}
