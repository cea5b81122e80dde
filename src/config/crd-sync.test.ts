/**
 * The CRD (crds/) and ca-spec.ts describe the same spec twice: once for the apiserver, once for the
 * controller. These tests fail when the two drift apart.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadAll } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { DEFAULT_KEY_ALGORITHM, KEY_ALGORITHM_NAMES } from '../pki/key-algorithms.js';
import { CERTIFICATE_AUTHORITY_NAME, certificateAuthorityResource } from './ca-resource.js';
import { certificateAuthoritySpecSchema, keyAlgorithmSchema, rootCaModeSchema } from './ca-spec.js';
import { tryParseDuration } from './duration.js';

interface OpenApiSchema {
  type?: string;
  format?: string;
  default?: unknown;
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  properties?: Record<string, OpenApiSchema>;
  items?: OpenApiSchema;
  required?: string[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-validations'?: { rule: string; message?: string }[];
}

interface Crd {
  kind: string;
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; singular: string; shortNames?: string[] };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: OpenApiSchema };
    }[];
  };
}

const crdsDir = new URL('../../crds/', import.meta.url);
const crdFile = new URL('certificateauthorities.alcazar.dev.yaml', crdsDir);
const crd = loadAll(readFileSync(crdFile, 'utf8'))[0] as Crd;
const version = crd.spec.versions[0]!;
const rootSchema = version.schema.openAPIV3Schema;
const specSchema = rootSchema.properties!.spec!;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function child(schema: OpenApiSchema, path: string): OpenApiSchema {
  let node = schema;
  for (const key of path.split('.')) {
    const next = key === '[]' ? node.items : node.properties?.[key];
    if (next === undefined) throw new Error(`the CRD has no ${path}`);
    node = next;
  }
  return node;
}

/** The apiserver's structural defaulting: fill absent properties, then descend, defaults included. */
function applyCrdDefaults(schema: OpenApiSchema, value: unknown): unknown {
  if (isRecord(value) && schema.properties) {
    const result: Record<string, unknown> = { ...value };
    for (const [key, property] of Object.entries(schema.properties)) {
      if (result[key] === undefined && property.default !== undefined)
        result[key] = structuredClone(property.default);
      if (result[key] !== undefined) result[key] = applyCrdDefaults(property, result[key]);
    }
    return result;
  }
  if (Array.isArray(value) && schema.items) {
    const items = schema.items;
    return value.map((item) => applyCrdDefaults(items, item));
  }
  return value;
}

