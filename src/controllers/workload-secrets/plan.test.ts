import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCertificateAuthoritySpec } from '../../config/ca-spec.js';
import {
  type CaView,
  type PlanInput,
  plan,
  type SecretView,
  serviceAccountOfSecret,
  spiffeIdFor,
  WORKLOAD_SECRET_TYPE,
  workloadPolicy,
  workloadSecretName,
} from './plan.js';
import { backdateMs, gracePeriodMs, jitterFraction, renewAt, renewalDueAt } from './renewal.js';
import { isManagedNamespace } from './targeting.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const now = Date.UTC(2026, 10, 23);
const ca: CaView = {
  ready: true,
  signerFingerprint: 'signer-1',
  rootBundleHash: 'roots-1',
  chainHash: 'chain-1',
};

function healthySecret(
  overrides: Partial<SecretView> = {},
  cert: Partial<SecretView['certificate']> = {},
): SecretView {
  return {
    uid: 'secret-uid',
    resourceVersion: '10',
    type: WORKLOAD_SECRET_TYPE,
    owned: true,
    dataKeys: ['cert-chain.pem', 'key.pem', 'root-cert.pem'],
    rootBundleHash: 'roots-1',
    chainHash: 'chain-1',
    certificate: {
      notBefore: now - DAY,
      notAfter: now + 89 * DAY,
      serial: 'ab12',
      uris: [spiffeIdFor('cluster.local', 'shop', 'cart')],
      dnsNames: [],
      keyAlgorithm: 'ECDSA_P256',
      signedBy: 'signer-1',
      ...cert,
    },
    ...overrides,
  };
}

function input(overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    namespace: 'shop',
    serviceAccount: 'cart',
    sa: { uid: 'sa-uid', dnsNames: [] },
    ns: { labels: {}, terminating: false },
    secret: healthySecret(),
    ca,
    policy: {
      trustDomain: 'cluster.local',
      keyAlgorithm: 'ECDSA_P256',
      gracePeriodRatio: 0.5,
      minGracePeriodMs: 10 * 60_000,
      ttlMs: 90 * DAY,
      dnsNames: { clusterDomain: 'cluster.local', allow: [], reservedDnsNames: ['istiod.istio-system.svc'] },
    },
    targeting: { managedByDefault: true, alwaysManaged: [] },
    caNamespace: 'istio-system',
    now,
    ...overrides,
  };
}

