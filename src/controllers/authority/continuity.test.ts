import { describe, expect, it } from 'vitest';
import { generateRootData } from '../../ca/self-signed.js';
import { decodeCertificatesPem } from '../../pki/pem.js';
import { createTestCa } from '../../pki/testing.js';
import { PHASE_ANNOTATION, PREVIOUS_CERT } from '../root-rotation/controller.js';
import { ACCEPTED_REQUEST_ANNOTATION, acceptedRootSecret } from './continuity.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const newRootData = () =>
  generateRootData({ trustDomain: 'cluster.local', keyAlgorithm: 'ECDSA_P256', ttlMs: 3_600_000, now: T0 });

describe('acceptedRootSecret', () => {
  it('starts the new root as a rotation in Reissuing: new root signs, the old one stays trusted until retired', async () => {
    const old = await createTestCa({ notBefore: T0 });
    const generated = await newRootData();
    const { stringData, annotations } = acceptedRootSecret(
      generated,
      { action: 'accept', request: 'r1', previousRoots: [old.root.der], previousActive: old.root.der },
      T0.getTime(),
    );
    const [newRoot] = decodeCertificatesPem(generated['ca-cert.pem']!);
    expect(stringData['ca-cert.pem']).toBe(generated['ca-cert.pem']);
    expect(decodeCertificatesPem(stringData['root-cert.pem']!)).toEqual([old.root.der, newRoot]);
    expect(decodeCertificatesPem(stringData[PREVIOUS_CERT]!)).toEqual([old.root.der]);
    expect(annotations[PHASE_ANNOTATION]).toBe('Reissuing');
    expect(annotations[ACCEPTED_REQUEST_ANNOTATION]).toBe('r1');
  });

  it('is a plain new root when no old root certificate is known', async () => {
    const generated = await newRootData();
    const { stringData, annotations } = acceptedRootSecret(
      generated,
      { action: 'accept', request: 'r1', previousRoots: [] },
      T0.getTime(),
    );
    expect(stringData).toEqual(generated);
    expect(annotations).toEqual({ [ACCEPTED_REQUEST_ANNOTATION]: 'r1' });
  });
});
