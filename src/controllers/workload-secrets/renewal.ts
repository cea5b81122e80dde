// When a workload certificate is renewed. Pure: every input is passed in.

export interface RenewalPolicy {
  /** Share of the lifetime kept as grace before notAfter (Citadel: 0.5). */
  gracePeriodRatio: number;
  /** Grace is never shorter than this, unless the certificate lives shorter (Citadel: 10 min). */
  minGracePeriodMs: number;
}

/** Largest share of the lifetime grace may take, so a renewal never falls due at issuance. */
const MAX_GRACE_SHARE = 0.9;
/** Renewals are spread over the last share of the grace period, by serial. */
const JITTER_SHARE = 0.05;

export function gracePeriodMs(lifetimeMs: number, policy: RenewalPolicy): number {
  const wanted = Math.max(lifetimeMs * policy.gracePeriodRatio, policy.minGracePeriodMs);
  return Math.min(wanted, lifetimeMs * MAX_GRACE_SHARE);
}

/**
 * A stable fraction in [0, 1) from the certificate's serial: the same certificate always gets the
 * same jitter. Asked at every reconcile and every enqueue, so it is a cheap 32-bit mix (FNV-1a, then
 * MurmurHash3's finaliser) rather than a SHA-256: at 100,000 ServiceAccounts the SHA-256 was 9% of
 * the CPU of a periodic resync (docs/BENCHMARKS.md). Spreading renewals needs no more than that.
 */
export function jitterFraction(serial: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < serial.length; i++) h = Math.imul(h ^ serial.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}

/**
 * The moment a certificate should be replaced: notAfter − grace − jitter,
 * where the jitter (up to 5% of grace, fixed per serial) keeps Secrets minted
 * together from renewing together, and survives controller restarts.
 */
export function renewAt(
  cert: { notBefore: number; notAfter: number; serial: string },
  policy: RenewalPolicy,
): number {
  const lifetime = Math.max(cert.notAfter - cert.notBefore, 0);
  const grace = gracePeriodMs(lifetime, policy);
  return Math.round(cert.notAfter - grace - grace * JITTER_SHARE * jitterFraction(cert.serial));
}

/**
 * When a certificate is due for replacement: at renewAt, unless it already ends with its signer
 * (a leaf never outlives its signer, so a fresh one could not end later: renewing it would mint
 * the same end again and again in the signer's last minutes); then at its own expiry.
 */
export function renewalDueAt(
  cert: { notBefore: number; notAfter: number; serial: string },
  policy: RenewalPolicy,
  signerNotAfter: number | undefined,
): number {
  return signerNotAfter !== undefined && cert.notAfter >= signerNotAfter
    ? cert.notAfter
    : renewAt(cert, policy);
}

export { backdateMs } from '../../config/ca-spec.js';
