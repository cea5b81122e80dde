// Which DNS SANs a ServiceAccount may have in its workload certificate. The SPIFFE ID names only
// the ServiceAccount itself; a DNS name is a claim about the network, and anything that trusts the
// mesh root and checks a server by name believes it. So names are authorised, not just
// syntax-checked:
//
// - By default a ServiceAccount in namespace N may have names of N's own services only:
//   `<svc>.N`, and anything under `N.svc` or `N.svc.<clusterDomain>` (services, and the
//   `<pod>.<svc>.N.svc.<clusterDomain>` names of headless Services), wildcards included:
//   `*.N.svc` covers names N may already claim one by one. `*.N` is refused: with one label above
//   it, N may be a real top-level domain.
// - Anything else needs an allow rule that only a cluster admin can write (the cluster-scoped
//   CertificateAuthority), selecting namespaces by name or label.
// - Reserved names (alcazar's own serving certificate, the Kubernetes API server) are refused even
//   inside their own namespace, and so is a wildcard covering one, unless a rule that applies
//   lists the requested name exactly: a wildcard pattern is never enough.
//
// Pure: no Kubernetes imports; the caller brings the namespace's labels.
import { type LabelSelector, matchesLabelSelector } from './label-selector.js';

export interface DnsNameAllowRule {
  /** Namespaces the rule applies to, by name. */
  namespaces: readonly string[];
  /** Namespaces the rule applies to, by label; absent selects none (an empty one selects all). */
  namespaceSelector?: LabelSelector;
  /** Exact names, or `*.<domain>`: any one label in place of `*`, and the wildcard name itself. */
  patterns: readonly string[];
}

export interface DnsNamePolicy {
  /** The cluster's DNS domain (kubelet --cluster-domain), not the trust domain. */
  clusterDomain: string;
  allow: readonly DnsNameAllowRule[];
  /** Names alcazar serves itself, e.g. the CSR API's serving certificate. */
  reservedDnsNames: readonly string[];
}

export interface DnsNameSubject {
  namespace: string;
  namespaceLabels: Readonly<Record<string, string>>;
}

export type DnsNameRefusalReason = 'Invalid' | 'Reserved' | 'OutsideNamespace';

export interface RefusedDnsName {
  name: string;
  reason: DnsNameRefusalReason;
  /** Why, as a phrase that follows the name: "is reserved for …". */
  why: string;
}

export interface DnsNameAuthorisation {
  /** Sorted, without duplicates. */
  allowed: string[];
  refused: RefusedDnsName[];
}

/** The API server's in-cluster name: no workload may pose as it, not even one in `default`. */
export const KUBERNETES_API_DNS_NAMES: readonly string[] = ['kubernetes.default.svc'];

/** The names alcazar's CSR API serves under, by default: what Istio agents dial as `CA_ADDR`. */
export function defaultReservedDnsNames(caNamespace: string): string[] {
  return [`alcazar.${caNamespace}.svc`, `istiod.${caNamespace}.svc`];
}

