import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeCertificatesPem, decodePem, encodeCertificatesPem, encodePem, PemError } from './pem.js';
import { pemBegin, pemEnd } from './testing.js';

describe('encodePem', () => {
  it('wraps base64 at 64 characters and ends with a newline', () => {
    const pem = encodePem('CERTIFICATE', Buffer.alloc(100, 0xab));
    const lines = pem.split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines[1]).toHaveLength(64);
    expect(lines[2]!.length).toBeLessThanOrEqual(64);
    expect(lines.at(-2)).toBe('-----END CERTIFICATE-----');
    expect(pem.endsWith('-----END CERTIFICATE-----\n')).toBe(true);
  });
});

describe('decodePem', () => {
  it('round-trips blocks of every size around the line length', () => {
    for (const size of [1, 47, 48, 49, 96, 1000]) {
      const der = randomBytes(size);
      expect(decodePem(encodePem('X', der))).toEqual([{ type: 'X', der }]);
    }
  });

  it('reads a bundle in order', () => {
    const first = randomBytes(50);
    const second = randomBytes(70);
    const bundle = encodePem('CERTIFICATE', first) + encodePem('EC PRIVATE KEY', second);
    expect(decodePem(bundle)).toEqual([
      { type: 'CERTIFICATE', der: first },
      { type: 'EC PRIVATE KEY', der: second },
    ]);
  });

  it('tolerates CRLF, indentation, blank lines and text between blocks', () => {
    const der = randomBytes(200);
    const messy = `# Issuer: O=cluster.local\r\n\r\n   ${encodePem('CERTIFICATE', der).split('\n').join('\r\n   ')}\r\ntrailing words`;
    expect(decodePem(messy)).toEqual([{ type: 'CERTIFICATE', der }]);
  });

  it('reads PEM given as bytes (as in Secret data)', () => {
    const der = randomBytes(20);
    expect(decodePem(Buffer.from(encodePem('CERTIFICATE', der)))[0]!.der).toEqual(der);
  });

  it.each([
    ['', 'no PEM block found'],
    ['just some text', 'no PEM block found'],
    ['-----BEGIN CERTIFICATE-----\nAAAA\n', 'the "CERTIFICATE" block opened on line 1 has no END line'],
    [
      `${pemBegin('CERTIFICATE')}\nAAAA\n${pemEnd('PRIVATE KEY')}\n`,
      '"END PRIVATE KEY" closes a "BEGIN CERTIFICATE"',
    ],
    ['-----END CERTIFICATE-----\n', 'END line without a matching BEGIN'],
    ['-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n', 'is not valid base64'],
    ['-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n', 'is not valid base64'],
    ['-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 'is empty'],
    ['-----BEGIN CERTIFICATE----\nAAAA\n-----END CERTIFICATE-----\n', 'malformed BEGIN line'],
    ['-----BEGIN A-----\n-----BEGIN B-----\n', 'BEGIN inside the "A" block'],
    [
      `${pemBegin('RSA PRIVATE KEY')}\nProc-Type: 4,ENCRYPTED\nAAAA\n${pemEnd('RSA PRIVATE KEY')}\n`,
      'PEM headers',
    ],
  ])('rejects %j with "%s"', (text, message) => {
    expect(() => decodePem(text)).toThrow(PemError);
    expect(() => decodePem(text)).toThrow(message);
  });
});

describe('decodeCertificatesPem', () => {
  it('round-trips a chain through encodeCertificatesPem', () => {
    const chain = [randomBytes(30), randomBytes(40)];
    expect(decodeCertificatesPem(encodeCertificatesPem(chain))).toEqual(chain);
  });

  it('refuses a bundle that smuggles in a key', () => {
    const bundle = encodePem('CERTIFICATE', randomBytes(10)) + encodePem('RSA PRIVATE KEY', randomBytes(10));
    expect(() => decodeCertificatesPem(bundle)).toThrow(
      'block 2 is "RSA PRIVATE KEY", expected only CERTIFICATE blocks',
    );
  });
});