describe('plan', () => {
  it('does not renew a certificate that ends with its signer: a fresh one could not end later', () => {
    // The signer expires in 8 minutes; the certificate was issued a moment ago, capped at it.
    const signerNotAfter = now + 8 * 60_000;
    const decision = plan(
      input({
        ca: { ...ca, signerNotAfter },
        secret: healthySecret({}, { notBefore: now - 5 * 60_000, notAfter: signerNotAfter }),
      }),
    );
    expect(decision).toEqual({ action: 'none', recheckAt: signerNotAfter });
    // Ending before its signer, the same certificate is renewed.
    const earlier = plan(
      input({
        ca: { ...ca, signerNotAfter: signerNotAfter + 60_000 },
        secret: healthySecret({}, { notBefore: now - 5 * 60_000, notAfter: signerNotAfter }),
      }),
    );
    expect(earlier).toEqual({ action: 'reissue', reason: 'RenewalDue' });
    // Once the signer has expired, what it could issue would be expired too: nothing is reissued.
    const afterSigner = plan(
      input({
        ca: { ...ca, signerNotAfter: now - 60_000 },
        secret: healthySecret({}, { notBefore: now - 10 * 60_000, notAfter: now - 60_000 }),
      }),
    );
    expect(afterSigner).toEqual({ action: 'none' });
    // But its bundle is still brought up to date: a root rotation waits for every Secret to carry it.
    const staleBundle = plan(
      input({
        ca: { ...ca, signerNotAfter: now - 60_000, rootBundleHash: 'roots-2' },
        secret: healthySecret({}, { notBefore: now - 10 * 60_000, notAfter: now - 60_000 }),
      }),
    );
    expect(staleBundle).toEqual({ action: 'refreshBundle', reason: 'StaleRootBundle' });
    expect(
      renewalDueAt(
        { notBefore: now - 5 * 60_000, notAfter: signerNotAfter, serial: 'ab' },
        input().policy,
        signerNotAfter,
      ),
    ).toBe(signerNotAfter);
  });

  it('leaves a healthy Secret alone and schedules its renewal', () => {
    const decision = plan(input());
    expect(decision.action).toBe('none');
    expect(decision).toHaveProperty('recheckAt');
  });

  it.each<[string, Partial<PlanInput>, string, string?]>([
    ['a ServiceAccount without a Secret gets one', { secret: undefined }, 'create', 'Missing'],
    ['a deleted ServiceAccount loses its Secret', { sa: undefined }, 'delete', 'ServiceAccountDeleted'],
    [
      'a namespace that stops being managed loses our Secrets',
      { ns: { labels: { 'ca.istio.io/override': 'false' }, terminating: false } },
      'delete',
      'NamespaceNotManaged',
    ],
    [
      'nothing to do for a deleted ServiceAccount without a Secret',
      { sa: undefined, secret: undefined },
      'none',
    ],
    [
      'a terminating namespace is left to the namespace controller',
      { secret: undefined, ns: { labels: {}, terminating: true } },
      'none',
    ],
    [
      'a Secret of the wrong type is recreated (type is immutable)',
      { secret: healthySecret({ type: 'Opaque' }) },
      'recreate',
      'WrongType',
    ],
    [
      'unusable data is reissued',
      { secret: healthySecret({ dataProblem: 'key.pem does not match the certificate' }) },
      'reissue',
      'InvalidData',
    ],
    [
      'a missing data key is reissued',
      { secret: healthySecret({ dataKeys: ['cert-chain.pem', 'root-cert.pem'] }) },
      'reissue',
      'InvalidData',
    ],
    [
      'a certificate for another identity is reissued',
      { secret: healthySecret({}, { uris: [spiffeIdFor('cluster.local', 'shop', 'other')] }) },
      'reissue',
      'WrongIdentity',
    ],
    [
      'a changed trust domain reissues',
      { policy: { ...input().policy, trustDomain: 'example.org' } },
      'reissue',
      'WrongIdentity',
    ],
    [
      'a certificate no current CA verified is reissued',
      { secret: healthySecret({}, { signedBy: undefined }) },
      'reissue',
      'NotSignedByCurrentCA',
    ],
    [
      'a certificate from the previous signer is reissued',
      { ca: { ...ca, signerFingerprint: 'signer-2' } },
      'reissue',
      'NotSignedByCurrentCA',
    ],
    [
      'an expired certificate is reissued',
      { secret: healthySecret({}, { notBefore: now - 91 * DAY, notAfter: now - 1 }) },
      'reissue',
      'Expired',
    ],
    [
      'a changed key algorithm reissues',
      { policy: { ...input().policy, keyAlgorithm: 'RSA_2048' } },
      'reissue',
      'KeyAlgorithmChanged',
    ],
    [
      'changed DNS names reissue',
      { sa: { uid: 'sa-uid', dnsNames: ['cart.shop.svc'] } },
      'reissue',
      'DnsNamesChanged',
    ],
    [
      'a shortened ttl reissues a certificate that outlives a fresh one',
      { policy: { ...input().policy, ttlMs: DAY } },
      'reissue',
      'TTLShortened',
    ],
    [
      'a certificate inside its grace period is renewed',
      { secret: healthySecret({}, { notBefore: now - 50 * DAY, notAfter: now + 40 * DAY }) },
      'reissue',
      'RenewalDue',
    ],
    [
      'a stale root-cert.pem is refreshed without a new key',
      { ca: { ...ca, rootBundleHash: 'roots-2' } },
      'refreshBundle',
      'StaleRootBundle',
    ],
    ['a stale chain is refreshed', { ca: { ...ca, chainHash: 'chain-2' } }, 'refreshBundle', 'StaleChain'],
    [
      'extra data keys are removed',
      { secret: healthySecret({ dataKeys: ['cert-chain.pem', 'key.pem', 'root-cert.pem', 'extra'] }) },
      'refreshBundle',
      'InvalidData',
    ],
  ])('%s', (_, overrides, action, reason) => {
    const decision = plan(input(overrides));
    expect(decision.action).toBe(action);
    if (reason) expect(decision).toHaveProperty('reason', reason);
  });

  it('never touches a Secret it does not own, and reports it', () => {
    const decision = plan(input({ secret: healthySecret({ owned: false, type: 'Opaque' }) }));
    expect(decision).toMatchObject({ action: 'report', reason: 'ForeignSecret' });
  });

  it('reports nothing about a foreign Secret in a namespace being deleted', () => {
    const decision = plan(
      input({ ns: { labels: {}, terminating: true }, secret: healthySecret({ owned: false }) }),
    );
    expect(decision).toEqual({ action: 'none' });
  });

  it('does not delete a foreign Secret when the ServiceAccount goes away', () => {
    expect(plan(input({ sa: undefined, secret: healthySecret({ owned: false }) }))).toEqual({
      action: 'none',
    });
  });

  it('does not mint while the CA is not ready, and says why', () => {
    const decision = plan(
      input({ secret: undefined, ca: { ready: false, notReadyReason: 'istio-ca-secret is corrupt' } }),
    );
    expect(decision).toMatchObject({
      action: 'report',
      reason: 'CANotReady',
      message: 'istio-ca-secret is corrupt',
    });
  });

  it('reissues a revoked certificate with a new key at once, even when it is otherwise healthy', () => {
    expect(plan(input({ revoked: true }))).toEqual({ action: 'reissue', reason: 'Revoked' });
    expect(plan(input({ revoked: false }))).toMatchObject({ action: 'none' });
  });

  it('does not reissue a revoked certificate in a namespace that is no longer managed: it deletes it', () => {
    const decision = plan(
      input({ revoked: true, ns: { labels: { 'ca.istio.io/override': 'false' }, terminating: false } }),
    );
    expect(decision).toEqual({ action: 'delete', reason: 'NamespaceNotManaged' });
  });

  it('reports a ServiceAccount whose Secret name would be too long', () => {
    const decision = plan(input({ serviceAccount: 'a'.repeat(250), secret: undefined }));
    expect(decision).toMatchObject({ action: 'report', reason: 'NameTooLong' });
  });
});

