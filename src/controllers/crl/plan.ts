// Whether the CRL published in the CA namespace (ConfigMap istio-ca-crl) must be signed again,
// decided purely from what is published, what is revoked and the clock.
//
// It is re-signed when a signer has no CRL there, when the entries differ (a new revocation, or a
// revoked certificate that has expired and so leaves), when half of its validity has passed, or
// when someone edited it. The CRL number only grows: one more than the highest seen in any
// istio-ca-crl, and never below the current unix time in seconds, so a lost ConfigMap still
// cannot make it go back.
import type { CrlEntry, CrlReason } from '../../pki/crl.js';

export interface RevokedForCrl {
  serial: string;
  notAfter: number;
  revokedAt: number;
  reason: CrlReason;
}

/** One CRL found in the published ConfigMap, with the signer that verifies it. */
export interface PublishedCrl {
  signerFingerprint: string;
  crlNumber: bigint;
  thisUpdate: number;
  nextUpdate: number;
  entriesKey: string;
}

export interface PublishedCrlConfigMap {
  owned: boolean;
  /** Our CRLs, each verified against a signer. */
  crls: PublishedCrl[];
  /** The text is exactly our CRLs followed by the operator's, and nothing else. */
  wellFormed: boolean;
}

export interface CrlPlanInput {
  /** Fingerprints of the CAs that must each have a CRL; undefined while the CA is not ready. */
  signers: readonly string[] | undefined;
  revoked: readonly RevokedForCrl[];
  validityMs: number;
  published?: PublishedCrlConfigMap;
  /** The highest CRL number in any istio-ca-crl alcazar can see. */
  highestCrlNumber: bigint;
  now: number;
}

export type CrlSignReason = 'Missing' | 'EntriesChanged' | 'SignersChanged' | 'RefreshDue' | 'Edited';

export type CrlDecision =
  | { action: 'none'; recheckAt: number }
  | { action: 'wait' }
  | { action: 'report'; reason: 'ForeignConfigMap'; message: string }
  | {
      action: 'sign';
      reason: CrlSignReason;
      crlNumber: bigint;
      thisUpdate: number;
      nextUpdate: number;
      entries: CrlEntry[];
    };

/** How far thisUpdate is set in the past, for verifiers whose clocks lag: 5 minutes, or a tenth of a short validity. */
export function crlBackdateMs(validityMs: number): number {
  return Math.min(5 * 60_000, Math.floor(validityMs / 10));
}

/** The moment a CRL is signed again: when half of its validity has passed. */
export function crlRefreshAt(crl: { thisUpdate: number; nextUpdate: number }): number {
  return crl.thisUpdate + (crl.nextUpdate - crl.thisUpdate) / 2;
}

/** A stable text for a set of entries, to compare what is published with what should be. */
export function entriesKey(
  entries: readonly { serial: string; reason: string; revokedAt: number | Date }[],
): string {
  return entries
    .map((e) => `${e.serial}:${e.reason}:${Math.floor(new Date(e.revokedAt).getTime() / 1000)}`)
    .sort()
    .join(',');
}

/** The entries a CRL signed now lists: every revoked certificate not yet expired, each serial once. */
export function liveEntries(revoked: readonly RevokedForCrl[], now: number): CrlEntry[] {
  const bySerial = new Map<string, RevokedForCrl>();
  for (const entry of revoked) {
    if (entry.notAfter <= now) continue;
    const seen = bySerial.get(entry.serial);
    // Revoked twice: the earliest revocation counts.
    if (!seen || entry.revokedAt < seen.revokedAt) bySerial.set(entry.serial, entry);
  }
  return [...bySerial.values()].map((e) => ({
    serial: e.serial,
    revokedAt: new Date(e.revokedAt),
    reason: e.reason,
  }));
}

export function planCrl(input: CrlPlanInput): CrlDecision {
  const { signers, published, now } = input;
  if (signers === undefined || signers.length === 0) return { action: 'wait' };
  if (published && !published.owned) {
    return {
      action: 'report',
      reason: 'ForeignConfigMap',
      message:
        'ConfigMap istio-ca-crl in the CA namespace is not managed by alcazar (istiod may own it); no CRL is published',
    };
  }
  const entries = liveEntries(input.revoked, now);
  const key = entriesKey(entries);
  const sign = (reason: CrlSignReason): CrlDecision => {
    const nowSeconds = BigInt(Math.floor(now / 1000));
    const next = input.highestCrlNumber + 1n;
    return {
      action: 'sign',
      reason,
      crlNumber: next > nowSeconds ? next : nowSeconds,
      thisUpdate: now - crlBackdateMs(input.validityMs),
      nextUpdate: now + input.validityMs,
      entries,
    };
  };
  if (!published || published.crls.length === 0) return sign('Missing');
  if (!published.wellFormed) return sign('Edited');
  const bySigner = new Map(published.crls.map((crl) => [crl.signerFingerprint, crl]));
  if (bySigner.size !== published.crls.length || signers.some((s) => !bySigner.has(s)))
    return sign('SignersChanged');
  if (published.crls.length !== signers.length) return sign('SignersChanged');
  if (published.crls.some((crl) => crl.entriesKey !== key)) return sign('EntriesChanged');
  const refreshAt = Math.min(...published.crls.map(crlRefreshAt));
  // CRL times are whole seconds: a difference of a second or two is rounding, not a new setting.
  const validityChanged = published.crls.some(
    (crl) =>
      Math.abs(crl.nextUpdate - crl.thisUpdate - crlBackdateMs(input.validityMs) - input.validityMs) > 2_000,
  );
  if (refreshAt <= now || validityChanged) return sign('RefreshDue');
  // The next change comes from the clock: a refresh, or the earliest listed certificate expiring.
  const firstExpiry = Math.min(
    ...input.revoked.filter((e) => e.notAfter > now).map((e) => e.notAfter),
    Number.POSITIVE_INFINITY,
  );
  return { action: 'none', recheckAt: Math.min(refreshAt, firstExpiry) };
}
