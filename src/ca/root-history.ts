// Root continuity (Istio #17739): which roots alcazar has signed with, kept
// in a ConfigMap in the CA namespace, and what to do when the CA Secret is
// gone while that record says a root was in use. Decided purely here; the
// authority controller reads and writes the record (controllers/authority/continuity.ts).
import { createHash } from 'node:crypto';
import { decodeCertificatesPem, encodeCertificatesPem } from '../pki/pem.js';
import type { CaMode } from './authority.js';

export const ROOT_HISTORY_CONFIGMAP = 'alcazar-root-history';
/** Set on the CertificateAuthority to the missing root's fingerprint (or `$(date +%s)`) to accept a new root. */
export const ACCEPT_NEW_ROOT_ANNOTATION = 'alcazar.dev/accept-new-root';
/** Roots remembered; older ones are forgotten first. */
export const MAX_REMEMBERED_ROOTS = 8;

export interface RootHistory {
  /** Fingerprints (SHA-256 of the DER, lowercase hex) of every root used, oldest first. */
  fingerprints: string[];
  /** The certificates of those roots, where known (public: roots are published in every trust bundle). */
  roots: Buffer[];
  /** The root that signed last. */
  active?: string;
  mode?: CaMode;
  /** The last accept-new-root request acted on. */
  acceptedRequest?: string;
}

const fingerprintOf = (der: Buffer) => createHash('sha256').update(der).digest('hex');

/** Reads the ConfigMap's data; anything unreadable counts as not recorded (never throws). */
export function parseRootHistory(data: Record<string, string> | undefined): RootHistory {
  const fingerprints = (data?.fingerprints ?? '')
    .split('\n')
    .map((line) => line.trim().toLowerCase())
    .filter((line) => /^[0-9a-f]{64}$/.test(line));
  let roots: Buffer[] = [];
  try {
    roots = data?.['roots.pem'] ? decodeCertificatesPem(data['roots.pem']) : [];
  } catch {
    roots = [];
  }
  const mode = data?.mode === 'SelfSigned' || data?.mode === 'PluggedIn' ? data.mode : undefined;
  return {
    fingerprints,
    roots,
    ...(data?.active && /^[0-9a-f]{64}$/.test(data.active) ? { active: data.active } : {}),
    ...(mode ? { mode } : {}),
    ...(data?.['accepted-request'] ? { acceptedRequest: data['accepted-request'] } : {}),
  };
}

export function encodeRootHistory(history: RootHistory): Record<string, string> {
  return {
    fingerprints: history.fingerprints.map((f) => `${f}\n`).join(''),
    'roots.pem': history.roots.length > 0 ? encodeCertificatesPem(history.roots) : '',
    ...(history.active ? { active: history.active } : {}),
    ...(history.mode ? { mode: history.mode } : {}),
    ...(history.acceptedRequest ? { 'accepted-request': history.acceptedRequest } : {}),
  };
}

export interface LoadedRoots {
  mode: CaMode;
  /** The bundle's roots, DER. */
  roots: Buffer[];
  activeFingerprint: string;
}

/** The record after a CA was loaded: every root of its bundle remembered. Undefined when nothing changed. */
export function historyAfterLoad(
  history: RootHistory,
  loaded: LoadedRoots,
  acceptedRequest?: string,
): RootHistory | undefined {
  const byFingerprint = new Map<string, Buffer | undefined>();
  for (const f of history.fingerprints) byFingerprint.set(f, undefined);
  for (const der of history.roots) byFingerprint.set(fingerprintOf(der), der);
  for (const der of loaded.roots) {
    const f = fingerprintOf(der);
    byFingerprint.delete(f); // re-inserted: most recent last
    byFingerprint.set(f, der);
  }
  const entries = [...byFingerprint].slice(-MAX_REMEMBERED_ROOTS);
  const next: RootHistory = {
    fingerprints: entries.map(([f]) => f),
    roots: entries.flatMap(([, der]) => (der ? [der] : [])),
    active: loaded.activeFingerprint,
    mode: loaded.mode,
    ...((acceptedRequest ?? history.acceptedRequest)
      ? { acceptedRequest: acceptedRequest ?? history.acceptedRequest }
      : {}),
  };
  const same =
    next.fingerprints.join() === history.fingerprints.join() &&
    next.roots.length === history.roots.length &&
    next.active === history.active &&
    next.mode === history.mode &&
    next.acceptedRequest === history.acceptedRequest;
  return same ? undefined : next;
}

