import { load } from 'js-yaml';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type CaConfig,
  configAdjustments,
  defaultCaConfig,
  parseCertificateAuthoritySpec,
} from './ca-spec.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function expectValid(raw: unknown): CaConfig {
  const result = parseCertificateAuthoritySpec(raw);
  if (!result.ok) throw new Error(`expected a valid spec, got: ${result.message}`);
  return result.config;
}

function expectInvalid(raw: unknown): string {
  const result = parseCertificateAuthoritySpec(raw);
  if (result.ok) throw new Error(`expected an invalid spec, got ${JSON.stringify(result.config)}`);
  return result.message;
}

describe('defaultCaConfig', () => {
  // Golden: changing a default must show up here as a diff, and in the CRD (crd-sync.test.ts).
  it('is pinned', () => {
    expect(defaultCaConfig()).toStrictEqual({
      trustDomain: 'cluster.local',
      clusterDomain: 'cluster.local',
      workload: {
        ttlMs: 2160 * HOUR,
        keyAlgorithm: 'ECDSA_P256',
        gracePeriodRatio: 0.5,
        minGracePeriodMs: 10 * MINUTE,
        clockSkewMs: 5 * MINUTE,
        dnsNames: { allow: [] },
      },
      root: {
        mode: 'SelfSigned',
        selfSigned: { ttlMs: 87600 * HOUR, keyAlgorithm: 'ECDSA_P256', rotationThreshold: 0.2 },
      },
      namespaces: { managedByDefault: true, alwaysManaged: [] },
      csr: { defaultValidityMs: 24 * HOUR, maxValidityMs: 2160 * HOUR },
      revocation: { crlValidityMs: 24 * HOUR },
    });
  });

  it('types its fields precisely', () => {
    expectTypeOf<CaConfig['workload']['keyAlgorithm']>().toEqualTypeOf<'ECDSA_P256' | 'RSA_2048'>();
    expectTypeOf<CaConfig['root']['mode']>().toEqualTypeOf<'SelfSigned' | 'PluggedIn'>();
    expectTypeOf<CaConfig['workload']['ttlMs']>().toEqualTypeOf<number>();
    expectTypeOf<CaConfig['namespaces']['alwaysManaged']>().toEqualTypeOf<string[]>();
  });

  it('hands out a fresh object each time, so one caller cannot change another’s defaults', () => {
    const first = defaultCaConfig();
    first.namespaces.alwaysManaged.push('mutated');
    expect(defaultCaConfig().namespaces.alwaysManaged).toEqual([]);
  });
});

