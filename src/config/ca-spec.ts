/**
 * The spec of the CertificateAuthority resource (crds/certificateauthorities.alcazar.dev.yaml) and
 * the resolved configuration the controllers run with.
 *
 * The CRD's OpenAPI defaults and CEL rules are the first gate; this schema repeats them because the
 * stored object may predate a rule, the CRD may have been applied by hand without them, or there may
 * be no CertificateAuthority at all (then the built-in defaults apply). crd-sync.test.ts checks that
 * both sides default the same way.
 */
import { z } from 'zod';
import { DEFAULT_KEY_ALGORITHM, KEY_ALGORITHM_NAMES } from '../pki/key-algorithms.js';
import { formatDuration, tryParseDuration } from './duration.js';
import { formatIssues } from './issues.js';

export const keyAlgorithmSchema = z.enum(KEY_ALGORITHM_NAMES);
export type KeyAlgorithm = z.infer<typeof keyAlgorithmSchema>;

export const rootCaModeSchema = z.enum(['SelfSigned', 'PluggedIn']);
export type RootCaMode = z.infer<typeof rootCaModeSchema>;

/** Milliseconds of a duration string, or undefined when it does not parse (its own field reports that). */
function durationMs(text: string): number | undefined {
  const parsed = tryParseDuration(text);
  return parsed.ok ? parsed.ms : undefined;
}

function durationString(lowerBound: 'positive' | 'nonNegative') {
  return z
    .string()
    .max(64, { error: 'must be at most 64 characters' })
    .superRefine((text, ctx) => {
      const parsed = tryParseDuration(text);
      if (!parsed.ok) {
        ctx.addIssue({ code: 'custom', message: parsed.message });
      } else if (lowerBound === 'positive' && parsed.ms <= 0) {
        ctx.addIssue({ code: 'custom', message: `must be longer than zero, got '${text}'` });
      } else if (parsed.ms < 0) {
        ctx.addIssue({ code: 'custom', message: `must not be negative, got '${text}'` });
      }
    });
}

/**
 * A certificate lifetime below a second cannot be issued: notBefore and notAfter are whole seconds
 * in X.509, so '500ms' failed now and then ("notAfter must be after notBefore").
 */
const atLeastOneSecond = (text: string) => (durationMs(text) ?? 1_000) >= 1_000;

/** A share of a lifetime: strictly between 0 and 1. */
const lifetimeShare = z
  .number({ error: 'must be a number' })
  .gt(0, { error: 'must be greater than 0 and less than 1' })
  .lt(1, { error: 'must be greater than 0 and less than 1' });

/** Whether a value would pass as spec.trustDomain (what the status may show of a spec otherwise invalid). */
export const isValidTrustDomain = (value: unknown): value is string =>
  trustDomainSchema.safeParse(value).success;

const trustDomainSchema = z
  .string()
  .min(1, { error: 'must not be empty' })
  .max(255, { error: 'must be at most 255 characters' })
  .regex(/^[a-z0-9._-]+$/, {
    error: "must contain only lowercase letters, digits, '.', '-' and '_'",
  });

const namespaceNameSchema = z
  .string()
  .max(63, { error: 'must be at most 63 characters' })
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, {
    error:
      "must be a namespace name: lowercase letters, digits and '-', starting and ending with a letter or digit",
  });

/** A DNS name as it may stand in a certificate: lowercase labels, optionally `*.` first. */
const DNS_NAME_PATTERN = /^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

const clusterDomainSchema = z
  .string()
  .min(1, { error: 'must not be empty' })
  .max(253, { error: 'must be at most 253 characters' })
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/, {
    error: "must be a DNS domain such as 'cluster.local': lowercase labels separated by '.'",
  });

const dnsNamePatternSchema = z
  .string()
  .max(253, { error: 'must be at most 253 characters' })
  .regex(DNS_NAME_PATTERN, {
    error: "must be a lowercase DNS name such as 'api.example.com', or '*.' and one, such as '*.example.com'",
  });

const labelSelectorRequirementSchema = z
  .object({
    key: z
      .string()
      .min(1, { error: 'must not be empty' })
      .max(317, { error: 'must be at most 317 characters' }),
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: z
      .array(z.string().max(63, { error: 'must be at most 63 characters' }))
      .max(100)
      .optional(),
  })
  .superRefine((requirement, ctx) => {
    const count = requirement.values?.length ?? 0;
    const needsValues = requirement.operator === 'In' || requirement.operator === 'NotIn';
    if (needsValues && count === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: `must not be empty for ${requirement.operator}`,
      });
    if (!needsValues && count > 0)
      ctx.addIssue({
        code: 'custom',
        path: ['values'],
        message: `must be empty for ${requirement.operator}`,
      });
  });

const labelSelectorSchema = z.object({
  matchLabels: z
    .record(z.string(), z.string().max(63, { error: 'must be at most 63 characters' }))
    .optional(),
  matchExpressions: z.array(labelSelectorRequirementSchema).max(100).optional(),
});

