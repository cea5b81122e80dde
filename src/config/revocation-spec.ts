/**
 * The spec of a CertificateRevocation (crds/certificaterevocations.alcazar.dev.yaml). The CRD's
 * OpenAPI and CEL rules are the first gate; the controller checks again because a stored object may
 * predate a rule. revocation-crd-sync.test.ts keeps both sides in step.
 */
import { z } from 'zod';
import { CRL_REASONS, normalizeSerialHex } from '../pki/crl.js';
import { formatIssues } from './issues.js';

export const certificateRevocationResource = {
  group: 'alcazar.dev',
  version: 'v1alpha1',
  kind: 'CertificateRevocation',
  plural: 'certificaterevocations',
} as const;

export const crlReasonSchema = z.enum(CRL_REASONS);

const SERVICE_ACCOUNT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SERIAL_PLAIN = /^(0[xX])?[0-9a-fA-F]{1,40}$/;
const SERIAL_COLONS = /^([0-9a-fA-F]{2}:){0,19}[0-9a-fA-F]{2}$/;

const serialNumberSchema = z
  .string()
  .max(64, { error: 'must be at most 64 characters' })
  .refine((text) => SERIAL_PLAIN.test(text) || SERIAL_COLONS.test(text), {
    error: (issue) =>
      `'${String(issue.input)}' is not a serial number: give at most 20 bytes of hexadecimal, such as 4FA01C or 4f:a0:1c`,
  });

export const certificateRevocationSpecSchema = z
  .object({
    serviceAccountName: z
      .string()
      .min(1, { error: 'must not be empty' })
      .max(253, { error: 'must be at most 253 characters' })
      .regex(SERVICE_ACCOUNT_NAME, { error: 'must be a ServiceAccount name' })
      .optional(),
    serialNumbers: z.array(serialNumberSchema).max(100, { error: 'must list at most 100' }).optional(),
    reason: crlReasonSchema.default('unspecified'),
  })
  .refine((spec) => spec.serviceAccountName !== undefined || (spec.serialNumbers?.length ?? 0) > 0, {
    error: 'set serviceAccountName, serialNumbers, or both',
  });

export type CertificateRevocationSpec = z.output<typeof certificateRevocationSpecSchema>;

/** The spec resolved: serials canonical (see normalizeSerialHex) and without duplicates. */
export interface RevocationRequest {
  serviceAccountName?: string;
  serials: string[];
  reason: CertificateRevocationSpec['reason'];
}

export type RevocationParseResult = { ok: true; request: RevocationRequest } | { ok: false; message: string };

export function parseCertificateRevocationSpec(raw: unknown): RevocationParseResult {
  const result = certificateRevocationSpecSchema.safeParse(raw ?? {});
  if (!result.success) return { ok: false, message: formatIssues(result.error.issues, 'spec') };
  const serials = [...new Set((result.data.serialNumbers ?? []).map((s) => normalizeSerialHex(s)))];
  if (serials.includes(undefined)) {
    return { ok: false, message: 'spec.serialNumbers: a serial number must not be zero' };
  }
  return {
    ok: true,
    request: {
      ...(result.data.serviceAccountName !== undefined && {
        serviceAccountName: result.data.serviceAccountName,
      }),
      serials: serials as string[],
      reason: result.data.reason,
    },
  };
}
