// The CA end to end against a real control plane and the real controller
// process: bootstrapping and keeping istio-ca-secret, refusing a CA Secret it
// cannot use (and never replacing it), plugged-in CAs changing under a running
// controller, and the CertificateAuthority resource (validation, configuration,
// status). Every test has a CA namespace of its own, so its own root. A failing
// assertion never prints a Secret: key material is compared by digest or not at all.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { ApiException, type V1Secret } from '@kubernetes/client-node';
import { describe, expect, inject, it } from 'vitest';
import {
  decodeCertificatesPem,
  inspectCertificate,
  type KeyPair,
  privateKeyToPem,
} from '../../src/pki/index.js';
import { createTestCa, createTestIntermediate, issueTestLeaf, type TestCa } from '../../src/pki/testing.js';
import type { ControllerProcess, LogLine } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { statusCodeOf } from './support/kube.js';
import { waitFor } from './support/wait.js';
import * as workloads from './support/workload.js';

const harness = useHarness({ cleanup: 'each', certificateAuthority: true });
const { core, customObjects } = harness;

const CA_SECRET = 'istio-ca-secret';
const CA_SECRET_TYPE = 'istio.io/ca-root';
const PLUGGED_IN_SECRET = 'cacerts';
const DAY_MS = 24 * 60 * 60 * 1000;

const controllerFor = (caNamespace: string) => harness.controller({ caNamespace });
const startTogether = (caNamespace: string, count: number) => harness.controllers({ caNamespace }, count);
const namespace = (prefix: string) => harness.namespace(prefix);

/** A fresh namespace whose ServiceAccounts (default plus `extra`) all exist before it returns. */
async function workloadNamespace(extra: string[] = []): Promise<{ name: string; serviceAccounts: string[] }> {
  const name = await namespace('w');
  for (const sa of extra)
    await core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: sa } } });
  await waitFor(`ServiceAccount default in ${name}`, async () =>
    (await core.listNamespacedServiceAccount({ namespace: name })).items.some(
      (sa) => sa.metadata?.name === 'default',
    ),
  );
  return { name, serviceAccounts: ['default', ...extra] };
}

const useCertificateAuthority = (spec: Record<string, unknown>) =>
  workloads.setCertificateAuthoritySpec(customObjects, spec);

// ---- CA material ----

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const decoded = (secret: V1Secret, key: string) => Buffer.from(secret.data?.[key] ?? '', 'base64');
const keyPemOf = (keys: KeyPair) => privateKeyToPem(keys.privateKey);

async function testCa(trustDomain = 'cluster.local'): Promise<TestCa> {
  return createTestCa({ notBefore: new Date(Date.now() - 60_000), trustDomain });
}

function selfSignedData(ca: TestCa): Record<string, string> {
  return { 'ca-cert.pem': ca.root.pem, 'ca-key.pem': keyPemOf(ca.keys) };
}

async function createCaSecret(
  ns: string,
  name: string,
  type: string,
  stringData: Record<string, string>,
): Promise<V1Secret> {
  return core.createNamespacedSecret({ namespace: ns, body: { metadata: { name }, type, stringData } });
}

/** Replaces the data of a Secret (dropping keys not given), as an operator fixing it would. */
async function replaceSecretData(
  ns: string,
  name: string,
  stringData: Record<string, string>,
): Promise<V1Secret> {
  const current = await core.readNamespacedSecret({ namespace: ns, name });
  const data = Object.fromEntries(
    Object.entries(stringData).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  );
  return core.replaceNamespacedSecret({ namespace: ns, name, body: { ...current, data } });
}

function waitForCaSecret(ns: string, accept: (s: V1Secret) => boolean = () => true): Promise<V1Secret> {
  return waitFor(`Secret ${ns}/${CA_SECRET}`, async () => {
    const secret = await workloads.readSecret(core, ns, CA_SECRET);
    return secret && accept(secret) ? secret : undefined;
  });
}

