// Minting one workload's key and certificate.
import { issueLeafCertificate, type KeyAlgorithm, randomSerialNumber } from '../pki/index.js';
import { generateNewKey } from '../pki/new-key.js';
import type { SigningAuthority } from './authority.js';

export interface WorkloadRequest {
  spiffeId: string;
  dnsNames: readonly string[];
  keyAlgorithm: KeyAlgorithm;
  ttlMs: number;
  backdateMs: number;
  now: Date;
}

/** The three data keys of an istio.io/key-and-cert Secret. Holds a private key: never log it. */
export interface WorkloadMaterial {
  data: { 'cert-chain.pem': string; 'key.pem': string; 'root-cert.pem': string };
  serialHex: string;
  notAfter: Date;
  /** The leaf, for remembering what was written (see WrittenContents). */
  leafDer: Buffer;
}

export async function issueWorkload(
  authority: SigningAuthority,
  request: WorkloadRequest,
): Promise<WorkloadMaterial> {
  const key = await generateNewKey(request.keyAlgorithm);
  // A leaf never outlives its signer (Istio #18990).
  const notAfter = new Date(
    Math.min(request.now.getTime() + request.ttlMs, authority.signer.notAfter.getTime()),
  );
  const serial = randomSerialNumber();
  const leaf = await issueLeafCertificate({
    publicKey: { subjectPublicKeyInfoDer: key.subjectPublicKeyInfoDer },
    spiffeId: request.spiffeId,
    dnsNames: request.dnsNames,
    notBefore: leafNotBefore(request, authority.signer.notBefore),
    notAfter,
    issuer: { certificate: authority.signerCertificateDer, privateKey: authority.signerKey },
    serialNumber: serial,
  });
  return {
    data: {
      'cert-chain.pem': leaf.pem + authority.chainPem,
      'key.pem': key.privateKeyPem,
      'root-cert.pem': authority.rootBundlePem,
    },
    serialHex: serialHex(serial),
    notAfter,
    leafDer: leaf.der,
  };
}

/**
 * Backdated for clock skew, but never before the signer's own NotBefore: a leaf valid before its
 * issuer fails path validation in strict verifiers during that window (a fresh root, a new CA).
 */
export function leafNotBefore(
  request: Pick<WorkloadRequest, 'now' | 'backdateMs'>,
  signerNotBefore: Date,
): Date {
  return new Date(Math.max(request.now.getTime() - request.backdateMs, signerNotBefore.getTime()));
}

/** As inspectCertificate shows a serial: whole bytes, so a leading zero nibble is kept (0x04fa…, not 4fa…). */
export function serialHex(serial: bigint): string {
  const hex = serial.toString(16);
  return hex.length % 2 === 1 ? `0${hex}` : hex;
}
