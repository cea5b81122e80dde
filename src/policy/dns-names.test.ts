import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  authoriseDnsNames,
  type DnsNameAllowRule,
  type DnsNamePolicy,
  type DnsNameSubject,
  defaultReservedDnsNames,
  describeRefusedDnsNames,
  inOwnServiceDomain,
  serviceNameForms,
} from './dns-names.js';

const CA_NAMESPACE = 'istio-system';

function policy(allow: DnsNameAllowRule[] = [], clusterDomain = 'cluster.local'): DnsNamePolicy {
  return { clusterDomain, allow, reservedDnsNames: defaultReservedDnsNames(CA_NAMESPACE) };
}

const tenant1: DnsNameSubject = { namespace: 'tenant1', namespaceLabels: { team: 'blue' } };
const caSubject: DnsNameSubject = { namespace: CA_NAMESPACE, namespaceLabels: {} };

const allowedOf = (names: string[], subject = tenant1, p = policy()) =>
  authoriseDnsNames(names, subject, p).allowed;
const refusedOf = (names: string[], subject = tenant1, p = policy()) =>
  authoriseDnsNames(names, subject, p).refused.map((r) => [r.name, r.reason]);

describe('defaultReservedDnsNames', () => {
  it("names the CSR API's default serving names in the CA namespace", () => {
    expect(defaultReservedDnsNames('istio-system')).toEqual([
      'alcazar.istio-system.svc',
      'istiod.istio-system.svc',
    ]);
  });
});

describe('serviceNameForms', () => {
  it.each([
    [
      'istiod.istio-system.svc',
      ['istiod.istio-system', 'istiod.istio-system.svc', 'istiod.istio-system.svc.cluster.local'],
    ],
    [
      'istiod.istio-system',
      ['istiod.istio-system', 'istiod.istio-system.svc', 'istiod.istio-system.svc.cluster.local'],
    ],
    [
      'istiod.istio-system.svc.cluster.local',
      ['istiod.istio-system', 'istiod.istio-system.svc', 'istiod.istio-system.svc.cluster.local'],
    ],
    ['ca.example.com', ['ca.example.com']],
    ['a.b.c.svc', ['a.b.c.svc']],
  ])('%s', (name, forms) => {
    expect(serviceNameForms(name, 'cluster.local')).toEqual(forms);
  });
});

describe("a ServiceAccount's own namespace", () => {
  it.each([
    'web.tenant1',
    'web.tenant1.svc',
    'web.tenant1.svc.cluster.local',
    'web-0.web.tenant1.svc.cluster.local',
    '*.tenant1.svc',
    '*.tenant1.svc.cluster.local',
    '*.web.tenant1.svc.cluster.local',
  ])('%s is allowed by default', (name) => {
    expect(allowedOf([name])).toEqual([name]);
  });

  it.each([
    ['another namespace', 'web.tenant2.svc'],
    ['another namespace, short form', 'web.tenant2'],
    ['an outside host', 'www.bank.example'],
    ['a service of the CA namespace', `grafana.${CA_NAMESPACE}.svc`],
    ['a wildcard over the namespace label (it may be a TLD)', '*.tenant1'],
    ['the namespace domain itself', 'tenant1.svc'],
    ['a name that only starts like it', 'web.tenant1.svc.evil.example'],
    ['another cluster domain', 'web.tenant1.svc.other.local'],
    ['a suffix trick', 'web.xtenant1.svc'],
    ['a wildcard over every service domain', '*.svc'],
    ['three labels ending in the namespace', 'a.web.tenant1'],
  ])('%s is refused: %s', (_, name) => {
    expect(refusedOf([name])).toEqual([[name, 'OutsideNamespace']]);
  });

  it('follows the configured cluster domain, not cluster.local', () => {
    const p = policy([], 'corp.internal');
    expect(allowedOf(['web.tenant1.svc.corp.internal', 'web.tenant1.svc.cluster.local'], tenant1, p)).toEqual(
      ['web.tenant1.svc.corp.internal'],
    );
  });

  it('the issue #17 request: istiod, the API server and an outside host are all left out', () => {
    const result = authoriseDnsNames(
      ['istiod.istio-system.svc', 'kubernetes.default.svc', 'www.bank.example', 'api.tenant1.svc'],
      tenant1,
      policy(),
    );
    expect(result.allowed).toEqual(['api.tenant1.svc']);
    expect(result.refused.map((r) => [r.name, r.reason])).toEqual([
      ['istiod.istio-system.svc', 'Reserved'],
      ['kubernetes.default.svc', 'Reserved'],
      ['www.bank.example', 'OutsideNamespace'],
    ]);
  });
});