/** The certificates of a workload Secret: cert-chain.pem and root-cert.pem, as DER. */
function chainOf(secret: V1Secret) {
  const { certChain, root } = workloads.pemsOf(secret);
  return { chain: decodeCertificatesPem(certChain), roots: decodeCertificatesPem(root) };
}

const spiffeId = (trustDomain: string, ns: string, sa: string) => `spiffe://${trustDomain}/ns/${ns}/sa/${sa}`;

// ---- what the controller says ----

const isRunning = (proc: ControllerProcess) => {
  try {
    process.kill(proc.pid, 0);
    return true;
  } catch {
    return false;
  }
};

const linesSince = (proc: ControllerProcess, from: number) => proc.lines.slice(from);

const isIssueOf = (line: LogLine, namespace: string, serviceAccount: string) =>
  line.msg === 'issued workload certificate' &&
  line.namespace === namespace &&
  line.serviceAccount === serviceAccount;

function waitForInitialReconcile(proc: ControllerProcess): Promise<LogLine> {
  return proc.waitForLog('initial reconcile finished', (l) => l.msg === 'initial reconcile finished');
}

type CertificateAuthorityView = Awaited<ReturnType<typeof workloads.getCertificateAuthority>>;

const conditionOf = (ca: CertificateAuthorityView, type: string) =>
  ca.status?.conditions?.find((c) => c.type === type);