export type MissingRootDecision =
  /** Nothing was ever recorded: a fresh install (self-signed: generate a root). */
  | { action: 'create' }
  /** A root was in use and is gone: do not sign. */
  | { action: 'refuse'; message: string; missingFingerprint: string }
  /** The operator accepted a new root: generate one, trusting the old roots next to it. */
  | { action: 'accept'; request: string; previousRoots: Buffer[]; previousActive?: Buffer };

export interface MissingRootInput {
  mode: CaMode;
  /** e.g. istio-system/istio-ca-secret */
  source: string;
  history: RootHistory;
  /** Roots the CertificateAuthority status lists for this CA namespace. */
  statusFingerprints: readonly string[];
  /** Old root certificates found elsewhere (published trust bundles), for the overlap. */
  publishedRoots?: readonly Buffer[];
  /** The CertificateAuthority's accept-new-root annotation. */
  request?: string;
  /** When this process first found the root missing (ms). */
  missingSince: number;
}

/** The accept request names the missing root: its fingerprint (16+ hex digits) or a time after the loss was seen. */
export function acceptsNewRoot(request: string, missingFingerprint: string, missingSince: number): boolean {
  const value = request.trim().toLowerCase();
  if (/^[0-9a-f]{16,64}$/.test(value)) return missingFingerprint.startsWith(value);
  if (/^\d{9,11}$/.test(value)) return Number(value) * 1000 >= Math.floor(missingSince / 1000) * 1000;
  return false;
}

export function decideMissingRoot(input: MissingRootInput): MissingRootDecision {
  const { history } = input;
  const known = [...new Set([...history.fingerprints, ...input.statusFingerprints])];
  if (known.length === 0) return { action: 'create' };
  const missing =
    history.active ?? history.fingerprints.at(-1) ?? input.statusFingerprints.at(-1) ?? known[0]!;
  const short = missing.slice(0, 16);
  const recordedIn = [
    ...(history.fingerprints.length > 0 ? [ROOT_HISTORY_CONFIGMAP] : []),
    ...(input.statusFingerprints.length > 0 ? ['the CertificateAuthority status'] : []),
  ].join(' and ');
  const restore = `restore ${input.source} from a backup`;
  if (input.mode === 'PluggedIn') {
    return {
      action: 'refuse',
      missingFingerprint: missing,
      message:
        `${input.source} is missing, but alcazar has signed with root ${short}… (recorded in ${recordedIn}); ` +
        `${restore} (a new plugged-in CA must list the old root in root-cert.pem next to its own)`,
    };
  }
  const request = input.request;
  if (
    request !== undefined &&
    request !== history.acceptedRequest &&
    acceptsNewRoot(request, missing, input.missingSince)
  ) {
    // Only the root that signed last stays trusted next to the new one: roots retired earlier
    // (also remembered) must not come back into the bundle.
    const previousActive = [...history.roots, ...(input.publishedRoots ?? [])].find(
      (der) => fingerprintOf(der) === missing,
    );
    return {
      action: 'accept',
      request,
      previousRoots: previousActive ? [previousActive] : [],
      ...(previousActive ? { previousActive } : {}),
    };
  }
  return {
    action: 'refuse',
    missingFingerprint: missing,
    message:
      `${input.source} is missing, but alcazar has signed with root ${short}… (recorded in ${recordedIn}); ` +
      `a new root would break trust with every workload. ${restore[0]!.toUpperCase()}${restore.slice(1)} ` +
      `(alcazar resumes), or accept a new root: kubectl annotate certificateauthority default ` +
      `${ACCEPT_NEW_ROOT_ANNOTATION}=${missing} --overwrite`,
  };
}
