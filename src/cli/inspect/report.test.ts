import type { V1Secret } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSelfSigned, SELF_SIGNED_SECRET, SELF_SIGNED_SECRET_TYPE } from '../../ca/authority.js';
import { contentDigest } from '../../ca/content-digest.js';
import { renewAt } from '../../controllers/workload-secrets/renewal.js';
import { buildCrl, normalizeSerialHex } from '../../pki/crl.js';
import {
  decodeCertificatesPem,
  encodePem,
  generateKeyPair,
  inspectCertificate,
  privateKeyToPem,
} from '../../pki/index.js';
import { createTestCa, issueTestLeaf, type TestCa } from '../../pki/testing.js';
import type { InspectTarget } from './args.js';
import { exitStatusOf, formatInspectText } from './format.js';
import type { InspectObservation } from './gather.js';
import { buildInspectReport, type InspectReport } from './report.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('buildInspectReport', () => {
  const now = new Date(Date.UTC(2026, 0, 15, 12));
  const issuedAt = new Date(now.getTime() - DAY);
  const target: InspectTarget = { namespace: 'shop', serviceAccount: 'cart', secretName: 'istio.cart' };
  let ca: TestCa;
  let caSecret: V1Secret;

  const b64 = (text: string) => Buffer.from(text).toString('base64');

  beforeAll(async () => {
    ca = await createTestCa({ notBefore: new Date(now.getTime() - 30 * DAY) });
    caSecret = {
      type: SELF_SIGNED_SECRET_TYPE,
      data: { 'ca-cert.pem': b64(ca.root.pem), 'ca-key.pem': b64(privateKeyToPem(ca.keys.privateKey)) },
    };
  });

  async function workloadSecret(
    options: {
      serviceAccount?: string;
      lifetimeMs?: number;
      notBefore?: Date;
      root?: string;
      dnsNames?: string[];
    } = {},
  ): Promise<V1Secret> {
    const leaf = await issueTestLeaf(ca.issuer, {
      ...(options.dnsNames && { dnsNames: options.dnsNames }),
      notBefore: options.notBefore ?? issuedAt,
      namespace: 'shop',
      serviceAccount: options.serviceAccount ?? 'cart',
      lifetimeMs: options.lifetimeMs ?? 90 * DAY,
    });
    return {
      type: 'istio.io/key-and-cert',
      metadata: {
        name: 'istio.cart',
        namespace: 'shop',
        labels: { 'app.kubernetes.io/managed-by': 'alcazar' },
        ownerReferences: [
          { apiVersion: 'v1', kind: 'ServiceAccount', name: 'cart', uid: 'sa-uid', controller: true },
        ],
      },
      data: {
        'cert-chain.pem': b64(leaf.certificate.pem),
        'key.pem': b64(privateKeyToPem(leaf.keys.privateKey)),
        'root-cert.pem': b64(options.root ?? ca.root.pem),
      },
    };
  }

  function observation(secret: V1Secret, overrides: Partial<InspectObservation> = {}): InspectObservation {
    return {
      secret,
      caNamespace: 'istio-system',
      certificateAuthority: { ok: true, value: undefined },
      caSecrets: {
        'istio-ca-secret': { ok: true, value: caSecret },
        cacerts: { ok: true, value: undefined },
      },
      serviceAccount: { ok: true, value: { metadata: { name: 'cart', uid: 'sa-uid' } } },
      namespace: { ok: true, value: { metadata: { name: 'shop' } } },
      ...overrides,
    };
  }

  const reasons = (report: InspectReport) => report.problems.map((p) => p.reason);

  it('says whether the content digest verifies under the CA: verified, mismatch after an edit, absent', async () => {
    const secret = await workloadSecret();
    const authority = await loadSelfSigned(
      Object.fromEntries(Object.entries(caSecret.data!).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
      'istio-system/istio-ca-secret',
      { now, minRemainingMs: 60_000 },
    );
    const bytes = (key: string) => Buffer.from(secret.data![key]!, 'base64');
    const digest = contentDigest(authority, {
      'cert-chain.pem': bytes('cert-chain.pem'),
      'key.pem': bytes('key.pem'),
      'root-cert.pem': bytes('root-cert.pem'),
    });
    const annotated: V1Secret = {
      ...secret,
      metadata: { ...secret.metadata, annotations: { 'alcazar.dev/content-digest': digest } },
    };
    const report = (s: V1Secret, overrides: Partial<InspectObservation> = {}) =>
      buildInspectReport(target, observation(s, overrides), now);
    expect((await report(annotated)).contentDigest).toBe('verified');
    const withKey = `${Buffer.from(annotated.data!['key.pem']!, 'base64').toString()}\n`;
    const edited = { ...annotated, data: { ...annotated.data, 'key.pem': b64(withKey) } };
    expect((await report(edited)).contentDigest).toBe('mismatch');
    // The digest covers the leaf and key.pem; the bundle is checked on its own.
    const newBundle = { ...annotated, data: { ...annotated.data, 'root-cert.pem': b64(`${ca.root.pem}\n`) } };
    expect((await report(newBundle)).contentDigest).toBe('verified');
    // As the controller reads cert-chain.pem: a block after the leaf that is not a certificate.
    const chain = `${Buffer.from(annotated.data!['cert-chain.pem']!, 'base64').toString()}${encodePem('PUBLIC KEY', Buffer.from('x'))}`;
    const extraBlock = { ...annotated, data: { ...annotated.data, 'cert-chain.pem': b64(chain) } };
    expect((await report(extraBlock)).contentDigest).toBe('mismatch');
    expect((await report(secret)).contentDigest).toBe('absent');
    const noCa = {
      caSecrets: {
        'istio-ca-secret': { ok: true, value: undefined },
        cacerts: { ok: true, value: undefined },
      },
    };
    expect((await report(annotated, noCa as Partial<InspectObservation>)).contentDigest).toBeNull();
  });

  it('reports a certificate listed in the published CRL as revoked', async () => {
    const secret = await workloadSecret();
    const serial = normalizeSerialHex(
      inspectCertificate(decodeCertificatesPem(Buffer.from(secret.data!['cert-chain.pem']!, 'base64'))[0]!)
        .serialNumberHex,
    )!;
    const crl = (serials: string[]) =>
      buildCrl({
        issuer: ca.issuer,
        crlNumber: 1n,
        thisUpdate: new Date(now.getTime() - HOUR),
        nextUpdate: new Date(now.getTime() + DAY),
        entries: serials.map((s) => ({ serial: s, revokedAt: now, reason: 'keyCompromise' as const })),
      }).pem;
    const withCrl = (pem: string) =>
      observation(secret, { crl: { ok: true, value: { data: { 'ca-crl.pem': pem } } } });
    const revoked = await buildInspectReport(target, withCrl(crl([serial])), now);
    expect(reasons(revoked)).toEqual(['Revoked']);
    expect(revoked.problems[0]!.message).toContain('keyCompromise');
    expect(exitStatusOf(revoked)).toBe(1);
    expect(reasons(await buildInspectReport(target, withCrl(crl(['01'])), now))).toEqual([]);
  });

  it('a Secret the controller issued is healthy: identity, both chains, key, renewal by the controller’s renewAt', async () => {
    const report = await buildInspectReport(target, observation(await workloadSecret()), now);

    expect(report.problems).toEqual([]);
    expect(report.warnings).toEqual([]);
    expect(report.healthy).toBe(true);
    expect(exitStatusOf(report)).toBe(0);
    expect(report.spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/cart');
    expect(report.spiffeIdMatches).toBe(true);
    expect(report.keyType).toBe('ECDSA_P256');
    expect(report.issuer).toBe('O=cluster.local');
    expect(report.timeLeft).toBe('89d 0h');
    expect(report.chain.secretRoot).toEqual({ verified: true, source: 'root-cert.pem' });
    expect(report.chain.caBundle).toEqual({ verified: true, source: `istio-system/${SELF_SIGNED_SECRET}` });
    expect(report.keyMatches).toBe(true);
    expect(report.secret).toMatchObject({ managedByAlcazar: true, type: 'istio.io/key-and-cert' });
    expect(report.secret.owners).toEqual([
      { kind: 'ServiceAccount', name: 'cart', uid: 'sa-uid', controller: true },
    ]);
    const expectedRenewAt = renewAt(
      {
        notBefore: Date.parse(report.notBefore!),
        notAfter: Date.parse(report.notAfter!),
        serial: report.serial!,
      },
      { gracePeriodRatio: 0.5, minGracePeriodMs: 10 * MINUTE },
    );
    expect(report.renewAt).toBe(new Date(expectedRenewAt).toISOString());
    expect(report.renewalDue).toBe(false);
    expect(report.controller).toEqual({ action: 'none', reason: null, message: 'nothing to do' });
    expect(report.configSource).toBe('built-in defaults');
  });

  it('a key.pem from another Secret is a KeyMismatch problem, and the report never shows the key', async () => {
    const secret = await workloadSecret();
    const other = await generateKeyPair('ECDSA_P256');
    secret.data!['key.pem'] = b64(privateKeyToPem(other.privateKey));

    const report = await buildInspectReport(target, observation(secret), now);

    expect(report.keyMatches).toBe(false);
    expect(reasons(report)).toEqual(['KeyMismatch']);
    expect(report.problems[0]!.message).toMatch(/key\.pem/);
    expect(exitStatusOf(report)).toBe(1);
    expect(report.controller).toMatchObject({ action: 'reissue', reason: 'InvalidData' });
    const printed = `${JSON.stringify(report)}\n${formatInspectText(report, now)}`;
    expect(printed).not.toContain('PRIVATE KEY');
    expect(printed).not.toContain(secret.data!['key.pem']);
  });

  it('a certificate for another ServiceAccount is the wrong identity', async () => {
    const report = await buildInspectReport(
      target,
      observation(await workloadSecret({ serviceAccount: 'web' })),
      now,
    );
    expect(report.spiffeIdMatches).toBe(false);
    expect(reasons(report)).toEqual(['SpiffeIdMismatch']);
    expect(report.controller).toMatchObject({ action: 'reissue', reason: 'WrongIdentity' });
  });

  it('an expired certificate is a problem, and so is its chain at this moment; renewal is due', async () => {
    const secret = await workloadSecret({ notBefore: new Date(now.getTime() - 3 * DAY), lifetimeMs: DAY });
    const report = await buildInspectReport(target, observation(secret), now);

    expect(report.expired).toBe(true);
    expect(report.timeLeft).toBe('expired 2d 0h ago');
    expect(report.renewalDue).toBe(true);
    expect(reasons(report)).toEqual(['Expired', 'ChainUntrustedBySecretRoot', 'ChainUntrustedByCa']);
  });

  it('a root-cert.pem from another CA fails the Secret-root chain only', async () => {
    const stranger = await createTestCa({ notBefore: issuedAt, trustDomain: 'elsewhere' });
    const report = await buildInspectReport(
      target,
      observation(await workloadSecret({ root: stranger.root.pem })),
      now,
    );
    expect(report.chain.secretRoot.verified).toBe(false);
    expect(report.chain.caBundle.verified).toBe(true);
    expect(reasons(report)).toEqual(['ChainUntrustedBySecretRoot']);
    expect(report.controller).toMatchObject({ action: 'refreshBundle', reason: 'StaleRootBundle' });
  });

  it('an unreadable CA Secret is a warning: the CA bundle is not checked, the Secret can still be healthy', async () => {
    const report = await buildInspectReport(
      target,
      observation(await workloadSecret(), {
        caSecrets: {
          'istio-ca-secret': { ok: false, error: 'HTTP 403: forbidden' },
          cacerts: { ok: true, value: undefined },
        },
      }),
      now,
    );
    expect(report.healthy).toBe(true);
    expect(report.chain.caBundle).toMatchObject({ verified: null, source: 'istio-system/istio-ca-secret' });
    expect(report.warnings.map((w) => w.reason)).toEqual(['CaBundleUnavailable']);
    expect(report.warnings[0]!.message).toContain('HTTP 403');
    expect(report.controller).toBeNull();
    expect(formatInspectText(report, now)).toMatch(/Chain \(CA bundle\): +not checked \(cannot read/);
  });

  it('a CA Secret that cannot sign is a warning, and the controller would report CANotReady', async () => {
    const otherKey = await generateKeyPair('ECDSA_P256');
    const broken: V1Secret = {
      ...caSecret,
      data: { ...caSecret.data, 'ca-key.pem': b64(privateKeyToPem(otherKey.privateKey)) },
    };
    const report = await buildInspectReport(
      target,
      observation(await workloadSecret(), {
        caSecrets: {
          'istio-ca-secret': { ok: true, value: broken },
          cacerts: { ok: true, value: undefined },
        },
      }),
      now,
    );
    expect(report.healthy).toBe(true);
    expect(report.chain.caBundle.verified).toBeNull();
    expect(report.warnings[0]!.message).toContain('ca-key.pem does not match ca-cert.pem');
    expect(report.controller).toMatchObject({ action: 'report', reason: 'CANotReady' });
  });

  it('the trust domain and grace policy come from the CertificateAuthority', async () => {
    const report = await buildInspectReport(
      target,
      observation(await workloadSecret(), {
        certificateAuthority: { ok: true, value: { spec: { trustDomain: 'example.org' } } },
      }),
      now,
    );
    expect(report.configSource).toBe('CertificateAuthority default');
    expect(report.expectedSpiffeId).toBe('spiffe://example.org/ns/shop/sa/cart');
    expect(reasons(report)).toEqual(['SpiffeIdMismatch']);
  });

  it('a Secret whose name names no ServiceAccount is checked without an expected identity', async () => {
    const secret = await workloadSecret();
    secret.metadata!.labels = {};
    const report = await buildInspectReport(
      { namespace: 'shop', secretName: 'my-tls' },
      observation(secret, { serviceAccount: undefined }),
      now,
    );
    expect(report.serviceAccount).toBeNull();
    expect(report.spiffeIdMatches).toBeNull();
    expect(report.controller).toBeNull();
    expect(report.healthy).toBe(true);
    expect(report.warnings.map((w) => w.reason)).toEqual(['NotManagedByAlcazar']);
  });

  it('names refused by the DNS name policy are a warning, with which and why', async () => {
    const report = await buildInspectReport(
      target,
      observation(await workloadSecret({ dnsNames: ['api.shop.svc'] }), {
        serviceAccount: {
          ok: true,
          value: {
            metadata: {
              name: 'cart',
              uid: 'sa-uid',
              annotations: {
                'alcazar.dev/dns-names': 'api.shop.svc,istiod.istio-system.svc,www.bank.example',
              },
            },
          },
        },
      }),
      now,
    );
    expect(report.healthy).toBe(true);
    expect(report.dnsNamesRefused.map((r) => [r.name, r.reason])).toEqual([
      ['istiod.istio-system.svc', 'Reserved'],
      ['www.bank.example', 'OutsideNamespace'],
    ]);
    expect(report.warnings.map((w) => w.reason)).toEqual(['DNSNameRefused', 'DNSNameRefused']);
    expect(report.controller).toEqual({ action: 'none', reason: null, message: 'nothing to do' });
    expect(formatInspectText(report, now)).toMatch(
      /DNS names refused: +istiod\.istio-system\.svc \(Reserved\), www\.bank\.example \(OutsideNamespace\)/,
    );
  });

  it('names given to the controller as --csr-dns-names are reserved too', async () => {
    const secret = await workloadSecret({ dnsNames: ['ca.shop.svc'] });
    const sa = { ok: true as const, value: { metadata: { name: 'cart', uid: 'sa-uid' } } };
    const defaults = await buildInspectReport(target, observation(secret, { serviceAccount: sa }), now);
    expect(defaults.problems.map((p) => p.reason)).not.toContain('DnsNameNotAllowed');
    const reserved = await buildInspectReport(
      target,
      { ...observation(secret, { serviceAccount: sa }), reservedDnsNames: ['ca.shop.svc'] },
      now,
    );
    expect(reserved.problems).toContainEqual({
      reason: 'DnsNameNotAllowed',
      message: expect.stringMatching(/ca\.shop\.svc/),
    });
  });

  it('a certificate carrying a name the policy does not allow is a problem the controller would fix', async () => {
    const secret = await workloadSecret({ dnsNames: ['www.bank.example'] });
    const report = await buildInspectReport(target, observation(secret), now);
    expect(reasons(report)).toEqual(['DnsNameNotAllowed']);
    expect(report.problems[0]!.message).toContain('www.bank.example, which is outside namespace shop');
    expect(report.controller).toMatchObject({ action: 'reissue', reason: 'DnsNameNotAllowed' });
    expect(report.controller!.message).toContain('DnsNameNotAllowed');
  });

  it('an allow rule in the CertificateAuthority makes the same name healthy', async () => {
    const secret = await workloadSecret({ dnsNames: ['www.bank.example'] });
    const report = await buildInspectReport(
      target,
      observation(secret, {
        certificateAuthority: {
          ok: true,
          value: {
            spec: {
              workloadCertificates: {
                dnsNames: { allow: [{ namespaces: ['shop'], patterns: ['*.bank.example'] }] },
              },
            },
          },
        },
        serviceAccount: {
          ok: true,
          value: {
            metadata: {
              name: 'cart',
              uid: 'sa-uid',
              annotations: { 'alcazar.dev/dns-names': 'www.bank.example' },
            },
          },
        },
      }),
      now,
    );
    expect(report.problems).toEqual([]);
    expect(report.dnsNamesRefused).toEqual([]);
    expect(report.controller).toMatchObject({ action: 'none' });
  });

  it('a Secret missing its data reports what is missing', async () => {
    const secret: V1Secret = { type: 'Opaque', metadata: { name: 'istio.cart' }, data: {} };
    const report = await buildInspectReport(target, observation(secret), now);
    expect(reasons(report)).toEqual(['WrongType', 'InvalidData', 'InvalidData', 'InvalidData']);
    expect(report.spiffeId).toBeNull();
    expect(report.keyMatches).toBeNull();
    expect(report.chain.secretRoot.verified).toBeNull();
  });
});