async function waitForCertificateAuthority(
  description: string,
  accept: (ca: CertificateAuthorityView) => boolean,
): Promise<CertificateAuthorityView> {
  let last: CertificateAuthorityView | undefined;
  try {
    return await waitFor(`CertificateAuthority default: ${description}`, async () => {
      last = await workloads.getCertificateAuthority(customObjects);
      return accept(last) ? last : undefined;
    });
  } catch (err) {
    const seen = last ? { generation: last.metadata.generation, status: last.status } : 'nothing';
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(seen)}`);
  }
}

const current = (ca: CertificateAuthorityView) => ca.status?.observedGeneration === ca.metadata.generation;

/** The apiserver's answer to storing this spec, which must be a refusal. */
async function refusal(spec: Record<string, unknown>): Promise<{ code: number; message: string }> {
  try {
    await workloads.setCertificateAuthoritySpec(customObjects, spec);
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const body = err.body as string | { message?: string };
    const message =
      typeof body === 'string' ? (JSON.parse(body) as { message?: string }).message : body.message;
    return { code: err.code, message: message ?? '' };
  }
  throw new Error(`the apiserver accepted the spec ${JSON.stringify(spec)}`);
}

describe('the CA Secret in self-signed mode', () => {
  it('bootstraps istio-ca-secret in an empty CA namespace with a ten-year O=<trust domain> root that workload Secrets chain to', async () => {
    const caNs = await namespace('ca');
    const wns = await workloadNamespace();
    await controllerFor(caNs);

    const caSecret = await waitForCaSecret(caNs);
    expect(caSecret.type).toBe(CA_SECRET_TYPE);
    expect(Object.keys(caSecret.data ?? {}).sort()).toEqual(['ca-cert.pem', 'ca-key.pem']);
    const [rootDer, ...more] = decodeCertificatesPem(decoded(caSecret, 'ca-cert.pem'));
    expect(more).toHaveLength(0);
    const root = inspectCertificate(rootDer!);
    expect(root.subject).toBe('O=cluster.local');
    expect(root.issuer).toBe(root.subject);
    expect(root.isCA).toBe(true);
    expect(root.keyUsage).toEqual(expect.arrayContaining(['keyCertSign', 'cRLSign']));
    const lifetimeDays = (root.notAfter.getTime() - root.notBefore.getTime()) / DAY_MS;
    expect(lifetimeDays).toBeGreaterThan(3649);
    expect(lifetimeDays).toBeLessThan(3651);

    const workload = await workloads.waitForWorkloadSecret(core, wns.name, 'default');
    expect(workloads.opensslVerify(workload)).toContain('OK');
    const { chain, roots } = chainOf(workload);
    expect(chain).toHaveLength(1);
    expect(roots).toHaveLength(1);
    expect(roots[0]!.equals(rootDer!), 'root-cert.pem is the root in istio-ca-secret').toBe(true);
  });

  it('uses the built-in defaults (trust domain cluster.local) when there is no CertificateAuthority', async () => {
    await workloads.deleteCertificateAuthority(customObjects);
    expect(
      statusCodeOf(await workloads.getCertificateAuthority(customObjects).catch((e: unknown) => e)),
    ).toBe(404);
    const caNs = await namespace('ca');
    const wns = await workloadNamespace();
    await controllerFor(caNs);

    const workload = await workloads.waitForWorkloadSecret(core, wns.name, 'default');
    expect(workloads.leafOf(workload).uris).toEqual([spiffeId('cluster.local', wns.name, 'default')]);
    const caSecret = await waitForCaSecret(caNs);
    expect(inspectCertificate(decoded(caSecret, 'ca-cert.pem')).subject).toBe('O=cluster.local');
  });

  it('uses an existing istio-ca-secret as it is and never rewrites it', async () => {
    const caNs = await namespace('ca');
    const ca = await testCa();
    const created = await createCaSecret(caNs, CA_SECRET, CA_SECRET_TYPE, selfSignedData(ca));
    const wns = await workloadNamespace();
    const proc = await controllerFor(caNs);

    const workload = await workloads.waitForWorkloadSecret(core, wns.name, 'default');
    expect(chainOf(workload).roots.map((r) => r.toString('base64'))).toEqual([
      ca.root.der.toString('base64'),
    ]);
    expect(workloads.opensslVerify(workload)).toContain('OK');
    const loaded = await proc.waitForLog('CA loaded', (l) => l.msg === 'CA loaded');
    expect(loaded.signer).toBe(inspectCertificate(ca.root.der).fingerprintSha256);
    expect(proc.lines.some((l) => l.msg.startsWith('generated a new self-signed root'))).toBe(false);

    const after = await workloads.readSecret(core, caNs, CA_SECRET);
    expect(after?.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    expect(after?.metadata?.uid).toBe(created.metadata?.uid);
  });

  it('creates exactly one root when two controllers start at the same time on an empty CA namespace', async () => {
    const caNs = await namespace('ca');
    const wns = await workloadNamespace(['api', 'db', 'web']);
    const [a, b] = (await startTogether(caNs, 2)) as [ControllerProcess, ControllerProcess];

    const caSecret = await waitForCaSecret(caNs);
    const rootDer = decoded(caSecret, 'ca-cert.pem');
    const fingerprint = inspectCertificate(rootDer).fingerprintSha256;
    for (const proc of [a, b]) {
      const loaded = await proc.waitForLog('CA loaded', (l) => l.msg === 'CA loaded');
      expect(loaded.signer).toBe(fingerprint);
    }
    const generated = [...a.lines, ...b.lines].filter((l) =>
      l.msg.startsWith('generated a new self-signed root'),
    );
    expect(generated).toHaveLength(1);

    for (const sa of wns.serviceAccounts) {
      const workload = await workloads.waitForWorkloadSecret(core, wns.name, sa);
      const { roots } = chainOf(workload);
      expect(roots.map((r) => r.toString('base64'))).toEqual(
        decodeCertificatesPem(rootDer).map((r) => r.toString('base64')),
      );
      expect(workloads.opensslVerify(workload)).toContain('OK');
    }
    const after = await workloads.readSecret(core, caNs, CA_SECRET);
    expect(after?.metadata?.resourceVersion).toBe(caSecret.metadata?.resourceVersion);
  });

  it('re-creates a deleted istio-ca-secret with the same root and leaves workload Secrets alone', async () => {
    const caNs = await namespace('ca');
    const wns = await workloadNamespace(['api']);
    const proc = await controllerFor(caNs);
    const original = await waitForCaSecret(caNs);
    const before = new Map<string, V1Secret>();
    for (const sa of wns.serviceAccounts)
      before.set(sa, await workloads.waitForWorkloadSecret(core, wns.name, sa));

    // The issuing log line follows the Secret's creation: wait for it, so only later issues count below.
    for (const sa of wns.serviceAccounts) {
      await proc.waitForLog(`the issue for ${sa}`, (l) => isIssueOf(l, wns.name, sa));
    }
    const from = proc.lines.length;
    await core.deleteNamespacedSecret({ namespace: caNs, name: CA_SECRET });
    const restored = await waitForCaSecret(caNs, (s) => s.metadata?.uid !== original.metadata?.uid);
    expect(decoded(restored, 'ca-cert.pem').toString()).toBe(decoded(original, 'ca-cert.pem').toString());
    // Compared by digest: a failing assertion must not print key material.
    expect(sha256(decoded(restored, 'ca-key.pem'))).toBe(sha256(decoded(original, 'ca-key.pem')));
    expect(restored.type).toBe(CA_SECRET_TYPE);
    await proc.waitForLog(
      'the re-creation warning',
      (l) => l.level === 'warn' && l.msg.includes('re-created'),
    );

    // A ServiceAccount added afterwards is served by the same root; by then any reissue would have run.
    await core.createNamespacedServiceAccount({ namespace: wns.name, body: { metadata: { name: 'late' } } });
    const late = await workloads.waitForWorkloadSecret(core, wns.name, 'late');
    expect(decoded(late, 'root-cert.pem').toString()).toBe(decoded(original, 'ca-cert.pem').toString());
    for (const [sa, secret] of before) {
      const now = await workloads.readSecret(core, wns.name, `istio.${sa}`);
      expect(now?.metadata?.resourceVersion, `istio.${sa} was rewritten`).toBe(
        secret.metadata?.resourceVersion,
      );
    }
    const reissued = linesSince(proc, from).filter((l) =>
      wns.serviceAccounts.some((sa) => isIssueOf(l, wns.name, sa)),
    );
    expect(reissued).toEqual([]);
  });
});

interface Corruption {
  what: string;
  reason: string;
  logged: string;
  data: () => Promise<Record<string, string>>;
}

const corruptions: Corruption[] = [
  {
    what: 'garbage in ca-cert.pem',
    reason: 'Unparsable',
    logged: 'ca-cert.pem is not a PEM certificate',
    data: async () => ({
      'ca-cert.pem': 'this is not a certificate\n',
      'ca-key.pem': keyPemOf((await testCa()).keys),
    }),
  },
  {
    what: 'a ca-key.pem that does not match ca-cert.pem',
    reason: 'KeyMismatch',
    logged: 'ca-key.pem does not match ca-cert.pem',
    data: async () => ({
      'ca-cert.pem': (await testCa()).root.pem,
      'ca-key.pem': keyPemOf((await testCa()).keys),
    }),
  },
  {
    what: 'a ca-cert.pem that is not a CA',
    reason: 'NotACA',
    logged: 'ca-cert.pem is not a CA certificate',
    data: async () => {
      const leaf = await issueTestLeaf((await testCa()).issuer, { notBefore: new Date(Date.now() - 60_000) });
      return { 'ca-cert.pem': leaf.certificate.pem, 'ca-key.pem': keyPemOf(leaf.keys) };
    },
  },
];

describe('a CA Secret the controller cannot use', () => {
  for (const corruption of corruptions) {
    it(`with ${corruption.what}: is never replaced, nothing is issued, Ready=False says why; fixing it resumes issuing`, async () => {
      await useCertificateAuthority({});
      const caNs = await namespace('ca');
      const created = await createCaSecret(caNs, CA_SECRET, CA_SECRET_TYPE, await corruption.data());
      const wns = await workloadNamespace();
      const proc = await controllerFor(caNs);

      await waitForInitialReconcile(proc);
      expect((await workloads.readSecret(core, wns.name, 'istio.default'))?.metadata?.name).toBeUndefined();
      const error = await proc.waitForLog(
        `an error with reason ${corruption.reason}`,
        (l) => l.level === 'error' && l.reason === corruption.reason,
      );
      expect(error.msg).toContain(`${caNs}/${CA_SECRET}`);
      expect(error.msg).toContain(corruption.logged);
      const ca = await waitForCertificateAuthority(
        `Ready=False (${corruption.reason})`,
        (c) => current(c) && conditionOf(c, 'Ready')?.status === 'False',
      );
      expect(conditionOf(ca, 'Ready')?.reason).toBe(corruption.reason);
      expect(conditionOf(ca, 'Ready')?.message).toContain(corruption.logged);
      expect(conditionOf(ca, 'CAReady')).toMatchObject({ status: 'False', reason: corruption.reason });
      expect((await workloads.readSecret(core, caNs, CA_SECRET))?.metadata?.resourceVersion).toBe(
        created.metadata?.resourceVersion,
      );

      const fixedCa = await testCa();
      const fixed = await replaceSecretData(caNs, CA_SECRET, selfSignedData(fixedCa));
      const workload = await workloads.waitForWorkloadSecret(core, wns.name, 'default');
      expect(chainOf(workload).roots[0]!.equals(fixedCa.root.der), 'root-cert.pem is the fixed root').toBe(
        true,
      );
      expect(workloads.opensslVerify(workload)).toContain('OK');
      await waitForCertificateAuthority('Ready=True', (c) => conditionOf(c, 'Ready')?.status === 'True');
      expect(isRunning(proc)).toBe(true);
      expect(proc.lines.filter((l) => l.msg === 'controller started')).toHaveLength(1);
      expect((await workloads.readSecret(core, caNs, CA_SECRET))?.metadata?.resourceVersion).toBe(
        fixed.metadata?.resourceVersion,
      );
    });
  }

  it('refuses an istio-ca-secret of type Opaque, even with valid data, and leaves it untouched', async () => {
    await useCertificateAuthority({});
    const caNs = await namespace('ca');
    const created = await createCaSecret(caNs, CA_SECRET, 'Opaque', selfSignedData(await testCa()));
    const wns = await workloadNamespace();
    const proc = await controllerFor(caNs);

    await waitForInitialReconcile(proc);
    expect((await workloads.readSecret(core, wns.name, 'istio.default'))?.metadata?.name).toBeUndefined();
    const error = await proc.waitForLog('an error with reason WrongType', (l) => l.reason === 'WrongType');
    expect(error.level).toBe('error');
    expect(error.msg).toContain(`has type "Opaque", expected "${CA_SECRET_TYPE}"`);
    const ca = await waitForCertificateAuthority(
      'Ready=False (WrongType)',
      (c) => current(c) && conditionOf(c, 'Ready')?.status === 'False',
    );
    expect(conditionOf(ca, 'Ready')?.reason).toBe('WrongType');
    expect(conditionOf(ca, 'CAReady')).toMatchObject({ status: 'False', reason: 'WrongType' });
    const after = await workloads.readSecret(core, caNs, CA_SECRET);
    expect(after?.type).toBe('Opaque');
    expect(after?.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
  });
});

describe('plugged-in mode', () => {
  it('signs with the cacerts intermediate, follows a replaced intermediate live, and refuses one that does not chain to root-cert.pem', async () => {
    const notBefore = new Date(Date.now() - 60_000);
    const ca = await testCa();
    const intermediate = async (parent: TestCa) => createTestIntermediate(parent.issuer, { notBefore });
    const cacerts = (signer: Awaited<ReturnType<typeof intermediate>>) => ({
      'ca-cert.pem': signer.certificate.pem,
      'ca-key.pem': keyPemOf(signer.keys),
      'root-cert.pem': ca.root.pem,
      'cert-chain.pem': signer.certificate.pem + ca.root.pem,
    });
    const first = await intermediate(ca);
    const caNs = await namespace('ca');
    await createCaSecret(caNs, PLUGGED_IN_SECRET, 'Opaque', cacerts(first));
    await useCertificateAuthority({ rootCA: { mode: 'PluggedIn' } });
    const wns = await workloadNamespace(['api']);
    const proc = await controllerFor(caNs);

    const issued = new Map<string, V1Secret>();
    for (const sa of wns.serviceAccounts) {
      const workload = await workloads.waitForWorkloadSecret(core, wns.name, sa);
      const { chain, roots } = chainOf(workload);
      expect(chain).toHaveLength(2);
      expect(chain[1]!.equals(first.certificate.der), 'the chain carries the intermediate').toBe(true);
      expect(roots).toHaveLength(1);
      expect(roots[0]!.equals(ca.root.der), 'root-cert.pem is the plugged-in root').toBe(true);
      expect(workloads.opensslVerify(workload)).toContain('OK');
      issued.set(sa, workload);
    }
    expect((await workloads.readSecret(core, caNs, CA_SECRET))?.metadata?.name).toBeUndefined();
    // cacerts existed before the controller started: it must never have claimed otherwise.
    expect(proc.lines.filter((l) => l.reason === 'MissingSecret').map((l) => l.msg)).toEqual([]);

    // A new intermediate under the same root: every workload gets a new certificate from it.
    const second = await intermediate(ca);
    await replaceSecretData(caNs, PLUGGED_IN_SECRET, cacerts(second));
    for (const sa of wns.serviceAccounts) {
      const workload = await workloads.waitForWorkloadSecret(
        core,
        wns.name,
        sa,
        (s) => chainOf(s).chain[1]?.equals(second.certificate.der) ?? false,
      );
      expect(workloads.leafOf(workload).serialNumberHex).not.toBe(
        workloads.leafOf(issued.get(sa)!).serialNumberHex,
      );
      expect(chainOf(workload).chain).toHaveLength(2);
      expect(workloads.opensslVerify(workload)).toContain('OK');
      issued.set(sa, workload);
    }

    // An intermediate from another root, with root-cert.pem unchanged: refused, nothing reissued.
    const foreign = await intermediate(await testCa());
    const from = proc.lines.length;
    await replaceSecretData(caNs, PLUGGED_IN_SECRET, cacerts(foreign));
    const status = await waitForCertificateAuthority(
      'Ready=False (ChainInvalid)',
      (c) => conditionOf(c, 'Ready')?.reason === 'ChainInvalid',
    );
    expect(conditionOf(status, 'Ready')?.status).toBe('False');
    expect(conditionOf(status, 'CAReady')).toMatchObject({ status: 'False', reason: 'ChainInvalid' });
    // The workload controller has looked at every Secret since and decided to wait for the CA.
    for (const sa of wns.serviceAccounts) {
      await waitFor(`a CANotReady decision for ${wns.name}/${sa}`, () =>
        linesSince(proc, from).some(
          (l) => l.reason === 'CANotReady' && l.namespace === wns.name && l.serviceAccount === sa,
        ),
      );
      const now = await workloads.readSecret(core, wns.name, `istio.${sa}`);
      expect(now?.metadata?.resourceVersion).toBe(issued.get(sa)!.metadata?.resourceVersion);
    }
    expect(isRunning(proc)).toBe(true);
    expect(proc.lines.filter((l) => l.msg === 'controller started')).toHaveLength(1);
  });
});

describe('the CertificateAuthority resource', () => {
  it('is refused by the apiserver with 422 and a message naming the field when the spec is invalid', async () => {
    await workloads.deleteCertificateAuthority(customObjects);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ trustDomain: 'UPPER' }, 'spec.trustDomain'],
      [{ workloadCertificates: { ttl: '3 days' } }, 'spec.workloadCertificates.ttl'],
      [
        { workloadCertificates: { ttl: '1h', minGracePeriod: '2h' } },
        'spec.workloadCertificates.minGracePeriod',
      ],
    ];
    for (const [spec, field] of cases) {
      const { code, message } = await refusal(spec);
      expect(code, JSON.stringify(spec)).toBe(422);
      expect(message).toContain(field);
    }
    expect(
      statusCodeOf(await workloads.getCertificateAuthority(customObjects).catch((e: unknown) => e)),
    ).toBe(404);
  });

  it('reports a spec the apiserver admits but the controller rejects as InvalidSpec and keeps the last good configuration', async () => {
    await useCertificateAuthority({});
    const caNs = await namespace('ca');
    const wns = await workloadNamespace();
    const proc = await controllerFor(caNs);
    const before = await workloads.waitForWorkloadSecret(core, wns.name, 'default');

    // One nanosecond shorter than ttl: CEL compares nanoseconds and admits it; the controller does not.
    await useCertificateAuthority({
      trustDomain: 'example.org',
      workloadCertificates: { ttl: '5000h', minGracePeriod: '4999h59m59.999999999s' },
    });
    const ca = await waitForCertificateAuthority(
      'ConfigValid=False',
      (c) => current(c) && conditionOf(c, 'ConfigValid')?.status === 'False',
    );
    expect(conditionOf(ca, 'ConfigValid')?.reason).toBe('InvalidSpec');
    expect(conditionOf(ca, 'ConfigValid')?.message).toContain('spec.workloadCertificates.minGracePeriod');
    expect(conditionOf(ca, 'Ready')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(ca.status?.trustDomain).toBe('cluster.local');
    const error = await proc.waitForLog('the InvalidSpec error', (l) => l.reason === 'InvalidSpec');
    expect(error.msg).toContain('keeping the last good configuration');

    // The last good configuration is in effect: new workloads still get cluster.local identities.
    await core.createNamespacedServiceAccount({ namespace: wns.name, body: { metadata: { name: 'late' } } });
    const late = await workloads.waitForWorkloadSecret(core, wns.name, 'late');
    expect(workloads.leafOf(late).uris).toEqual([spiffeId('cluster.local', wns.name, 'late')]);
    const after = await workloads.readSecret(core, wns.name, 'istio.default');
    expect(after?.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
  });

  it('a controller that starts under an invalid spec makes no root and issues nothing on the defaults, until the spec is valid', async () => {
    // Admitted by the apiserver, refused by the controller (as above); example.org is what is meant.
    await useCertificateAuthority({
      trustDomain: 'example.org',
      workloadCertificates: { ttl: '5000h', minGracePeriod: '4999h59m59.999999999s' },
    });
    const caNs = await namespace('ca');
    const wns = await workloadNamespace();
    const proc = await controllerFor(caNs);
    // Its CA was looked at before 'controller started': on the defaults it would have made a root.
    expect(await workloads.readSecret(core, caNs, CA_SECRET)).toBeUndefined();
    const ca = await waitForCertificateAuthority(
      'ConfigValid=False with nothing in effect',
      (c) => current(c) && conditionOf(c, 'ConfigValid')?.status === 'False',
    );
    expect(conditionOf(ca, 'ConfigValid')?.message).toContain(
      'no valid configuration has been in effect since the controller started',
    );
    expect(conditionOf(ca, 'CAReady')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(ca.status?.trustDomain).toBe('example.org');
    const held = await proc.waitForLog('the InvalidSpec error', (l) => l.reason === 'InvalidSpec');
    expect(held.msg).toContain('nothing is loaded, issued, written or deleted until it is fixed');
    expect(await workloads.readSecret(core, wns.name, 'istio.default')).toBeUndefined();
    expect(await workloads.readSecret(core, caNs, CA_SECRET)).toBeUndefined();

    // Fixed: the root is made and the workload gets its example.org identity, never a cluster.local one.
    await useCertificateAuthority({ trustDomain: 'example.org' });
    const issued = await workloads.waitForWorkloadSecret(core, wns.name, 'default');
    expect(workloads.leafOf(issued).uris).toEqual([spiffeId('example.org', wns.name, 'default')]);
    expect(workloads.opensslVerify(issued)).toContain('OK');
    const ready = await waitForCertificateAuthority(
      'Ready=True',
      (c) => current(c) && conditionOf(c, 'Ready')?.status === 'True',
    );
    expect(ready.status?.trustDomain).toBe('example.org');
  });

  it('reissues workload Secrets with the new SPIFFE ID when the trust domain changes, and reports it in status and kubectl get', async () => {
    await useCertificateAuthority({});
    const caNs = await namespace('ca');
    const wns = await workloadNamespace(['api']);
    await controllerFor(caNs);
    const before = new Map<string, V1Secret>();
    for (const sa of wns.serviceAccounts) {
      const workload = await workloads.waitForWorkloadSecret(core, wns.name, sa);
      expect(workloads.leafOf(workload).uris).toEqual([spiffeId('cluster.local', wns.name, sa)]);
      before.set(sa, workload);
    }

    await useCertificateAuthority({ trustDomain: 'example.org' });
    for (const sa of wns.serviceAccounts) {
      const wanted = spiffeId('example.org', wns.name, sa);
      const workload = await workloads.waitForWorkloadSecret(
        core,
        wns.name,
        sa,
        (s) => workloads.leafOf(s).uris[0] === wanted,
      );
      expect(workloads.leafOf(workload).uris).toEqual([wanted]);
      expect(workloads.leafOf(workload).serialNumberHex).not.toBe(
        workloads.leafOf(before.get(sa)!).serialNumberHex,
      );
      expect(workloads.opensslVerify(workload)).toContain('OK');
    }

    const ca = await waitForCertificateAuthority(
      'Ready=True for example.org with counts',
      (c) =>
        current(c) &&
        conditionOf(c, 'Ready')?.status === 'True' &&
        c.status?.trustDomain === 'example.org' &&
        Number(c.status?.issuedCertificates) >= wns.serviceAccounts.length &&
        // Cluster-wide: a namespace another test left behind may still be going away.
        c.status?.failingCertificates === 0,
    );
    const status = ca.status as NonNullable<CertificateAuthorityView['status']> & {
      roots: Array<{ fingerprintSha256: string; notAfter: string; active: boolean }>;
      rootExpiry: string;
      managedServiceAccounts: number;
      issuedCertificates: number;
      failingCertificates: number;
    };
    const caSecret = await waitForCaSecret(caNs);
    const root = inspectCertificate(decoded(caSecret, 'ca-cert.pem'));
    expect(status.roots).toHaveLength(1);
    expect(status.roots[0]).toMatchObject({ active: true, fingerprintSha256: root.fingerprintSha256 });
    expect(status.rootExpiry).toBe(status.roots[0]!.notAfter);
    expect(new Date(status.rootExpiry).getTime()).toBe(Math.floor(root.notAfter.getTime() / 1000) * 1000);
    expect(status.managedServiceAccounts).toBeGreaterThanOrEqual(wns.serviceAccounts.length);
    expect(status.issuedCertificates).toBeGreaterThanOrEqual(wns.serviceAccounts.length);
    expect(status.failingCertificates).toBe(0);
    for (const type of ['Ready', 'ConfigValid', 'CAReady'])
      expect(conditionOf(ca, type)?.status).toBe('True');

    const table = execFileSync(
      'kubectl',
      ['--kubeconfig', inject('kubeconfig'), 'get', 'certificateauthorities'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const [header, row] = table
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s{2,}/));
    expect(header).toEqual(expect.arrayContaining(['NAME', 'TRUST DOMAIN', 'READY']));
    const cell = (name: string) => row?.[header!.indexOf(name)];
    expect(cell('NAME')).toBe('default');
    expect(cell('TRUST DOMAIN')).toBe('example.org');
    expect(cell('READY')).toBe('True');
  });
});
