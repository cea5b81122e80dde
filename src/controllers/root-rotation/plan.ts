// Root rotation without outages, decided purely. The phases, each persisted
// in istio-ca-secret before the next begins, so a restart or a new leader
// resumes where the last one stopped:
//
//   Idle        bundle [old]                 signer old
//   Publishing  bundle [old, new]            signer old   until every managed Secret and
//                                                         trust bundle carries [old, new]
//   Reissuing   bundle [old, new]            signer new   until no managed leaf signed by
//                                                         old remains
//   Idle        bundle [new]                 signer new
//
// Each hand-over also waits `dwellMs` after the progress condition holds
// first, for kubelets to copy the Secrets into pods.

export const ROTATION_PHASES = ['Idle', 'Publishing', 'Reissuing'] as const;
export type RotationPhase = (typeof ROTATION_PHASES)[number];

export interface RotationProgress {
  /** Managed workload Secrets and trust bundles that carry the current bundle, of how many. */
  bundleCurrent: number;
  bundleTotal: number;
  /** Managed workload Secrets whose leaf the active signer issued, of how many. */
  signedByActive: number;
  signedTotal: number;
}

export interface RotationInput {
  phase: RotationPhase;
  /** When the phase began (ms). */
  phaseSince: number;
  /** When the progress condition of the current phase was first seen to hold, if it holds. */
  progressHeldSince?: number;
  active: { notBefore: number; notAfter: number };
  /** Rotate when less than this share of the active root's lifetime remains. */
  threshold: number;
  dwellMs: number;
  /** An on-demand request that has not been handled yet. */
  requested: boolean;
  progress: RotationProgress;
  now: number;
}

export type RotationDecision =
  | { action: 'wait'; reason: string; recheckAt?: number }
  | { action: 'start'; trigger: 'Threshold' | 'Requested' }
  | { action: 'activate' }
  | { action: 'retire' };

/** The moment the threshold is crossed. */
export function rotationDueAt(active: { notBefore: number; notAfter: number }, threshold: number): number {
  return active.notAfter - (active.notAfter - active.notBefore) * threshold;
}

export function progressHolds(phase: RotationPhase, p: RotationProgress): boolean {
  if (phase === 'Publishing') return p.bundleCurrent >= p.bundleTotal;
  if (phase === 'Reissuing') return p.signedByActive >= p.signedTotal;
  return false;
}

export function planRotation(input: RotationInput): RotationDecision {
  const { phase, progress, now } = input;
  if (phase === 'Idle') {
    if (input.requested) return { action: 'start', trigger: 'Requested' };
    const dueAt = rotationDueAt(input.active, input.threshold);
    if (now >= dueAt) return { action: 'start', trigger: 'Threshold' };
    return { action: 'wait', reason: 'not due', recheckAt: dueAt };
  }
  if (!progressHolds(phase, progress)) {
    const what =
      phase === 'Publishing'
        ? `${progress.bundleCurrent}/${progress.bundleTotal} Secrets and trust bundles carry the new bundle`
        : `${progress.signedByActive}/${progress.signedTotal} workload certificates come from the new root`;
    return { action: 'wait', reason: what };
  }
  const readyAt = Math.max(input.progressHeldSince ?? now, input.phaseSince) + input.dwellMs;
  if (now < readyAt)
    return {
      action: 'wait',
      // The end is named so a reader of the status knows the wait is deliberate and how long it is.
      reason: `letting kubelets propagate the change until ${new Date(readyAt).toISOString()} (--root-rotation-propagation-delay)`,
      recheckAt: readyAt,
    };
  return phase === 'Publishing' ? { action: 'activate' } : { action: 'retire' };
}
