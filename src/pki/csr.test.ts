import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CsrError, parseCsrDer, parseCsrPem } from './csr.js';
import { buildTestCsrDer, buildTestCsrPem, testKey } from './csr-testing.js';
import { encodePem } from './pem.js';

const ID = 'spiffe://cluster.local/ns/shop/sa/cart';
const dir = mkdtempSync(join(tmpdir(), 'alcazar-csr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function reasonOf(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    if (err instanceof CsrError) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('parseCsrPem', () => {
  it('reads a request OpenSSL made: key, URI SAN, no other names', () => {
    const keyFile = join(dir, 'key.pem');
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile]);
    const pem = execFileSync(
      'openssl',
      ['req', '-new', '-key', keyFile, '-subj', '/O=shop', '-addext', `subjectAltName=URI:${ID}`],
      { encoding: 'utf8' },
    );
    const parsed = parseCsrPem(pem);
    expect(parsed.keyDescription).toBe('ECDSA P-256');
    expect(parsed.names).toEqual({
      uris: [ID],
      dnsNames: [],
      ipAddresses: [],
      emails: [],
      others: [],
      commonNames: [],
    });
  });

  it('reads an RSA-4096 request OpenSSL made with every kind of name', () => {
    const keyFile = join(dir, 'rsa.pem');
    execFileSync('openssl', ['genrsa', '-out', keyFile, '4096'], { stdio: 'ignore' });
    const pem = execFileSync(
      'openssl',
      [
        'req',
        '-new',
        '-key',
        keyFile,
        '-subj',
        '/CN=cart.shop',
        '-addext',
        `subjectAltName=URI:${ID},DNS:cart.shop.svc,IP:10.0.0.1,email:a@b.c,RID:1.2.3.4`,
      ],
      { encoding: 'utf8' },
    );
    const { keyDescription, names } = parseCsrPem(pem);
    expect(keyDescription).toBe('RSA 4096');
    expect(names).toEqual({
      uris: [ID],
      dnsNames: ['cart.shop.svc'],
      ipAddresses: ['10.0.0.1'],
      emails: ['a@b.c'],
      others: ['registeredID 1.2.3.4'],
      commonNames: ['cart.shop'],
    });
  }, 60_000);

  it.each([
    ['P-256', 'ECDSA P-256'],
    ['P-384', 'ECDSA P-384'],
    ['RSA-2048', 'RSA 2048'],
  ] as const)('accepts a %s key', (kind, description) => {
    expect(parseCsrPem(buildTestCsrPem({ privateKey: testKey(kind), uris: [ID] })).keyDescription).toBe(
      description,
    );
  });

  it.each(['P-521', 'RSA-1024', 'Ed25519'] as const)('refuses a %s key', (kind) => {
    expect(reasonOf(() => parseCsrPem(buildTestCsrPem({ privateKey: testKey(kind), uris: [ID] })))).toBe(
      'UnsupportedKey',
    );
  });

  it('refuses a request whose signature does not verify', () => {
    expect(reasonOf(() => parseCsrPem(buildTestCsrPem({ uris: [ID], corruptSignature: true })))).toBe(
      'BadSignature',
    );
  });

  it('refuses a request whose signature was made by another key', () => {
    const signer = testKey('P-256');
    const claimed = testKey('P-256');
    const spkiOf = (key: ReturnType<typeof testKey>) =>
      createPublicKey(key).export({ format: 'der', type: 'spki' }) as Buffer;
    const der = buildTestCsrDer({ privateKey: signer, uris: [ID] });
    const at = der.indexOf(spkiOf(signer));
    expect(at).toBeGreaterThan(0);
    // Same length, so every enclosing length stays right: only the key changes.
    const forged = Buffer.concat([
      der.subarray(0, at),
      spkiOf(claimed),
      der.subarray(at + spkiOf(signer).length),
    ]);
    expect(reasonOf(() => parseCsrDer(forged))).toBe('BadSignature');
  });

  it('refuses what is not one PEM CERTIFICATE REQUEST', () => {
    const csr = buildTestCsrPem({ uris: [ID] });
    expect(reasonOf(() => parseCsrPem('hello'))).toBe('Malformed');
    expect(reasonOf(() => parseCsrPem(csr + csr))).toBe('Malformed');
    expect(reasonOf(() => parseCsrPem(encodePem('CERTIFICATE', buildTestCsrDer())))).toBe('Malformed');
    expect(reasonOf(() => parseCsrPem(encodePem('CERTIFICATE REQUEST', Buffer.from('not der'))))).toBe(
      'Malformed',
    );
    expect(reasonOf(() => parseCsrPem('x'.repeat(20_000)))).toBe('Malformed');
  });

  it('refuses bytes after the request', () => {
    const der = Buffer.concat([buildTestCsrDer({ uris: [ID] }), Buffer.from([0])]);
    expect(reasonOf(() => parseCsrDer(der))).toBe('Malformed');
  });
});

describe('parseCsrDer on hostile input (property-based)', () => {
  const valid = buildTestCsrDer({ uris: [ID] });

  it('any bytes: accepted or a CsrError, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const reason = reasonOf(() => parseCsrDer(Buffer.from(bytes)));
        expect(reason).not.toBe('accepted');
      }),
      { numRuns: 2000 },
    );
  }, 60_000);

  it('a valid request with any byte changed is never accepted with a different key or names', () => {
    const original = parseCsrDer(valid);
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 }), (index, xor) => {
        const mutated = Buffer.from(valid);
        mutated[index]! ^= xor;
        let parsed: ReturnType<typeof parseCsrDer> | undefined;
        try {
          parsed = parseCsrDer(mutated);
        } catch (err) {
          expect(err).toBeInstanceOf(CsrError);
          return;
        }
        // A change that still verifies can only be in an unsigned, semantically equal place.
        expect(parsed.publicKey.equals(original.publicKey)).toBe(true);
        expect(parsed.names).toEqual(original.names);
      }),
      { numRuns: 500 },
    );
  }, 60_000);

  it('every truncation is refused as Malformed', () => {
    fc.assert(
      fc.property(fc.nat(valid.length - 1), (length) => {
        expect(reasonOf(() => parseCsrDer(valid.subarray(0, length)))).toBe('Malformed');
      }),
    );
  });

  it('names survive the round trip whatever they are', () => {
    const key = testKey('P-256');
    fc.assert(
      fc.property(
        fc.array(fc.webUrl(), { maxLength: 4 }),
        fc.array(fc.domain(), { maxLength: 4 }),
        (uris, dnsNames) => {
          const parsed = parseCsrDer(buildTestCsrDer({ privateKey: key, uris, dnsNames }));
          expect(parsed.names.uris).toEqual(uris);
          expect(parsed.names.dnsNames).toEqual(dnsNames);
        },
      ),
      { numRuns: 200 },
    );
  }, 60_000);
});
