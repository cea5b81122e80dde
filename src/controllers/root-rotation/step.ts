// The contents of istio-ca-secret after one rotation step, computed purely
// from its contents before (PEM text per data key, and its annotations).
import {
  HANDLED_REQUEST_ANNOTATION,
  PHASE_ANNOTATION,
  PHASE_SINCE_ANNOTATION,
  SELF_SIGNED_SECRET,
  STARTED_ANNOTATION,
} from '../../model/names.js';
import { decodeCertificatesPem, encodeCertificatesPem } from '../../pki/pem.js';
import type { RotationDecision } from './plan.js';

export const NEXT_CERT = 'next-ca-cert.pem';
export const NEXT_KEY = 'next-ca-key.pem';
export const PREVIOUS_CERT = 'previous-ca-cert.pem';
/** Kept while Reissuing so the retiring root can still sign its CRL (src/ca/crl-signers.ts). */
export const PREVIOUS_KEY = 'previous-ca-key.pem';

export interface CaSecretContents {
  data: Record<string, string>;
  annotations: Record<string, string>;
}

export interface StepInput {
  decision: Exclude<RotationDecision, { action: 'wait' }>;
  before: CaSecretContents;
  /** For 'start': the new root (ca-cert.pem, ca-key.pem). */
  nextRoot?: Record<string, string>;
  /** The on-demand request being handled, if any. */
  request?: string;
  now: number;
}

export function rotationStep(input: StepInput): CaSecretContents & { message: string } {
  const { decision } = input;
  const data = { ...input.before.data };
  const annotations = { ...input.before.annotations };
  const stamp = new Date(input.now).toISOString();
  const bundle = decodeCertificatesPem(data['root-cert.pem'] ?? data['ca-cert.pem']!);
  let message: string;
  switch (decision.action) {
    case 'start': {
      const next = input.nextRoot!;
      const [nextDer] = decodeCertificatesPem(next['ca-cert.pem']!);
      data[NEXT_CERT] = next['ca-cert.pem']!;
      data[NEXT_KEY] = next['ca-key.pem']!;
      data['root-cert.pem'] = encodeCertificatesPem([...bundle, nextDer!]);
      annotations[PHASE_ANNOTATION] = 'Publishing';
      annotations[STARTED_ANNOTATION] = stamp;
      annotations[PHASE_SINCE_ANNOTATION] = stamp;
      if (decision.trigger === 'Requested' && input.request !== undefined)
        annotations[HANDLED_REQUEST_ANNOTATION] = input.request;
      message = `root rotation started (${decision.trigger}): publishing the new root next to the old one`;
      break;
    }
    case 'activate': {
      if (!data[NEXT_CERT] || !data[NEXT_KEY])
        throw new Error(`${SELF_SIGNED_SECRET} is in Publishing but holds no next root`);
      data[PREVIOUS_CERT] = data['ca-cert.pem']!;
      data[PREVIOUS_KEY] = data['ca-key.pem']!;
      data['ca-cert.pem'] = data[NEXT_CERT];
      data['ca-key.pem'] = data[NEXT_KEY];
      delete data[NEXT_CERT];
      delete data[NEXT_KEY];
      annotations[PHASE_ANNOTATION] = 'Reissuing';
      annotations[PHASE_SINCE_ANNOTATION] = stamp;
      message = 'new root active: reissuing workload certificates; the old root stays trusted';
      break;
    }
    case 'retire': {
      const active = decodeCertificatesPem(data['ca-cert.pem']!)[0]!;
      const previous = data[PREVIOUS_CERT] ? decodeCertificatesPem(data[PREVIOUS_CERT])[0] : undefined;
      data['root-cert.pem'] = encodeCertificatesPem(
        bundle.filter((der) => der.equals(active) || (previous !== undefined && !der.equals(previous))),
      );
      delete data[PREVIOUS_CERT];
      delete data[PREVIOUS_KEY];
      delete annotations[PHASE_ANNOTATION];
      delete annotations[STARTED_ANNOTATION];
      delete annotations[PHASE_SINCE_ANNOTATION];
      message = 'root rotation finished: the old root is no longer trusted';
      break;
    }
  }
  return { data, annotations, message };
}