/** One admin grant of DNS names beyond a namespace's own service domain. */
const dnsNameAllowRuleSchema = z
  .object({
    namespaces: z
      .array(namespaceNameSchema)
      .max(1000)
      .default(() => []),
    namespaceSelector: labelSelectorSchema.optional(),
    patterns: z.array(dnsNamePatternSchema).min(1, { error: 'must list at least one name' }).max(100),
  })
  .superRefine((rule, ctx) => {
    if (rule.namespaces.length === 0 && rule.namespaceSelector === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['namespaces'],
        message: 'a rule must select namespaces: list them in namespaces, or give a namespaceSelector',
      });
    }
  });

const dnsNamesSchema = z.object({
  allow: z
    .array(dnsNameAllowRuleSchema)
    .max(100)
    .default(() => []),
});

const workloadCertificatesSchema = z
  .object({
    ttl: durationString('positive')
      .default('2160h')
      .refine(atLeastOneSecond, { error: 'must be at least 1s' }),
    keyAlgorithm: keyAlgorithmSchema.default(DEFAULT_KEY_ALGORITHM),
    gracePeriodRatio: lifetimeShare.default(0.5),
    minGracePeriod: durationString('nonNegative').default('10m'),
    clockSkewAllowance: durationString('nonNegative').default('5m'),
    dnsNames: dnsNamesSchema.prefault({}),
  })
  .superRefine((workload, ctx) => {
    const ttlMs = durationMs(workload.ttl);
    const minGraceMs = durationMs(workload.minGracePeriod);
    if (ttlMs !== undefined && minGraceMs !== undefined && minGraceMs >= ttlMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['minGracePeriod'],
        message: `must be shorter than ttl (${workload.ttl}), got '${workload.minGracePeriod}'`,
      });
    }
  });

const selfSignedRootSchema = z.object({
  ttl: durationString('positive').default('87600h'),
  keyAlgorithm: keyAlgorithmSchema.default(DEFAULT_KEY_ALGORITHM),
  rotationThreshold: lifetimeShare.default(0.2),
});

const rootCaSchema = z.object({
  mode: rootCaModeSchema.default('SelfSigned'),
  selfSigned: selfSignedRootSchema.prefault({}),
});

const namespacesSchema = z.object({
  managedByDefault: z.boolean({ error: 'must be true or false' }).default(true),
  alwaysManaged: z
    .array(namespaceNameSchema)
    .default(() => [])
    .superRefine((names, ctx) => {
      const seen = new Set<string>();
      names.forEach((name, index) => {
        if (seen.has(name)) ctx.addIssue({ code: 'custom', path: [index], message: `lists '${name}' twice` });
        seen.add(name);
      });
    }),
});

/** Istio's CSR API (src/csr/): lifetimes of certificates issued to agents. */
const csrSchema = z
  .object({
    defaultValidity: durationString('positive')
      .default('24h')
      .refine(atLeastOneSecond, { error: 'must be at least 1s' }),
    maxValidity: durationString('positive')
      .default('2160h')
      .refine(atLeastOneSecond, { error: 'must be at least 1s' }),
  })
  .superRefine((csr, ctx) => {
    const defaultMs = durationMs(csr.defaultValidity);
    const maxMs = durationMs(csr.maxValidity);
    if (defaultMs !== undefined && maxMs !== undefined && defaultMs > maxMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['defaultValidity'],
        message: `must not be longer than maxValidity (${csr.maxValidity}), got '${csr.defaultValidity}'`,
      });
    }
  });
const revocationSchema = z.object({
  crlValidity: durationString('positive')
    .default('24h')
    .refine((text) => (durationMs(text) ?? 60_000) >= 60_000, { error: 'must be at least 1m' }),
});

/**
 * The spec as the apiserver stores it once defaulted: same field names, durations still strings.
 * Unknown fields are dropped, as the apiserver prunes them.
 */
export const certificateAuthoritySpecSchema = z
  .object({
    trustDomain: trustDomainSchema.default('cluster.local'),
    clusterDomain: clusterDomainSchema.default('cluster.local'),
    workloadCertificates: workloadCertificatesSchema.prefault({}),
    rootCA: rootCaSchema.prefault({}),
    namespaces: namespacesSchema.prefault({}),
    csr: csrSchema.prefault({}),
    revocation: revocationSchema.prefault({}),
  })
  .superRefine((spec, ctx) => {
    if (spec.rootCA.mode !== 'SelfSigned') return;
    const workloadTtlMs = durationMs(spec.workloadCertificates.ttl);
    const rootTtlMs = durationMs(spec.rootCA.selfSigned.ttl);
    if (workloadTtlMs !== undefined && rootTtlMs !== undefined && workloadTtlMs >= rootTtlMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['workloadCertificates', 'ttl'],
        message: `must be shorter than rootCA.selfSigned.ttl (${spec.rootCA.selfSigned.ttl}), got '${spec.workloadCertificates.ttl}'`,
      });
    }
  });

/** The defaulted spec, field for field as in the CRD. */
export type CertificateAuthoritySpec = z.output<typeof certificateAuthoritySpecSchema>;

/** Only called on a spec that passed validation, so every duration parses. */
function msOf(text: string): number {
  const ms = durationMs(text);
  if (ms === undefined)
    throw new Error(`unreachable: duration '${text}' passed validation but does not parse`);
  return ms;
}

