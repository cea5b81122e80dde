/**
 * The CertificateRevocation CRD and revocation-spec.ts describe the same spec twice; these tests
 * fail when the two drift apart.
 */
import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import {
  certificateRevocationResource,
  certificateRevocationSpecSchema,
  crlReasonSchema,
  parseCertificateRevocationSpec,
} from './revocation-spec.js';

interface Schema {
  type?: string;
  default?: unknown;
  enum?: unknown[];
  pattern?: string;
  maxLength?: number;
  maxItems?: number;
  properties?: Record<string, Schema>;
  items?: Schema;
  'x-kubernetes-validations'?: { rule: string; message?: string; messageExpression?: string }[];
}

const crd = load(
  readFileSync(new URL('../../crds/certificaterevocations.alcazar.dev.yaml', import.meta.url), 'utf8'),
) as {
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string };
    versions: { name: string; schema: { openAPIV3Schema: Schema } }[];
  };
};
const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
const serialItem = spec.properties!.serialNumbers!.items!;

/** The CEL matches() patterns of the serial item rule, as JavaScript regular expressions. */
function serialPatterns(): RegExp[] {
  const rule = serialItem['x-kubernetes-validations']![0]!.rule;
  return [...rule.matchAll(/self\.matches\('([^']+)'\)/g)].map((m) => new RegExp(m[1]!));
}

describe('the CertificateRevocation CRD', () => {
  it('names the resource the code looks up', () => {
    expect(crd.spec.group).toBe(certificateRevocationResource.group);
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names.kind).toBe(certificateRevocationResource.kind);
    expect(crd.spec.names.plural).toBe(certificateRevocationResource.plural);
    expect(crd.spec.versions.map((v) => v.name)).toEqual([certificateRevocationResource.version]);
  });

  it('offers the same reasons, with the same default', () => {
    expect(spec.properties!.reason!.enum).toEqual(crlReasonSchema.options);
    expect(spec.properties!.reason!.default).toBe(
      certificateRevocationSpecSchema.parse({ serialNumbers: ['01'] }).reason,
    );
  });

  it('agrees with zod on which serial numbers are well-formed', () => {
    const patterns = serialPatterns();
    expect(patterns).toHaveLength(2);
    for (const sample of [
      '4FA01C',
      '0x4fa01c',
      '4f:a0:1c',
      'ab',
      'a',
      'f'.repeat(40),
      'f'.repeat(41),
      'xyz',
      '4f:a0:1',
      '',
      ' 4f',
      '0X01',
    ]) {
      const crdAccepts = sample.length <= serialItem.maxLength! && patterns.some((p) => p.test(sample));
      const zodAccepts = certificateRevocationSpecSchema.safeParse({ serialNumbers: [sample] }).success;
      expect(zodAccepts, JSON.stringify(sample)).toBe(crdAccepts);
    }
  });

  it('agrees with zod on ServiceAccount names', () => {
    const schema = spec.properties!.serviceAccountName!;
    for (const sample of ['default', 'a.b-c', 'A', '-a', 'a_b', 'x'.repeat(253), 'x'.repeat(254)]) {
      const crdAccepts = new RegExp(schema.pattern!).test(sample) && sample.length <= schema.maxLength!;
      const zodAccepts = certificateRevocationSpecSchema.safeParse({ serviceAccountName: sample }).success;
      expect(zodAccepts, sample).toBe(crdAccepts);
    }
  });

  it('requires a target on both sides and says so with a messageExpression for serials', () => {
    expect(spec['x-kubernetes-validations']!.map((v) => v.message)).toContain(
      'set serviceAccountName, serialNumbers, or both',
    );
    expect(serialItem['x-kubernetes-validations']![0]!.messageExpression).toContain('is not a serial number');
    expect(parseCertificateRevocationSpec({})).toEqual({
      ok: false,
      message: 'spec: set serviceAccountName, serialNumbers, or both',
    });
    expect(spec.properties!.serialNumbers!.maxItems).toBe(100);
  });

  it('reads serials the way openssl prints them, without duplicates', () => {
    expect(
      parseCertificateRevocationSpec({ serialNumbers: ['04:FA', '0x4fa', '4FA'], reason: 'keyCompromise' }),
    ).toEqual({ ok: true, request: { serials: ['04fa'], reason: 'keyCompromise' } });
    expect(parseCertificateRevocationSpec({ serialNumbers: ['00'] })).toMatchObject({ ok: false });
  });
});