describe('reserved names', () => {
  it.each([
    'istiod.istio-system.svc',
    'istiod.istio-system',
    'istiod.istio-system.svc.cluster.local',
    'alcazar.istio-system.svc',
    '*.istio-system.svc',
    '*.istio-system.svc.cluster.local',
  ])('%s is refused even to a ServiceAccount in the CA namespace', (name) => {
    expect(refusedOf([name], caSubject)).toEqual([[name, 'Reserved']]);
  });

  it("the API server's names are refused even in namespace default", () => {
    const subject = { namespace: 'default', namespaceLabels: {} };
    expect(
      refusedOf(
        ['kubernetes.default.svc', 'kubernetes.default', 'kubernetes.default.svc.cluster.local'],
        subject,
      ),
    ).toEqual([
      ['kubernetes.default.svc', 'Reserved'],
      ['kubernetes.default', 'Reserved'],
      ['kubernetes.default.svc.cluster.local', 'Reserved'],
    ]);
    expect(allowedOf(['web.default.svc'], subject)).toEqual(['web.default.svc']);
  });

  it('other services of the CA namespace stay allowed there', () => {
    expect(allowedOf(['grafana.istio-system.svc'], caSubject)).toEqual(['grafana.istio-system.svc']);
  });

  it('the reserved list is the caller’s: a CSR flag naming other names reserves those instead', () => {
    const p = { ...policy(), reservedDnsNames: ['ca.mesh.example.com'] };
    expect(refusedOf(['ca.mesh.example.com'], caSubject, p)).toEqual([['ca.mesh.example.com', 'Reserved']]);
    expect(allowedOf(['istiod.istio-system.svc'], caSubject, p)).toEqual(['istiod.istio-system.svc']);
  });

  it('a rule naming the reserved name exactly grants it; a wildcard pattern does not, nor the wildcard itself', () => {
    const exact = policy([{ namespaces: [CA_NAMESPACE], patterns: ['istiod.istio-system.svc'] }]);
    expect(allowedOf(['istiod.istio-system.svc'], caSubject, exact)).toEqual(['istiod.istio-system.svc']);
    // Only that form: the others stay reserved.
    expect(refusedOf(['istiod.istio-system'], caSubject, exact)).toEqual([
      ['istiod.istio-system', 'Reserved'],
    ]);
    const wildcard = policy([{ namespaces: [CA_NAMESPACE], patterns: ['*.istio-system.svc'] }]);
    expect(refusedOf(['istiod.istio-system.svc'], caSubject, wildcard)).toEqual([
      ['istiod.istio-system.svc', 'Reserved'],
    ]);
    // Nor is the wildcard itself, though the rule lists it: it would pass for istiod. Only with
    // every reserved name it covers listed too.
    expect(refusedOf(['*.istio-system.svc'], caSubject, wildcard)).toEqual([
      ['*.istio-system.svc', 'Reserved'],
    ]);
    const everyName = policy([
      {
        namespaces: [CA_NAMESPACE],
        patterns: ['*.istio-system.svc', 'istiod.istio-system.svc', 'alcazar.istio-system.svc'],
      },
    ]);
    expect(allowedOf(['*.istio-system.svc'], caSubject, everyName)).toEqual(['*.istio-system.svc']);
  });

  it('says whose name it is', () => {
    const [istiod, api] = authoriseDnsNames(
      ['istiod.istio-system.svc', 'kubernetes.default.svc'],
      tenant1,
      policy(),
    ).refused;
    expect(istiod?.why).toContain("alcazar's own serving certificate");
    expect(api?.why).toContain('the Kubernetes API server');
    const [wildcard] = authoriseDnsNames(['*.istio-system.svc'], caSubject, policy()).refused;
    expect(wildcard?.why).toContain('covers');
  });
});