describe('plan: DNS names', () => {
  const withRule = (patterns: string[], namespaces = ['shop']) => ({
    ...input().policy,
    dnsNames: { ...input().policy.dnsNames, allow: [{ namespaces, patterns }] },
  });
  const requesting = (...dnsNames: string[]) => ({ sa: { uid: 'sa-uid', dnsNames } });
  const carrying = (...dnsNames: string[]) => ({ secret: healthySecret({}, { dnsNames }) });

  it('a requested name outside the namespace is not a reason to reissue a certificate without it', () => {
    expect(plan(input(requesting('www.bank.example', 'kubernetes.default.svc'))).action).toBe('none');
  });

  it('a certificate carrying a name the ServiceAccount may not have is reissued, saying which and why', () => {
    const decision = plan(
      input({
        ...requesting('www.bank.example', 'api.shop.svc'),
        ...carrying('api.shop.svc', 'www.bank.example'),
      }),
    );
    expect(decision).toMatchObject({ action: 'reissue', reason: 'DnsNameNotAllowed' });
    expect(decision).toHaveProperty(
      'message',
      expect.stringContaining('www.bank.example is outside namespace shop'),
    );
  });

  it('a certificate carrying a reserved name is reissued even when it asks for it', () => {
    const decision = plan(
      input({ ...requesting('istiod.istio-system.svc'), ...carrying('istiod.istio-system.svc') }),
    );
    expect(decision).toMatchObject({ action: 'reissue', reason: 'DnsNameNotAllowed' });
    expect(decision).toHaveProperty(
      'message',
      expect.stringContaining("reserved for alcazar's own serving certificate"),
    );
  });

  it('removing the allow rule reissues without the name; with the rule the certificate is current', () => {
    const state = { ...requesting('api.example.com'), ...carrying('api.example.com') };
    expect(plan(input({ ...state, policy: withRule(['api.example.com']) })).action).toBe('none');
    expect(plan(input(state))).toMatchObject({ action: 'reissue', reason: 'DnsNameNotAllowed' });
    expect(plan(input({ ...state, policy: withRule(['api.example.com'], ['other']) }))).toMatchObject({
      reason: 'DnsNameNotAllowed',
    });
  });

  it('adding an allow rule for a requested name reissues with it', () => {
    expect(
      plan(input({ ...requesting('api.example.com'), policy: withRule(['*.example.com']) })),
    ).toMatchObject({
      action: 'reissue',
      reason: 'DnsNamesChanged',
    });
  });

  it('a namespace label that a selector rule matches grants the name; losing it takes it away', () => {
    const policy = {
      ...input().policy,
      dnsNames: {
        ...input().policy.dnsNames,
        allow: [
          {
            namespaces: [],
            namespaceSelector: { matchLabels: { tier: 'edge' } },
            patterns: ['edge.example.com'],
          },
        ],
      },
    };
    const labelled = { ns: { labels: { tier: 'edge' }, terminating: false }, policy };
    expect(plan(input({ ...requesting('edge.example.com'), ...labelled }))).toMatchObject({
      reason: 'DnsNamesChanged',
    });
    expect(
      plan(input({ ...requesting('edge.example.com'), ...carrying('edge.example.com'), ...labelled })).action,
    ).toBe('none');
    expect(
      plan(input({ ...requesting('edge.example.com'), ...carrying('edge.example.com'), policy })),
    ).toMatchObject({
      reason: 'DnsNameNotAllowed',
    });
  });

  it('takes the cluster domain and allow rules from the CertificateAuthority, the reserved names from the caller', () => {
    const parsed = parseCertificateAuthoritySpec({
      clusterDomain: 'corp.internal',
      workloadCertificates: {
        dnsNames: { allow: [{ namespaces: ['shop'], patterns: ['api.example.com'] }] },
      },
    });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(workloadPolicy(parsed.config, ['ca.example.com']).dnsNames).toEqual({
      clusterDomain: 'corp.internal',
      allow: [{ namespaces: ['shop'], patterns: ['api.example.com'] }],
      reservedDnsNames: ['ca.example.com'],
    });
  });

  it('a name no longer allowed outranks renewal and algorithm changes as the reason', () => {
    const decision = plan(
      input({
        secret: healthySecret(
          {},
          { dnsNames: ['www.bank.example'], notBefore: now - 50 * DAY, notAfter: now + 40 * DAY },
        ),
        policy: { ...input().policy, keyAlgorithm: 'RSA_2048' },
      }),
    );
    expect(decision).toMatchObject({ reason: 'DnsNameNotAllowed' });
  });
});