describe('parseCertificateAuthoritySpec', () => {
  it.each([
    ['no CertificateAuthority (undefined)', undefined],
    ['a null spec', null],
    ['an empty spec', {}],
    ['empty sections', { workloadCertificates: {}, rootCA: { selfSigned: {} }, namespaces: {} }],
    [
      'null fields, which the apiserver prunes and defaults',
      { trustDomain: null, workloadCertificates: { ttl: null } },
    ],
  ])('gives the defaults for %s', (_, raw) => {
    expect(expectValid(raw)).toStrictEqual(defaultCaConfig());
  });

  it('reads a full CertificateAuthority manifest', () => {
    const manifest = load(`
apiVersion: alcazar.dev/v1alpha1
kind: CertificateAuthority
metadata:
  name: default
spec:
  trustDomain: prod.example.org
  workloadCertificates:
    ttl: 24h
    keyAlgorithm: RSA_2048
    gracePeriodRatio: 0.25
    minGracePeriod: 1h30m
    clockSkewAllowance: 30s
    dnsNames:
      allow:
        - namespaces: [payments]
          patterns: [api.payments.example.com, "*.pay.example.com"]
        - namespaceSelector:
            matchLabels: {team: web}
            matchExpressions: [{key: env, operator: In, values: [prod]}]
          patterns: [www.example.com]
  clusterDomain: corp.internal
  rootCA:
    mode: PluggedIn
    selfSigned:
      ttl: 8760h
      keyAlgorithm: RSA_2048
      rotationThreshold: 0.1
  namespaces:
    managedByDefault: false
    alwaysManaged: [istio-system, payments]
`) as { spec: unknown };
    expect(expectValid(manifest.spec)).toStrictEqual({
      trustDomain: 'prod.example.org',
      clusterDomain: 'corp.internal',
      workload: {
        ttlMs: 24 * HOUR,
        keyAlgorithm: 'RSA_2048',
        gracePeriodRatio: 0.25,
        minGracePeriodMs: 90 * MINUTE,
        clockSkewMs: 30_000,
        dnsNames: {
          allow: [
            { namespaces: ['payments'], patterns: ['api.payments.example.com', '*.pay.example.com'] },
            {
              namespaces: [],
              namespaceSelector: {
                matchLabels: { team: 'web' },
                matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }],
              },
              patterns: ['www.example.com'],
            },
          ],
        },
      },
      root: {
        mode: 'PluggedIn',
        selfSigned: { ttlMs: 8760 * HOUR, keyAlgorithm: 'RSA_2048', rotationThreshold: 0.1 },
      },
      namespaces: { managedByDefault: false, alwaysManaged: ['istio-system', 'payments'] },
      csr: { defaultValidityMs: 24 * HOUR, maxValidityMs: 2160 * HOUR },
      revocation: { crlValidityMs: 24 * HOUR },
    });
  });

  it('fills only the fields left out', () => {
    const config = expectValid({ workloadCertificates: { ttl: '1h' }, namespaces: { alwaysManaged: ['a'] } });
    expect(config.workload).toStrictEqual({ ...defaultCaConfig().workload, ttlMs: HOUR });
    expect(config.namespaces).toStrictEqual({ managedByDefault: true, alwaysManaged: ['a'] });
  });

  it('ignores fields it does not know, as the apiserver prunes them', () => {
    expect(expectValid({ futureField: 1, workloadCertificates: { other: 'x' } })).toStrictEqual(
      defaultCaConfig(),
    );
  });

  it('accepts zero for minGracePeriod and clockSkewAllowance', () => {
    const config = expectValid({ workloadCertificates: { minGracePeriod: '0s', clockSkewAllowance: '0s' } });
    expect(config.workload.minGracePeriodMs).toBe(0);
    expect(config.workload.clockSkewMs).toBe(0);
  });

  it('lets the workload ttl exceed the self-signed root ttl when the root is plugged in', () => {
    const config = expectValid({ workloadCertificates: { ttl: '100000h' }, rootCA: { mode: 'PluggedIn' } });
    expect(config.workload.ttlMs).toBe(100_000 * HOUR);
  });

  it.each([
    [
      { trustDomain: 'Cluster.Local' },
      "spec.trustDomain: must contain only lowercase letters, digits, '.', '-' and '_'",
    ],
    [{ trustDomain: '' }, 'spec.trustDomain: must not be empty'],
    [{ trustDomain: 'a'.repeat(256) }, 'spec.trustDomain: must be at most 255 characters'],
    [{ trustDomain: 7 }, 'spec.trustDomain: Invalid input: expected string'],
    [
      { workloadCertificates: { ttl: '90 days' } },
      'spec.workloadCertificates.ttl: invalid duration "90 days"',
    ],
    [
      { workloadCertificates: { ttl: '0s' } },
      "spec.workloadCertificates.ttl: must be longer than zero, got '0s'",
    ],
    [{ workloadCertificates: { ttl: '-1h' } }, 'spec.workloadCertificates.ttl: must be longer than zero'],
    [
      { workloadCertificates: { ttl: '500ms', minGracePeriod: '0s' } },
      'spec.workloadCertificates.ttl: must be at least 1s',
    ],
    [
      { workloadCertificates: { keyAlgorithm: 'ED25519' } },
      'spec.workloadCertificates.keyAlgorithm: Invalid option',
    ],
    [
      { workloadCertificates: { gracePeriodRatio: 1 } },
      'spec.workloadCertificates.gracePeriodRatio: must be greater than 0 and less than 1',
    ],
    [
      { workloadCertificates: { gracePeriodRatio: 0 } },
      'spec.workloadCertificates.gracePeriodRatio: must be greater than 0',
    ],
    [
      { workloadCertificates: { gracePeriodRatio: '0.5' } },
      'spec.workloadCertificates.gracePeriodRatio: must be a number',
    ],
    [
      { workloadCertificates: { minGracePeriod: '-1m' } },
      'spec.workloadCertificates.minGracePeriod: must not be negative',
    ],
    [
      { workloadCertificates: { clockSkewAllowance: '5' } },
      'spec.workloadCertificates.clockSkewAllowance: invalid duration "5"',
    ],
    [
      { workloadCertificates: { ttl: '10m' } },
      "spec.workloadCertificates.minGracePeriod: must be shorter than ttl (10m), got '10m'",
    ],
    [
      { workloadCertificates: { ttl: '87600h' } },
      "spec.workloadCertificates.ttl: must be shorter than rootCA.selfSigned.ttl (87600h), got '87600h'",
    ],
    [{ rootCA: { mode: 'Vault' } }, 'spec.rootCA.mode: Invalid option'],
    [{ rootCA: { selfSigned: { ttl: '0h' } } }, 'spec.rootCA.selfSigned.ttl: must be longer than zero'],
    [
      { rootCA: { selfSigned: { rotationThreshold: 1.5 } } },
      'spec.rootCA.selfSigned.rotationThreshold: must be greater than 0 and less than 1',
    ],
    [{ namespaces: { managedByDefault: 'yes' } }, 'spec.namespaces.managedByDefault: must be true or false'],
    [
      { namespaces: { alwaysManaged: 'istio-system' } },
      'spec.namespaces.alwaysManaged: Invalid input: expected array',
    ],
    [
      { namespaces: { alwaysManaged: ['ok', 'Not_OK'] } },
      'spec.namespaces.alwaysManaged[1]: must be a namespace name',
    ],
    [{ namespaces: { alwaysManaged: ['a', 'b', 'a'] } }, "spec.namespaces.alwaysManaged[2]: lists 'a' twice"],
    [{ clusterDomain: 'Cluster.Local' }, "spec.clusterDomain: must be a DNS domain such as 'cluster.local'"],
    [
      { workloadCertificates: { dnsNames: { allow: [{ patterns: ['a.example.com'] }] } } },
      'spec.workloadCertificates.dnsNames.allow[0].namespaces: a rule must select namespaces',
    ],
    [
      { workloadCertificates: { dnsNames: { allow: [{ namespaces: ['a'], patterns: [] }] } } },
      'spec.workloadCertificates.dnsNames.allow[0].patterns: must list at least one name',
    ],
    [
      { workloadCertificates: { dnsNames: { allow: [{ namespaces: ['a'], patterns: ['*'] }] } } },
      'spec.workloadCertificates.dnsNames.allow[0].patterns[0]: must be a lowercase DNS name',
    ],
    [
      {
        workloadCertificates: {
          dnsNames: {
            allow: [
              {
                namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In' }] },
                patterns: ['a.example.com'],
              },
            ],
          },
        },
      },
      'spec.workloadCertificates.dnsNames.allow[0].namespaceSelector.matchExpressions[0].values: must not be empty for In',
    ],
    [
      {
        workloadCertificates: {
          dnsNames: {
            allow: [
              {
                namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'Exists', values: ['x'] }] },
                patterns: ['a.example.com'],
              },
            ],
          },
        },
      },
      'spec.workloadCertificates.dnsNames.allow[0].namespaceSelector.matchExpressions[0].values: must be empty for Exists',
    ],
    [{ csr: { maxValidity: '0s' } }, "spec.csr.maxValidity: must be longer than zero, got '0s'"],
    [{ csr: { defaultValidity: '1ns' } }, 'spec.csr.defaultValidity: must be at least 1s'],
    [
      { csr: { defaultValidity: '48h', maxValidity: '24h' } },
      "spec.csr.defaultValidity: must not be longer than maxValidity (24h), got '48h'",
    ],
    ['not an object', 'spec: Invalid input: expected object'],
  ])('rejects %j naming the field', (raw, expected) => {
    expect(expectInvalid(raw)).toContain(expected);
  });

  it('reports every invalid field at once', () => {
    const message = expectInvalid({
      trustDomain: 'UPPER',
      workloadCertificates: { ttl: 'soon', gracePeriodRatio: 2 },
      rootCA: { mode: 'Vault' },
    });
    expect(message.split('; ').map((line) => line.slice(0, line.indexOf(':')))).toEqual([
      'spec.trustDomain',
      'spec.workloadCertificates.ttl',
      'spec.workloadCertificates.gracePeriodRatio',
      'spec.rootCA.mode',
    ]);
  });

  it('does not compare durations that do not parse', () => {
    // Only the malformed field is reported, not a comparison with it.
    expect(expectInvalid({ workloadCertificates: { ttl: 'soon' } })).not.toContain('shorter than');
  });
});

describe('configAdjustments', () => {
  it('says when clockSkewAllowance is cut to a tenth of the ttl', () => {
    const parsed = parseCertificateAuthoritySpec({
      workloadCertificates: { ttl: '30m', clockSkewAllowance: '5m' },
    });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(configAdjustments(parsed.config)).toEqual([
      'clockSkewAllowance 5m is more than a tenth of ttl 30m: NotBefore is backdated by 3m',
    ]);
  });

  it('says nothing for the defaults', () => {
    expect(configAdjustments(defaultCaConfig())).toEqual([]);
  });
});