/** The subset of OpenAPI checks our schema uses, enough to judge the CRD's own defaults. */
function openApiProblems(schema: OpenApiSchema, value: unknown, path: string): string[] {
  const typeOf = Array.isArray(value) ? 'array' : isRecord(value) ? 'object' : typeof value;
  const expected = schema.type === 'integer' ? 'number' : schema.type;
  if (expected !== typeOf) return [`${path}: is ${typeOf}, the schema says ${schema.type}`];
  const problems: string[] = [];
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${path}: not in enum`);
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern).test(value))
      problems.push(`${path}: does not match pattern`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) problems.push(`${path}: too long`);
    if (schema.minLength !== undefined && value.length < schema.minLength)
      problems.push(`${path}: too short`);
  }
  if (typeof value === 'number') {
    if (
      schema.minimum !== undefined &&
      (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum)
    )
      problems.push(`${path}: below minimum`);
    if (
      schema.maximum !== undefined &&
      (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum)
    )
      problems.push(`${path}: above maximum`);
  }
  if (isRecord(value)) {
    for (const [key, field] of Object.entries(value)) {
      const property = schema.properties?.[key];
      if (property === undefined) problems.push(`${path}.${key}: not in the schema`);
      else problems.push(...openApiProblems(property, field, `${path}.${key}`));
    }
  }
  if (Array.isArray(value) && schema.items) {
    const items = schema.items;
    value.forEach((item, index) => {
      problems.push(...openApiProblems(items, item, `${path}[${index}]`));
    });
  }
  return problems;
}

function walk(schema: OpenApiSchema, path: string, visit: (node: OpenApiSchema, path: string) => void): void {
  visit(schema, path);
  for (const [key, property] of Object.entries(schema.properties ?? {}))
    walk(property, `${path}.${key}`, visit);
  if (schema.items) walk(schema.items, `${path}[]`, visit);
}

/** Whether zod accepts `value` at `field` of an otherwise empty spec. */
function zodAccepts(field: string, value: unknown): boolean {
  const keys = field.split('.');
  const spec: Record<string, unknown> = {};
  let node = spec;
  for (const key of keys.slice(0, -1)) {
    const next: Record<string, unknown> = {};
    node[key] = next;
    node = next;
  }
  node[keys.at(-1)!] = value;
  return certificateAuthoritySpecSchema.safeParse(spec).success;
}

describe('the crds/ folder', () => {
  it('holds only CustomResourceDefinitions, so `kubectl apply -f crds/` applies nothing else', () => {
    for (const file of readdirSync(crdsDir, { recursive: true, withFileTypes: true })) {
      if (!file.isFile()) continue;
      expect(file.name).toMatch(/\.ya?ml$/);
      const docs = loadAll(readFileSync(new URL(file.name, crdsDir), 'utf8')) as { kind?: string }[];
      for (const doc of docs) expect(doc.kind).toBe('CustomResourceDefinition');
    }
  });
});

describe('the CertificateAuthority CRD', () => {
  it('names the resource the code looks up', () => {
    expect(crd.spec.group).toBe(certificateAuthorityResource.group);
    expect(crd.spec.names.kind).toBe(certificateAuthorityResource.kind);
    expect(crd.spec.names.plural).toBe(certificateAuthorityResource.plural);
    expect(crd.spec.scope).toBe('Cluster');
    expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([
      [certificateAuthorityResource.version, true, true],
    ]);
  });

  it('admits only the singleton name the code reads', () => {
    const rules = rootSchema['x-kubernetes-validations']?.map((validation) => validation.rule);
    expect(rules).toContain(`self.metadata.name == '${CERTIFICATE_AUTHORITY_NAME}'`);
  });

  it('gives every node a type, as a structural schema must', () => {
    walk(rootSchema, '', (node, path) => {
      expect(node.type, `type of ${path || 'the root'}`).toBeDefined();
    });
  });

  it('gives every spec field a default (fields of list items excepted: an item is written whole)', () => {
    walk(specSchema, 'spec', (node, path) => {
      if (!path.includes('[]')) expect(node.default, `default of ${path}`).toBeDefined();
    });
  });

  it('has defaults that pass its own schema', () => {
    walk(specSchema, 'spec', (node, path) => {
      if (node.default !== undefined) expect(openApiProblems(node, node.default, path)).toEqual([]);
    });
  });

  it('defaults an empty spec to exactly what the zod schema defaults it to', () => {
    expect(applyCrdDefaults(specSchema, {})).toStrictEqual(certificateAuthoritySpecSchema.parse({}));
  });

  it.each([
    ['one field set', { workloadCertificates: { ttl: '24h' } }],
    ['one section set', { rootCA: { mode: 'PluggedIn', selfSigned: { ttl: '1000h' } } }],
    ['lists set', { namespaces: { alwaysManaged: ['a', 'b'] } }],
    [
      'DNS name allow rules set',
      {
        workloadCertificates: {
          dnsNames: {
            allow: [
              { patterns: ['a.example.com'], namespaceSelector: { matchLabels: { team: 'a' } } },
              { namespaces: ['b'], patterns: ['*.example.com'] },
            ],
          },
        },
      },
    ],
    ['the CSR API set', { csr: { maxValidity: '48h' } }],
    ['everything set', certificateAuthoritySpecSchema.parse({ trustDomain: 'x.y' })],
  ])('defaults a spec with %s the same way the zod schema does', (_, spec) => {
    expect(applyCrdDefaults(specSchema, spec)).toStrictEqual(certificateAuthoritySpecSchema.parse(spec));
  });

  it('offers the same enums', () => {
    expect(child(specSchema, 'workloadCertificates.keyAlgorithm').enum).toEqual(keyAlgorithmSchema.options);
    expect(child(specSchema, 'rootCA.selfSigned.keyAlgorithm').enum).toEqual(keyAlgorithmSchema.options);
    expect(child(specSchema, 'rootCA.mode').enum).toEqual(rootCaModeSchema.options);
  });

  it('offers every key algorithm of the registry, and its default', () => {
    for (const path of ['workloadCertificates.keyAlgorithm', 'rootCA.selfSigned.keyAlgorithm']) {
      expect(child(specSchema, path).enum).toEqual(KEY_ALGORITHM_NAMES);
      expect(child(specSchema, path).default).toBe(DEFAULT_KEY_ALGORITHM);
    }
  });

  it.each([
    [
      'trustDomain',
      [
        'cluster.local',
        'a',
        'my_domain-1.example',
        'Cluster.local',
        'a b',
        '',
        'a/b',
        'x'.repeat(255),
        'x'.repeat(256),
      ],
    ],
    [
      'clusterDomain',
      [
        'cluster.local',
        'corp',
        'a-b.example',
        'Cluster.local',
        '',
        'a..b',
        '-a.b',
        'a_b',
        `${'x'.repeat(63)}.y`,
        'x'.repeat(64),
      ],
    ],
    [
      'namespaces.alwaysManaged.[]',
      ['istio-system', 'a', '0a', '-a', 'a-', 'A', 'a.b', 'x'.repeat(63), 'x'.repeat(64)],
    ],
  ])('agrees with zod on which values %s accepts', (field, samples) => {
    const schema = child(specSchema, field);
    for (const sample of samples) {
      const crdAccepts = openApiProblems(schema, sample, field).length === 0;
      const zodField = field.replace('.[]', '');
      const zodValue = field.endsWith('[]') ? [sample] : sample;
      expect(zodAccepts(zodField, zodValue), `${field} = ${JSON.stringify(sample)}`).toBe(crdAccepts);
    }
  });

  it('agrees with zod on which DNS name patterns an allow rule accepts', () => {
    const schema = child(specSchema, 'workloadCertificates.dnsNames.allow.[].patterns.[]');
    for (const sample of [
      'api.example.com',
      '*.example.com',
      'localhost',
      '*.svc',
      '*',
      '*.*.example.com',
      'a.*.example.com',
      'API.example.com',
      'a..example.com',
      '-a.example.com',
      'a_b.example.com',
      'example.com.',
      `${'x'.repeat(63)}.com`,
      `${'x'.repeat(64)}.com`,
      `${'a.'.repeat(126)}b`,
      `${'a.'.repeat(127)}b`,
    ]) {
      const crdAccepts = openApiProblems(schema, sample, 'pattern').length === 0;
      const spec = {
        workloadCertificates: { dnsNames: { allow: [{ namespaces: ['n'], patterns: [sample] }] } },
      };
      expect(certificateAuthoritySpecSchema.safeParse(spec).success, sample).toBe(crdAccepts);
    }
  });

  it('offers the same label selector operators', () => {
    const operator = child(
      specSchema,
      'workloadCertificates.dnsNames.allow.[].namespaceSelector.matchExpressions.[].operator',
    );
    expect(operator.enum).toEqual(['In', 'NotIn', 'Exists', 'DoesNotExist']);
  });

  it.each(['workloadCertificates.gracePeriodRatio', 'rootCA.selfSigned.rotationThreshold'])(
    'agrees with zod on the bounds of %s',
    (field) => {
      const schema = child(specSchema, field);
      for (const sample of [-0.1, 0, 0.000001, 0.5, 0.999999, 1, 1.5]) {
        const crdAccepts = openApiProblems(schema, sample, field).length === 0;
        expect(zodAccepts(field, sample), `${field} = ${sample}`).toBe(crdAccepts);
      }
    },
  );

  const durationFields = [
    'workloadCertificates.ttl',
    'workloadCertificates.minGracePeriod',
    'workloadCertificates.clockSkewAllowance',
    'rootCA.selfSigned.ttl',
    'csr.defaultValidity',
    'csr.maxValidity',
    'revocation.crlValidity',
  ];

  it.each(durationFields)('lets the controller read every duration the CRD accepts for %s', (field) => {
    // The CEL rules screen durations with a regular expression before duration() parses them;
    // the controller's parser (Go's grammar) must accept at least that much.
    const rules = child(specSchema, field)['x-kubernetes-validations'] ?? [];
    const pattern = /self\.matches\('([^']+)'\)/.exec(rules.map((r) => r.rule).join(' '))?.[1];
    expect(pattern, `a matches() rule on ${field}`).toBeDefined();
    const crdSyntax = new RegExp(pattern!);
    let accepted = 0;
    for (const sample of [
      '10m',
      '1h30m',
      '1.5h',
      '2160h',
      '500ms',
      '1m30s500ms',
      '0s',
      '3d',
      '1 h',
      '',
      'h',
      '5',
    ]) {
      if (!crdSyntax.test(sample)) continue;
      accepted++;
      expect(tryParseDuration(sample).ok, sample).toBe(true);
    }
    // Not a pass with nothing checked: the ordinary forms get past the CRD's screen.
    expect(accepted, 'samples the CRD accepts').toBeGreaterThanOrEqual(6);
  });
});