describe('renewal', () => {
  const policy = { gracePeriodRatio: 0.5, minGracePeriodMs: 10 * 60_000 };

  it('keeps half of a 90-day lifetime as grace, like Citadel', () => {
    expect(gracePeriodMs(90 * DAY, policy)).toBe(45 * DAY);
  });

  it('never keeps less than the minimum grace', () => {
    expect(gracePeriodMs(10 * 60_000, { gracePeriodRatio: 0.1, minGracePeriodMs: 5 * 60_000 })).toBe(
      5 * 60_000,
    );
  });

  it('caps grace below the lifetime so a short-lived certificate is not due at issuance', () => {
    expect(gracePeriodMs(60_000, policy)).toBe(54_000);
  });

  it('renews between notAfter − grace and 5% of grace earlier, the same for the same serial', () => {
    const cert = { notBefore: now, notAfter: now + 90 * DAY, serial: 'cafe' };
    const at = renewAt(cert, policy);
    expect(at).toBeLessThanOrEqual(now + 45 * DAY);
    expect(at).toBeGreaterThanOrEqual(now + 45 * DAY - 0.05 * 45 * DAY);
    expect(renewAt(cert, policy)).toBe(at);
  });

  it('spreads certificates minted together over the jitter window', () => {
    const fractions = Array.from({ length: 200 }, (_, i) => jitterFraction(`serial-${i}`));
    expect(Math.min(...fractions)).toBeLessThan(0.1);
    expect(Math.max(...fractions)).toBeGreaterThan(0.9);
  });

  it.each([
    // Fixed stand-ins for alcazar's random 128-bit serials, so the test is the same every run.
    ['128-bit random serials', (i: number) => createHash('sha256').update(`${i}`).digest('hex').slice(0, 32)],
    ['consecutive serials (another CA)', (i: number) => (i + 1).toString(16).padStart(2, '0')],
  ])('puts %s evenly into tenths of the window', (_, serialOf) => {
    const tenths = new Array<number>(10).fill(0);
    for (let i = 0; i < 5000; i++) {
      const f = jitterFraction(serialOf(i));
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThan(1);
      tenths[Math.floor(f * 10)]! += 1;
    }
    // 500 expected in each; a fair spread stays well within ±20%.
    for (const count of tenths) expect(count).toBeGreaterThan(400);
    for (const count of tenths) expect(count).toBeLessThan(600);
  });

  it('backdates by the skew allowance but at most a tenth of a short lifetime', () => {
    expect(backdateMs(90 * DAY, 5 * 60_000)).toBe(5 * 60_000);
    expect(backdateMs(60_000, 5 * 60_000)).toBe(6_000);
  });
});

