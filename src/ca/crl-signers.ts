// Which CAs must each publish a CRL: every CA whose leaves may still be in use. In self-signed mode
// that is the active root, plus during a root rotation the other root whose key istio-ca-secret
// holds (the next one while Publishing, the previous one while Reissuing). In plugged-in mode it
// is the signing CA; CRLs the operator put in cacerts (ca-crl.pem) are published alongside, but
// the entries of one the signing CA issued go into its own CRL (CrlController: operatorCrls).
import { type KeyObject, X509Certificate } from 'node:crypto';
import { decodeCertificatesPem, parsePrivateKeyPem } from '../pki/index.js';
import type { SigningAuthority } from './authority.js';
import { sha256Hex } from './authority.js';

export interface CrlSigner {
  fingerprint: string;
  certificateDer: Buffer;
  privateKey: KeyObject;
}

export const OPERATOR_CRL_KEY = 'ca-crl.pem';
/** Kept in istio-ca-secret during a rotation: the root being introduced, and the one being retired. */
const ROTATION_PAIRS = [
  ['next-ca-cert.pem', 'next-ca-key.pem'],
  ['previous-ca-cert.pem', 'previous-ca-key.pem'],
] as const;

function signerOf(certPem: Buffer, keyPem: Buffer): CrlSigner | undefined {
  try {
    const [der] = decodeCertificatesPem(certPem);
    if (!der) return undefined;
    const privateKey = parsePrivateKeyPem(keyPem);
    if (!new X509Certificate(der).checkPrivateKey(privateKey)) return undefined;
    return { fingerprint: sha256Hex(der), certificateDer: der, privateKey };
  } catch {
    return undefined;
  }
}

/** The CRL signers of a loaded authority; `caSecretData` is the data of the Secret it was loaded from. */
export function crlSigners(
  authority: SigningAuthority,
  caSecretData: Record<string, Buffer> | undefined,
): CrlSigner[] {
  const signers: CrlSigner[] = [
    {
      fingerprint: sha256Hex(authority.signerCertificateDer),
      certificateDer: authority.signerCertificateDer,
      privateKey: authority.signerKey,
    },
  ];
  if (authority.mode !== 'SelfSigned' || !caSecretData) return signers;
  for (const [certKey, keyKey] of ROTATION_PAIRS) {
    const cert = caSecretData[certKey];
    const key = caSecretData[keyKey];
    if (!cert || !key) continue;
    const signer = signerOf(cert, key);
    if (signer && !signers.some((s) => s.fingerprint === signer.fingerprint)) signers.push(signer);
  }
  return signers;
}

/** The operator's CRLs from cacerts, as given (PEM); empty when there are none or not plugged in. */
export function operatorCrlPem(
  authority: SigningAuthority,
  caSecretData: Record<string, Buffer> | undefined,
): string {
  if (authority.mode !== 'PluggedIn') return '';
  return caSecretData?.[OPERATOR_CRL_KEY]?.toString('utf8') ?? '';
}