const DNS_NAME =
  /^(?=.{1,253}$)(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/** A lowercase DNS name, optionally with a wildcard as its whole first label. */
export function isDnsName(name: string): boolean {
  return DNS_NAME.test(name);
}

/**
 * The forms a Service's name takes: `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.<domain>`
 * (clients resolve all three to the same Service). Other names stand for themselves.
 */
export function serviceNameForms(name: string, clusterDomain: string): string[] {
  const longSuffix = `.svc.${clusterDomain}`;
  let base = name;
  if (name.endsWith(longSuffix)) base = name.slice(0, -longSuffix.length);
  else if (name.endsWith('.svc')) base = name.slice(0, -'.svc'.length);
  if (base.split('.').length !== 2) return [name];
  return [base, `${base}.svc`, `${base}${longSuffix}`];
}

/** Whether the two names can denote the same host: equal, or one a wildcard covering the other. */
function overlaps(a: string, b: string): boolean {
  return a === b || covers(a, b) || covers(b, a);
}

/** `*.example.com` covers `api.example.com` (exactly one label, as TLS clients match wildcards). */
function covers(wildcard: string, name: string): boolean {
  if (!wildcard.startsWith('*.')) return false;
  const suffix = wildcard.slice(1);
  if (!name.endsWith(suffix)) return false;
  const label = name.slice(0, -suffix.length);
  return label.length > 0 && !label.includes('.');
}

function patternAllows(pattern: string, name: string): boolean {
  return pattern === name || (covers(pattern, name) && !name.startsWith('*.'));
}

/** `<svc>.N`, or anything under `N.svc` or `N.svc.<clusterDomain>`. */
export function inOwnServiceDomain(name: string, namespace: string, clusterDomain: string): boolean {
  const labels = name.split('.');
  if (labels.length === 2) return labels[1] === namespace && labels[0] !== '*';
  return [`.${namespace}.svc`, `.${namespace}.svc.${clusterDomain}`].some(
    (domain) => name.endsWith(domain) && name.length > domain.length,
  );
}

function ruleApplies(rule: DnsNameAllowRule, subject: DnsNameSubject): boolean {
  return (
    rule.namespaces.includes(subject.namespace) ||
    (rule.namespaceSelector !== undefined &&
      matchesLabelSelector(rule.namespaceSelector, subject.namespaceLabels))
  );
}

/** Every reserved name in each of its service forms, with whose it is. */
function reservedNames(policy: DnsNamePolicy): Map<string, string> {
  const reserved = new Map<string, string>();
  const add = (names: readonly string[], owner: string) => {
    for (const name of names)
      for (const form of serviceNameForms(name, policy.clusterDomain)) reserved.set(form, owner);
  };
  add(policy.reservedDnsNames, "alcazar's own serving certificate");
  add(KUBERNETES_API_DNS_NAMES, 'the Kubernetes API server');
  return reserved;
}

/**
 * Splits the requested names into those the ServiceAccount may have and those it may not, with
 * why. Names are expected lowercase, as the annotation parser leaves them.
 */
export function authoriseDnsNames(
  requested: readonly string[],
  subject: DnsNameSubject,
  policy: DnsNamePolicy,
): DnsNameAuthorisation {
  if (requested.length === 0) return { allowed: [], refused: [] };
  const rules = policy.allow.filter((rule) => ruleApplies(rule, subject));
  const reserved = reservedNames(policy);
  const allowed = new Set<string>();
  const refused: RefusedDnsName[] = [];
  for (const name of new Set(requested)) {
    if (!isDnsName(name)) {
      refused.push({ name, reason: 'Invalid', why: 'is not a valid DNS name' });
      continue;
    }
    const hits = [...reserved].filter(([form]) => overlaps(form, name));
    if (hits.length > 0) {
      const listed = (n: string) => rules.some((rule) => rule.patterns.includes(n));
      // The name itself, and every reserved name it covers, must be listed exactly: a wildcard
      // pattern listed in a broad rule ("any service in istio-system") must not hand out a
      // wildcard certificate that passes for istiod.
      const unlisted = listed(name) ? hits.find(([form]) => !listed(form)) : hits[0];
      if (!unlisted) allowed.add(name);
      else {
        const [form, owner] = unlisted;
        const what = form === name ? `is reserved for ${owner}` : `covers ${form}, reserved for ${owner}`;
        refused.push({
          name,
          reason: 'Reserved',
          why: `${what}; only an allow rule naming it exactly grants it`,
        });
      }
      continue;
    }
    if (
      inOwnServiceDomain(name, subject.namespace, policy.clusterDomain) ||
      rules.some((rule) => rule.patterns.some((pattern) => patternAllows(pattern, name)))
    ) {
      allowed.add(name);
      continue;
    }
    refused.push({
      name,
      reason: 'OutsideNamespace',
      why: `is outside namespace ${subject.namespace}'s service domain (<svc>.${subject.namespace}, *.${subject.namespace}.svc, *.${subject.namespace}.svc.${policy.clusterDomain}) and no allow rule for the namespace matches it`,
    });
  }
  return { allowed: [...allowed].sort(), refused };
}

/** "a.example (why), b.example (why)": for Events, logs and `inspect`. */
export function describeRefusedDnsNames(refused: readonly RefusedDnsName[]): string {
  return refused.map((r) => `${r.name} ${r.why}`).join('; ');
}