describe('allow rules', () => {
  const rules: DnsNameAllowRule[] = [
    { namespaces: ['tenant1'], patterns: ['api.example.com', '*.shop.example.com'] },
    { namespaces: [], namespaceSelector: { matchLabels: { team: 'red' } }, patterns: ['red.example.com'] },
  ];

  it('a rule naming the namespace grants its exact names and one label under its wildcards', () => {
    expect(
      allowedOf(['api.example.com', 'cart.shop.example.com', '*.shop.example.com'], tenant1, policy(rules)),
    ).toEqual(['*.shop.example.com', 'api.example.com', 'cart.shop.example.com']);
    expect(
      refusedOf(['a.b.shop.example.com', 'shop.example.com', 'www.example.com'], tenant1, policy(rules)),
    ).toEqual([
      ['a.b.shop.example.com', 'OutsideNamespace'],
      ['shop.example.com', 'OutsideNamespace'],
      ['www.example.com', 'OutsideNamespace'],
    ]);
  });

  it('a wildcard pattern does not grant a wildcard under it', () => {
    const p = policy([{ namespaces: ['tenant1'], patterns: ['*.example.com'] }]);
    expect(refusedOf(['*.a.example.com'], tenant1, p)).toEqual([['*.a.example.com', 'OutsideNamespace']]);
  });

  it('applies only to the namespaces it selects', () => {
    expect(
      refusedOf(['api.example.com'], { namespace: 'tenant2', namespaceLabels: {} }, policy(rules)),
    ).toEqual([['api.example.com', 'OutsideNamespace']]);
    expect(
      allowedOf(
        ['red.example.com'],
        { namespace: 'tenant2', namespaceLabels: { team: 'red' } },
        policy(rules),
      ),
    ).toEqual(['red.example.com']);
    expect(refusedOf(['red.example.com'], tenant1, policy(rules))).toEqual([
      ['red.example.com', 'OutsideNamespace'],
    ]);
  });

  it('a rule with no namespaces and no selector applies to none; an empty selector to all', () => {
    expect(
      refusedOf(['x.example.com'], tenant1, policy([{ namespaces: [], patterns: ['x.example.com'] }])),
    ).toEqual([['x.example.com', 'OutsideNamespace']]);
    expect(
      allowedOf(
        ['x.example.com'],
        tenant1,
        policy([{ namespaces: [], namespaceSelector: {}, patterns: ['x.example.com'] }]),
      ),
    ).toEqual(['x.example.com']);
  });
});

describe('authoriseDnsNames', () => {
  it('refuses what is not a DNS name', () => {
    expect(refusedOf(['Web.tenant1.svc', 'a..tenant1.svc', 'a.*.tenant1.svc'])).toEqual([
      ['Web.tenant1.svc', 'Invalid'],
      ['a..tenant1.svc', 'Invalid'],
      ['a.*.tenant1.svc', 'Invalid'],
    ]);
  });

  it('sorts and de-duplicates what it allows', () => {
    expect(allowedOf(['b.tenant1.svc', 'a.tenant1.svc', 'b.tenant1.svc'])).toEqual([
      'a.tenant1.svc',
      'b.tenant1.svc',
    ]);
  });

  it('describes refusals name by name', () => {
    const { refused } = authoriseDnsNames(['www.bank.example', 'kubernetes.default.svc'], tenant1, policy());
    const text = describeRefusedDnsNames(refused);
    expect(text).toMatch(/^www\.bank\.example is outside namespace tenant1's service domain/);
    expect(text).toContain('; kubernetes.default.svc is reserved for the Kubernetes API server');
  });

  const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?$/);
  const name = fc
    .array(
      fc.oneof(
        label,
        fc.constantFrom('svc', 'tenant1', 'tenant2', 'cluster', 'local', 'default', 'istio-system'),
      ),
      {
        minLength: 1,
        maxLength: 6,
      },
    )
    .map((labels) => labels.join('.'));

  it('without rules, grants a name only inside the namespace, where no reserved name lives (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            name,
            name.map((n) => `*.${n}`),
          ),
          { maxLength: 5 },
        ),
        (names) => {
          const result = authoriseDnsNames(names, tenant1, policy());
          for (const allowed of result.allowed) {
            expect(inOwnServiceDomain(allowed, 'tenant1', 'cluster.local')).toBe(true);
            // Inside tenant1's own domain, so never a reserved name (those live in istio-system and
            // default): the CA namespace's property below checks reserved names themselves.
          }
          expect(result.allowed.length + result.refused.length).toBe(new Set(names).size);
        },
      ),
    );
  });

  it('a ServiceAccount of the CA namespace never gets a name covering a reserved one (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('istiod', 'alcazar', '*'),
        fc.constantFrom('', '.svc', '.svc.cluster.local'),
        (svc, suffix) => {
          const requested = `${svc}.istio-system${suffix}`;
          const { allowed } = authoriseDnsNames([requested], caSubject, policy());
          expect(allowed).toEqual([]);
        },
      ),
    );
  });
});
