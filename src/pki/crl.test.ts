import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCrl, CRL_REASONS, type CrlEntry, crlSignedBy, normalizeSerialHex, parseCrl } from './crl.js';
import { generateKeyPair, type KeyPair } from './keys.js';
import { createTestCa, createTestIntermediate, issueTestLeaf, type TestCa } from './testing.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const HOUR = 3_600_000;
let ca: TestCa;
let rsaKeys: KeyPair;
let dir: string;

beforeAll(async () => {
  [ca, rsaKeys, dir] = await Promise.all([
    createTestCa({ notBefore: T0 }),
    generateKeyPair('RSA_2048'),
    mkdtemp(join(tmpdir(), 'alcazar-crl-')),
  ]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function crlFor(issuer: TestCa['issuer'], entries: CrlEntry[], crlNumber = 7n) {
  return buildCrl({
    issuer,
    crlNumber,
    thisUpdate: new Date(T0.getTime() + HOUR),
    nextUpdate: new Date(T0.getTime() + 25 * HOUR),
    entries,
  });
}

describe('normalizeSerialHex', () => {
  it.each([
    ['04:FA:01', '04fa01'],
    ['0x4fa01', '04fa01'],
    ['  4FA01 ', '04fa01'],
    ['0000ff', 'ff'],
    ['80', '80'],
  ])('reads %s as %s', (text, canonical) => {
    expect(normalizeSerialHex(text)).toBe(canonical);
  });

  it.each(['', '0', '00', 'xyz', 'f'.repeat(41), '-1'])('refuses %j', (text) => {
    expect(normalizeSerialHex(text)).toBeUndefined();
  });
});

describe('buildCrl', () => {
  it('writes a v2 CRL with the issuer name, AKI, CRL number, update times and reasons', () => {
    const { der } = crlFor(ca.issuer, [
      { serial: '0abc', revokedAt: T0, reason: 'keyCompromise' },
      { serial: '01', revokedAt: T0, reason: 'unspecified' },
    ]);
    const parsed = parseCrl(der);
    expect(parsed.crlNumber).toBe(7n);
    expect(parsed.thisUpdate).toEqual(new Date(T0.getTime() + HOUR));
    expect(parsed.nextUpdate).toEqual(new Date(T0.getTime() + 25 * HOUR));
    expect(parsed.authorityKeyId).toMatch(/^[0-9a-f]{40}$/);
    // Sorted by serial; an unspecified reason is written as no reason extension and read back as unspecified.
    expect(parsed.entries).toEqual([
      { serial: '01', revokedAt: T0, reason: 'unspecified' },
      { serial: '0abc', revokedAt: T0, reason: 'keyCompromise' },
    ]);
    expect(crlSignedBy(der, ca.root.der)).toBe(true);
  });

  it('is signed with the issuer key: another CA’s certificate does not verify it', async () => {
    const other = await createTestCa({ notBefore: T0 });
    const { der } = crlFor(ca.issuer, []);
    expect(crlSignedBy(der, other.root.der)).toBe(false);
    const tampered = Buffer.from(der);
    tampered[tampered.length - 5]! ^= 0xff;
    expect(crlSignedBy(tampered, ca.root.der)).toBe(false);
  });

  it('signs with an RSA CA and an intermediate', async () => {
    const rsa = await createTestCa({ notBefore: T0, keys: rsaKeys });
    const intermediate = await createTestIntermediate(ca.issuer, { notBefore: T0 });
    for (const [issuer, cert] of [
      [rsa.issuer, rsa.root.der],
      [intermediate.issuer, intermediate.certificate.der],
    ] as const) {
      const { der } = crlFor(issuer, [{ serial: '05', revokedAt: T0, reason: 'superseded' }]);
      expect(crlSignedBy(der, cert)).toBe(true);
      expect(parseCrl(der).entries[0]?.reason).toBe('superseded');
    }
  });

  it('refuses a leaf as issuer and an empty validity', async () => {
    const leaf = await issueTestLeaf(ca.issuer, { notBefore: T0 });
    expect(() => crlFor({ certificate: leaf.certificate.der, privateKey: leaf.keys.privateKey }, [])).toThrow(
      /not a CA/,
    );
    expect(() =>
      buildCrl({ issuer: ca.issuer, crlNumber: 1n, thisUpdate: T0, nextUpdate: T0, entries: [] }),
    ).toThrow(/nextUpdate/);
  });

  it('round-trips any entries, CRL number and times (property)', () => {
    const entry = fc.record({
      serial: fc.bigInt({ min: 1n, max: 2n ** 159n - 1n }).map((n) => normalizeSerialHex(n.toString(16))!),
      revokedAt: fc.integer({ min: 0, max: 4_000_000_000 }).map((s) => new Date(s * 1000)),
      reason: fc.constantFrom(...CRL_REASONS),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(entry, { selector: (e) => e.serial, maxLength: 20 }),
        fc.bigInt({ min: 0n, max: 2n ** 159n - 1n }),
        fc.integer({ min: 0, max: 3_000_000_000 }),
        (entries, crlNumber, thisUpdateSeconds) => {
          const thisUpdate = new Date(thisUpdateSeconds * 1000);
          const nextUpdate = new Date((thisUpdateSeconds + 86_400) * 1000);
          const { der } = buildCrl({ issuer: ca.issuer, crlNumber, thisUpdate, nextUpdate, entries });
          const parsed = parseCrl(der);
          expect(parsed.crlNumber).toBe(crlNumber);
          expect(parsed.thisUpdate).toEqual(thisUpdate);
          expect(parsed.nextUpdate).toEqual(nextUpdate);
          const bySerial = (a: CrlEntry, b: CrlEntry) =>
            BigInt(`0x${a.serial}`) < BigInt(`0x${b.serial}`) ? -1 : 1;
          expect(parsed.entries).toEqual([...entries].sort(bySerial));
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('OpenSSL reading our CRL', () => {
  it('verifies the signature and refuses the revoked leaf, accepts another', async () => {
    const revoked = await issueTestLeaf(ca.issuer, { notBefore: T0, lifetimeMs: 48 * HOUR });
    const kept = await issueTestLeaf(ca.issuer, { notBefore: T0, lifetimeMs: 48 * HOUR });
    const serial = normalizeSerialHex(
      execFileSync('openssl', ['x509', '-noout', '-serial'], { input: revoked.certificate.pem })
        .toString()
        .split('=')[1]!,
    )!;
    const { pem } = crlFor(ca.issuer, [{ serial, revokedAt: T0, reason: 'keyCompromise' }]);
    const files = {
      root: join(dir, 'root.pem'),
      crl: join(dir, 'crl.pem'),
      revoked: join(dir, 'revoked.pem'),
      kept: join(dir, 'kept.pem'),
    };
    await Promise.all([
      writeFile(files.root, ca.root.pem),
      writeFile(files.crl, pem),
      writeFile(files.revoked, revoked.certificate.pem),
      writeFile(files.kept, kept.certificate.pem),
    ]);
    const text = execFileSync(
      'openssl',
      ['crl', '-in', files.crl, '-CAfile', files.root, '-noout', '-text'],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    expect(text).toMatch(/X509v3 CRL Number:\s*7/);
    expect(text).toMatch(/Key Compromise/);
    const at = String(T0.getTime() / 1000 + 2 * 3600);
    const verify = (leaf: string) => {
      try {
        return execFileSync(
          'openssl',
          ['verify', '-attime', at, '-crl_check', '-CAfile', files.root, '-CRLfile', files.crl, leaf],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
        );
      } catch (err) {
        const { stdout, stderr } = err as { stdout: string; stderr: string };
        return `${stdout}${stderr}`;
      }
    };
    expect(verify(files.revoked)).toMatch(/certificate revoked/);
    expect(verify(files.kept)).toMatch(/: OK/);
  });
});
