/** Where the CertificateAuthority lives in the API; crd-sync.test.ts checks these against the CRD. */
export const certificateAuthorityResource = {
  group: 'alcazar.dev',
  version: 'v1alpha1',
  kind: 'CertificateAuthority',
  plural: 'certificateauthorities',
} as const;

/** The one CertificateAuthority the CRD admits (its root CEL rule rejects every other name). */
export { CERTIFICATE_AUTHORITY_NAME } from '../model/names.js';
