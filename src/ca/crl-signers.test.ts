import { describe, expect, it } from 'vitest';
import { privateKeyToPem } from '../pki/index.js';
import { createTestCa, createTestIntermediate } from '../pki/testing.js';
import { loadPluggedIn, loadSelfSigned } from './authority.js';
import { crlSigners, operatorCrlPem } from './crl-signers.js';

const now = new Date(Date.UTC(2026, 10, 30));
const options = { now, minRemainingMs: 60_000 };

describe('crlSigners', () => {
  it('is the active root, plus the other root whose key istio-ca-secret holds during a rotation', async () => {
    const [active, previous, stray] = await Promise.all(
      [1, 2, 3].map(() => createTestCa({ notBefore: now })),
    );
    const data: Record<string, Buffer> = {
      'ca-cert.pem': Buffer.from(active!.root.pem),
      'ca-key.pem': Buffer.from(privateKeyToPem(active!.keys.privateKey)),
      'root-cert.pem': Buffer.from(previous!.root.pem + active!.root.pem),
    };
    const authority = await loadSelfSigned(data, 'istio-system/istio-ca-secret', options);
    expect(crlSigners(authority, data).map((s) => s.fingerprint)).toEqual([
      authority.signer.fingerprintSha256,
    ]);
    const rotating = {
      ...data,
      'previous-ca-cert.pem': Buffer.from(previous!.root.pem),
      'previous-ca-key.pem': Buffer.from(privateKeyToPem(previous!.keys.privateKey)),
      // A key that does not match its certificate is no signer.
      'next-ca-cert.pem': Buffer.from(stray!.root.pem),
      'next-ca-key.pem': Buffer.from(privateKeyToPem(active!.keys.privateKey)),
    };
    expect(crlSigners(authority, rotating).map((s) => s.certificateDer)).toEqual([
      active!.root.der,
      previous!.root.der,
    ]);
  });

  it('is the signing CA in plugged-in mode, with the operator’s CRLs from cacerts', async () => {
    const root = await createTestCa({ notBefore: new Date(now.getTime() - 86_400_000) });
    const intermediate = await createTestIntermediate(root.issuer, {
      notBefore: new Date(now.getTime() - 86_400_000),
    });
    const data: Record<string, Buffer> = {
      'ca-cert.pem': Buffer.from(intermediate.certificate.pem),
      'ca-key.pem': Buffer.from(privateKeyToPem(intermediate.keys.privateKey)),
      'root-cert.pem': Buffer.from(root.root.pem),
      'cert-chain.pem': Buffer.from(intermediate.certificate.pem + root.root.pem),
      'ca-crl.pem': Buffer.from('operator CRLs'),
    };
    const authority = await loadPluggedIn(data, 'istio-system/cacerts', options);
    expect(crlSigners(authority, data).map((s) => s.certificateDer)).toEqual([intermediate.certificate.der]);
    expect(operatorCrlPem(authority, data)).toBe('operator CRLs');
  });
});