describe('namespace targeting', () => {
  const targeting = { managedByDefault: true, alwaysManaged: ['kube-system'] };
  it.each<[string, Record<string, string>, boolean, boolean?]>([
    ['no labels → the default', {}, true],
    ['no labels with the default off', {}, false, false],
    ['override=true wins over env', { 'ca.istio.io/override': 'true', 'ca.istio.io/env': 'elsewhere' }, true],
    [
      'override=false wins over env',
      { 'ca.istio.io/override': 'false', 'ca.istio.io/env': 'istio-system' },
      false,
    ],
    ['env naming our namespace', { 'ca.istio.io/env': 'istio-system' }, true, false],
    ['env naming another CA', { 'ca.istio.io/env': 'other-ca' }, false],
    ['an override that is neither true nor false is ignored', { 'ca.istio.io/override': 'yes' }, true],
  ])('%s', (_, labels, expected, byDefault = true) => {
    expect(
      isManagedNamespace('shop', labels, { ...targeting, managedByDefault: byDefault }, 'istio-system'),
    ).toBe(expected);
  });

  it('always manages listed namespaces, even when labelled off', () => {
    expect(
      isManagedNamespace('kube-system', { 'ca.istio.io/override': 'false' }, targeting, 'istio-system'),
    ).toBe(true);
  });
});

describe('names', () => {
  it('maps ServiceAccounts to istio.<sa> and back', () => {
    expect(workloadSecretName('default')).toBe('istio.default');
    expect(serviceAccountOfSecret('istio.default')).toBe('default');
    expect(serviceAccountOfSecret('istio.a.b')).toBe('a.b');
    expect(serviceAccountOfSecret('istio.')).toBeUndefined();
    expect(serviceAccountOfSecret('other')).toBeUndefined();
  });
});
