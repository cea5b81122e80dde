import { describe, expect, it } from 'vitest';
import {
  decodeObjectIdentifier,
  decodeTime,
  namedBitString,
  objectIdentifier,
  readChildren,
  readElement,
  sequence,
  setOf,
  time,
  unsignedInteger,
} from './der.js';

const hex = (buffer: Buffer) => buffer.toString('hex');

describe('DER encoding', () => {
  it('encodes integers minimally, adding a sign octet when the top bit is set', () => {
    expect(hex(unsignedInteger(0))).toBe('020100');
    expect(hex(unsignedInteger(2))).toBe('020102');
    expect(hex(unsignedInteger(0x80))).toBe('02020080');
    expect(hex(unsignedInteger(Buffer.from([0, 0, 0x12])))).toBe('020112');
    expect(hex(unsignedInteger(Buffer.from([0xff, 0x01])))).toBe('020300ff01');
  });

  it('encodes object identifiers, including multi-byte arcs', () => {
    expect(hex(objectIdentifier('1.2.840.113549.1.1.11'))).toBe('06092a864886f70d01010b');
    expect(hex(objectIdentifier('2.5.29.17'))).toBe('0603551d11');
    expect(decodeObjectIdentifier(readElement(objectIdentifier('1.3.6.1.5.5.7.3.2')))).toBe(
      '1.3.6.1.5.5.7.3.2',
    );
  });

  it('encodes KeyUsage-style named bits without trailing zero bits', () => {
    expect(hex(namedBitString([0]))).toBe('03020780'); // digitalSignature
    expect(hex(namedBitString([0, 2]))).toBe('030205a0'); // + keyEncipherment
    expect(hex(namedBitString([5, 6]))).toBe('03020106'); // keyCertSign + cRLSign
    expect(hex(namedBitString([8]))).toBe('0303070080'); // decipherOnly
  });

  it('uses UTCTime through 2049 and GeneralizedTime from 2050, in whole seconds', () => {
    expect(time(new Date('2049-12-31T23:59:59.999Z')).subarray(2).toString()).toBe('491231235959Z');
    expect(time(new Date('2050-01-01T00:00:00Z')).subarray(2).toString()).toBe('20500101000000Z');
    for (const iso of ['1999-06-01T12:00:00.000Z', '2049-12-31T23:59:59.000Z', '2050-01-01T00:00:00.000Z']) {
      expect(decodeTime(readElement(time(new Date(iso)))).toISOString()).toBe(iso);
    }
  });

  it('uses long-form lengths above 127 bytes', () => {
    const big = sequence(Buffer.alloc(300));
    expect(hex(big.subarray(0, 4))).toBe('3082012c');
    expect(readElement(big).value).toHaveLength(300);
  });

  it('sorts SET OF elements by their encoding', () => {
    expect(hex(setOf(unsignedInteger(2), unsignedInteger(1)))).toBe('3106020101020102');
  });
});

describe('DER reading', () => {
  it('reads nested children', () => {
    const [a, b] = readChildren(readElement(sequence(unsignedInteger(1), sequence())));
    expect(a!.tag).toBe(0x02);
    expect(b!.raw).toEqual(Buffer.from('3000', 'hex'));
  });

  it.each([
    ['3005020101', 'truncated DER'],
    ['300002', 'unexpected bytes after'],
    ['3080', 'indefinite length'],
    ['', 'expected a tag'],
  ])('rejects %s', (input, message) => {
    expect(() => readElement(Buffer.from(input, 'hex'))).toThrow(message);
  });
});
