// The running configuration from the CertificateAuthority's spec, decided
// purely: a valid spec takes effect; an invalid one is reported and the last
// valid configuration stays.
import { type CaConfig, parseCertificateAuthoritySpec, specFingerprint } from '../../config/ca-spec.js';

export type ConfigurationDecision =
  | { action: 'none' }
  | { action: 'apply'; config: CaConfig; changed: boolean }
  | { action: 'reject'; message: string };

export function planConfiguration(
  spec: unknown,
  /** specFingerprint of the spec last decided. */
  lastSpecJson: string,
  current: CaConfig,
): ConfigurationDecision {
  if (specFingerprint(spec) === lastSpecJson) return { action: 'none' };
  const result = parseCertificateAuthoritySpec(spec);
  if (!result.ok) return { action: 'reject', message: result.message };
  return {
    action: 'apply',
    config: result.config,
    changed: JSON.stringify(current) !== JSON.stringify(result.config),
  };
}

/**
 * A JSON merge patch that turns `observed` into `desired`: fields `desired` no longer has are
 * sent as null, so an optional field that went away (rotation.phaseSince after Idle) is removed.
 */
export function mergePatchFor(observed: unknown, desired: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(desired) || !isObject(observed)) return desired;
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(observed)) if (desired[key] === undefined) patch[key] = null;
  for (const [key, value] of Object.entries(desired))
    if (value !== undefined) patch[key] = mergePatchFor(observed[key], value);
  return patch;
}