function resolveCaConfig(spec: CertificateAuthoritySpec) {
  const { workloadCertificates: workload, rootCA, namespaces, csr, revocation } = spec;
  return {
    trustDomain: spec.trustDomain,
    clusterDomain: spec.clusterDomain,
    workload: {
      ttlMs: msOf(workload.ttl),
      keyAlgorithm: workload.keyAlgorithm,
      gracePeriodRatio: workload.gracePeriodRatio,
      minGracePeriodMs: msOf(workload.minGracePeriod),
      clockSkewMs: msOf(workload.clockSkewAllowance),
      dnsNames: { allow: structuredClone(workload.dnsNames.allow) },
    },
    root: {
      mode: rootCA.mode,
      selfSigned: {
        ttlMs: msOf(rootCA.selfSigned.ttl),
        keyAlgorithm: rootCA.selfSigned.keyAlgorithm,
        rotationThreshold: rootCA.selfSigned.rotationThreshold,
      },
    },
    namespaces: {
      managedByDefault: namespaces.managedByDefault,
      alwaysManaged: [...namespaces.alwaysManaged],
    },
    csr: {
      defaultValidityMs: msOf(csr.defaultValidity),
      maxValidityMs: msOf(csr.maxValidity),
    },
    revocation: { crlValidityMs: msOf(revocation.crlValidity) },
  };
}

/**
 * The apiserver prunes nulls from fields that are not nullable and then applies the default, so
 * `ttl: null` means "default ttl". Do the same here.
 */
function withoutNulls(value: unknown): unknown {
  if (value === null) return undefined;
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, field]) => field !== null)
        .map(([key, field]) => [key, withoutNulls(field)]),
    );
  }
  return value;
}

/**
 * The deepest field of the spec is 4 levels down. A CRD applied without its schema stores unknown
 * fields unpruned, and parsing (recursively) a spec nested thousands of levels deep would overflow
 * the stack instead of being reported.
 */
export const MAX_SPEC_DEPTH = 32;

/** Whether arrays/objects nest more than `limit` levels; iterative, so any depth is safe to measure. */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (typeof next.value !== 'object' || next.value === null) continue;
    if (next.depth >= limit) return true;
    for (const child of Object.values(next.value)) pending.push({ value: child, depth: next.depth + 1 });
  }
  return false;
}

/**
 * A string that changes whenever the parse result can, for "did the spec change?" checks: its JSON,
 * or one marker for every spec too deep to serialise (JSON.stringify recurses too; all such specs
 * parse to the same error).
 */
export function specFingerprint(raw: unknown): string {
  return nestedDeeperThan(raw, MAX_SPEC_DEPTH) ? 'too-deep' : String(JSON.stringify(raw));
}

/** From the raw `spec` of a CertificateAuthority (or undefined when there is none) to CaConfig. */
export const caConfigSchema = z.preprocess(
  withoutNulls,
  certificateAuthoritySpecSchema.prefault({}).transform(resolveCaConfig),
);

/** What the controllers run with: the spec resolved, durations in milliseconds. */
export type CaConfig = z.output<typeof caConfigSchema>;

export type CaConfigParseResult = { ok: true; config: CaConfig } | { ok: false; message: string };

/**
 * Validates the `spec` of the CertificateAuthority. A missing CertificateAuthority (undefined) or an
 * empty spec yields the built-in defaults. On failure the message names every offending field,
 * e.g. "spec.workloadCertificates.ttl: must be longer than zero, got '0s'".
 */
export function parseCertificateAuthoritySpec(raw: unknown): CaConfigParseResult {
  if (nestedDeeperThan(raw, MAX_SPEC_DEPTH)) {
    return { ok: false, message: `spec: nested more than ${MAX_SPEC_DEPTH} levels deep` };
  }
  const result = caConfigSchema.safeParse(raw);
  if (result.success) return { ok: true, config: result.data };
  return { ok: false, message: formatIssues(result.error.issues, 'spec') };
}

/** The configuration used when no CertificateAuthority exists. A fresh object on every call. */
export function defaultCaConfig(): CaConfig {
  const result = parseCertificateAuthoritySpec(undefined);
  if (!result.ok)
    throw new Error(`the built-in CertificateAuthority defaults are invalid: ${result.message}`);
  return result.config;
}

/** How far NotBefore is backdated: the skew allowance, but at most a tenth of a short lifetime. */
export function backdateMs(ttlMs: number, clockSkewMs: number): number {
  return Math.min(clockSkewMs, Math.floor(ttlMs / 10));
}

/** Values in effect that differ from what the spec says, in words for the ConfigValid condition. */
export function configAdjustments(config: CaConfig): string[] {
  const { ttlMs, clockSkewMs } = config.workload;
  const backdate = backdateMs(ttlMs, clockSkewMs);
  if (backdate === clockSkewMs) return [];
  return [
    `clockSkewAllowance ${formatDuration(clockSkewMs)} is more than a tenth of ttl ${formatDuration(ttlMs)}: ` +
      `NotBefore is backdated by ${formatDuration(backdate)}`,
  ];
}
