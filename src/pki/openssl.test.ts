/** Cross-checks against OpenSSL's command line: another implementation reading what we write. */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, type KeyAlgorithm, type KeyPair, privateKeyToPem } from './keys.js';
import { createTestCa, createTestIntermediate, issueTestLeaf, type TestCa } from './testing.js';

const T0 = new Date('2025-01-01T00:00:00Z');
const AT_EPOCH_SECONDS = String(T0.getTime() / 1000 + 3600);

let dir: string;
let rsaKeys: KeyPair;

beforeAll(async () => {
  [dir, rsaKeys] = await Promise.all([mkdtemp(join(tmpdir(), 'alcazar-pki-')), generateKeyPair('RSA_2048')]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeTemp(name: string, contents: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, contents, { mode: 0o600 });
  return path;
}

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs openssl verify at a fixed time; returns its combined output and whether it succeeded. */
function opensslVerify(args: string[]): { ok: boolean; output: string } {
  try {
    return { ok: true, output: openssl('verify', '-attime', AT_EPOCH_SECONDS, '-x509_strict', ...args) };
  } catch (error) {
    const { stdout, stderr } = error as { stdout: string; stderr: string };
    return { ok: false, output: `${stdout}${stderr}` };
  }
}

describe.each<KeyAlgorithm>(['ECDSA_P256', 'RSA_2048'])('OpenSSL reading an %s hierarchy', (algorithm) => {
  const keysFor = () => (algorithm === 'RSA_2048' ? { keys: rsaKeys } : { algorithm });
  let ca: TestCa;
  let paths: {
    root: string;
    chain: string;
    leaf: string;
    directLeaf: string;
    key: string;
    otherRoot: string;
  };
  let spiffeId: string;

  beforeAll(async () => {
    ca = await createTestCa({ notBefore: T0, ...keysFor() });
    const other = await createTestCa({ notBefore: T0 });
    const intermediate = await createTestIntermediate(ca.issuer, { notBefore: T0, ...keysFor() });
    const leaf = await issueTestLeaf(intermediate.issuer, {
      notBefore: T0,
      namespace: 'shop',
      serviceAccount: 'cart',
      ...keysFor(),
    });
    const directLeaf = await issueTestLeaf(ca.issuer, { notBefore: T0, ...keysFor() });
    spiffeId = leaf.spiffeId;
    const prefix = algorithm.toLowerCase();
    paths = {
      root: await writeTemp(`${prefix}-root.pem`, ca.root.pem),
      chain: await writeTemp(`${prefix}-chain.pem`, intermediate.certificate.pem),
      leaf: await writeTemp(`${prefix}-leaf.pem`, leaf.certificate.pem),
      directLeaf: await writeTemp(`${prefix}-direct-leaf.pem`, directLeaf.certificate.pem),
      key: await writeTemp(`${prefix}-key.pem`, privateKeyToPem(leaf.keys.privateKey)),
      otherRoot: await writeTemp(`${prefix}-other-root.pem`, other.root.pem),
    };
  });

  it('verifies leaf → intermediate → root, strictly, for TLS servers and clients', () => {
    for (const purpose of ['sslserver', 'sslclient']) {
      const result = opensslVerify([
        '-purpose',
        purpose,
        '-CAfile',
        paths.root,
        '-untrusted',
        paths.chain,
        paths.leaf,
      ]);
      expect(result).toEqual({ ok: true, output: `${paths.leaf}: OK\n` });
    }
  });

  it('verifies a leaf signed directly by the root', () => {
    expect(opensslVerify(['-CAfile', paths.root, paths.directLeaf]).ok).toBe(true);
  });

  it('rejects the leaf without its intermediate, or under another root', () => {
    expect(opensslVerify(['-CAfile', paths.root, paths.leaf]).output).toMatch(
      /unable to get local issuer certificate/,
    );
    expect(opensslVerify(['-CAfile', paths.otherRoot, '-untrusted', paths.chain, paths.leaf]).ok).toBe(false);
  });

  it('shows the workload leaf profile', () => {
    const text = openssl('x509', '-noout', '-text', '-in', paths.leaf);
    expect(text).toMatch(
      /X509v3 Subject Alternative Name: critical\n\s+URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart\n/,
    );
    expect(text).toContain(spiffeId);
    expect(text).toMatch(/Version: 3 \(0x2\)/);
    expect(text).toMatch(/Subject: *\n/);
    expect(text).toMatch(/Issuer: O = cluster.local, CN = alcazar test intermediate/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:FALSE/);
    expect(text).toMatch(
      /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication, TLS Web Client Authentication/,
    );
    expect(text).toMatch(/X509v3 Authority Key Identifier: \n/);
    const keyUsage = algorithm === 'RSA_2048' ? 'Digital Signature, Key Encipherment' : 'Digital Signature';
    expect(text).toMatch(new RegExp(`X509v3 Key Usage: critical\\n\\s+${keyUsage}\\n`));
    const signature = algorithm === 'RSA_2048' ? 'sha256WithRSAEncryption' : 'ecdsa-with-SHA256';
    expect(text).toContain(`Signature Algorithm: ${signature}`);
  });

  it('shows the root profile', () => {
    const text = openssl('x509', '-noout', '-text', '-in', paths.root);
    expect(text).toMatch(/Issuer: O = cluster.local\n/);
    expect(text).toMatch(/Subject: O = cluster.local\n/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
    expect(text).toMatch(/X509v3 Subject Key Identifier: \n/);
  });

  it('reads our key PEM and finds it matches the leaf', () => {
    const fromKey = openssl('pkey', '-in', paths.key, '-pubout');
    const fromCertificate = openssl('x509', '-in', paths.leaf, '-noout', '-pubkey');
    expect(fromKey).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(fromKey).toBe(fromCertificate);
  });
});
