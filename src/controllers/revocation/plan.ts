// What to do about one CertificateRevocation, decided purely. A revocation is decided once: it is
// either applied (its status lists what it revoked) or refused (its status says why), and the
// immutable spec keeps that decision true.
import type { RevocationRequest } from '../../config/revocation-spec.js';
import type { RevokedEntry } from './observe.js';

/** A certificate alcazar issued, as the Secrets and the issuance record know it. */
export interface IssuedCertificate {
  serial: string;
  namespace: string;
  serviceAccount: string;
  notAfter: number;
  /** When it was issued, as well as is known (a Secret's leaf: its notBefore). */
  issuedAt: number;
}

export interface RevocationPlanInput {
  namespace: string;
  caNamespace: string;
  createdAt: number;
  request: { ok: true; request: RevocationRequest } | { ok: false; message: string };
  /** Whether the ServiceAccount named in the spec exists now. */
  serviceAccountExists: boolean;
  /** What alcazar issued to the ServiceAccount named in the spec (empty when none is named). */
  issuedToServiceAccount: readonly IssuedCertificate[];
  /** What alcazar issued under each serial named in the spec, if it knows. */
  issuedBySerial: ReadonlyMap<string, IssuedCertificate>;
  now: number;
}

export type RefusalReason = 'InvalidSpec' | 'UnknownServiceAccount' | 'UnknownSerial' | 'CrossNamespace';

export type RevocationDecision =
  | { action: 'apply'; revoked: RevokedEntry[]; message: string }
  | { action: 'refuse'; reason: RefusalReason; message: string };

export function planRevocation(input: RevocationPlanInput): RevocationDecision {
  if (!input.request.ok) return { action: 'refuse', reason: 'InvalidSpec', message: input.request.message };
  const { serviceAccountName, serials } = input.request.request;
  const { namespace, now } = input;
  const mayRevokeAnywhere = namespace === input.caNamespace;
  const revoked = new Map<string, RevokedEntry>();
  const add = (cert: IssuedCertificate) =>
    revoked.set(cert.serial, {
      serial: cert.serial,
      notAfter: cert.notAfter,
      namespace: cert.namespace,
      serviceAccount: cert.serviceAccount,
    });

  for (const serial of serials) {
    const cert = input.issuedBySerial.get(serial);
    if (!cert || cert.notAfter <= now) {
      return {
        action: 'refuse',
        reason: 'UnknownSerial',
        message: `serial ${serial} is not a valid certificate alcazar issued (unknown, or already expired); nothing was revoked`,
      };
    }
    if (cert.namespace !== namespace && !mayRevokeAnywhere) {
      return {
        action: 'refuse',
        reason: 'CrossNamespace',
        message: `serial ${serial} was issued to an identity of another namespace; revoke it from that namespace (or from the CA namespace ${input.caNamespace}); nothing was revoked`,
      };
    }
    add(cert);
  }

  if (serviceAccountName !== undefined) {
    const valid = input.issuedToServiceAccount.filter(
      (cert) =>
        cert.namespace === namespace &&
        cert.serviceAccount === serviceAccountName &&
        cert.notAfter > now &&
        cert.issuedAt <= input.createdAt,
    );
    if (!input.serviceAccountExists && valid.length === 0) {
      return {
        action: 'refuse',
        reason: 'UnknownServiceAccount',
        message: `ServiceAccount ${namespace}/${serviceAccountName} does not exist and holds no valid certificate from alcazar; nothing was revoked`,
      };
    }
    for (const cert of valid) add(cert);
  }

  const entries = [...revoked.values()].sort((a, b) => (a.serial < b.serial ? -1 : 1));
  const target = serviceAccountName !== undefined ? ` of ServiceAccount ${serviceAccountName}` : '';
  return {
    action: 'apply',
    revoked: entries,
    message:
      entries.length === 0
        ? `no valid certificate${target} to revoke`
        : `revoked ${entries.length} certificate${entries.length === 1 ? '' : 's'}${target}; they are listed in ConfigMap istio-ca-crl until they expire`,
  };
}
