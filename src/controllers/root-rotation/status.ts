import type { RotationPhase } from './plan.js';

/** The rotation as the CertificateAuthority status shows it. */
export interface RotationStatus {
  phase: RotationPhase;
  startedAt?: string;
  phaseSince?: string;
  message: string;
}
