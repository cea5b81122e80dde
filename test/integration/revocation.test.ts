// Revocation: a CertificateRevocation reissues the workload at once and lists the old certificate
// in the CRL published as istio-ca-crl, which OpenSSL, Go and Node's tls honour.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi, type V1Secret } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { normalizeSerialHex } from '../../src/pki/crl.js';
import { repoRoot } from '../cluster/paths.js';
import { type ControllerProcess, startController } from './support/controller.js';
import { adminKubeConfig, createTestNamespace, expectApiError } from './support/kube.js';
import {
  conditionOf,
  createRevocation,
  crlNumbers,
  crlText,
  goCheckCrl,
  handshakeWithCrl,
  listedSerials,
  opensslVerifyWithCrl,
  readCrlConfigMap,
  serialOf,
  waitForCrl,
  waitForDecision,
  waitForReissued,
} from './support/revocation.js';
import { waitFor } from './support/wait.js';
import {
  annotateCertificateAuthority,
  deleteCertificateAuthority,
  leafOf,
  mergePatch,
  readSecret,
  setCertificateAuthoritySpec,
  waitForWorkloadSecret,
} from './support/workload.js';

const execFileAsync = promisify(execFile);
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const customObjects = kc.makeApiClient(CustomObjectsApi);
const cleanups: Array<() => Promise<void>> = [];
let ca: string;
let controller: ControllerProcess | undefined;
const ARGS = ['--root-rotation-check-interval=500ms', '--root-rotation-propagation-delay=6s'];

async function namespace(prefix: string) {
  const ns = await createTestNamespace(core, prefix);
  cleanups.push(ns.remove);
  return ns.name;
}

async function workload(ns: string, sa: string): Promise<V1Secret> {
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  return waitForWorkloadSecret(core, ns, sa);
}

async function caBundle(): Promise<string> {
  const secret = (await readSecret(core, ca, 'istio-ca-secret')) as V1Secret;
  return Buffer.from(secret.data!['root-cert.pem'] ?? secret.data!['ca-cert.pem']!, 'base64').toString();
}

beforeAll(async () => {
  await deleteCertificateAuthority(customObjects);
  ca = await namespace('ca');
  controller = await startController({ caNamespace: ca, args: ARGS });
});

afterAll(async () => {
  await controller?.stop();
  await deleteCertificateAuthority(customObjects);
  await Promise.all(cleanups.map((c) => c()));
});

describe('revoking a ServiceAccount', () => {
  it('reissues its Secret with a new key and lists the old serial in istio-ca-crl, which OpenSSL, Go and Node honour', async () => {
    const ns = await namespace('rv');
    const before = await workload(ns, 'cart');
    const server = await workload(ns, 'web');
    await createRevocation(customObjects, ns, 'cart-leak', {
      serviceAccountName: 'cart',
      reason: 'keyCompromise',
    });

    const after = await waitForReissued(core, ns, 'cart', before);
    expect(after.data!['key.pem']).not.toBe(before.data!['key.pem']);
    const decided = await waitForDecision(customObjects, ns, 'cart-leak');
    expect(conditionOf(decided, 'Applied')).toMatchObject({ status: 'True', reason: 'Revoked' });
    expect(decided.status?.revoked?.map((r) => normalizeSerialHex(r.serialNumber))).toEqual([
      serialOf(before),
    ]);
    expect(decided.status?.revoked?.[0]).toMatchObject({ namespace: ns, serviceAccount: 'cart' });

    // The CRL reaches the workload's namespace and the CA namespace.
    const local = await waitForCrl(
      core,
      ns,
      'the old serial',
      (t) => listedSerials(t).has(serialOf(before)),
      20_000,
    );
    const central = await waitForCrl(core, ca, 'the old serial', (t) =>
      listedSerials(t).has(serialOf(before)),
    );
    expect(crlText(local)).toBe(crlText(central));
    const crl = crlText(local);
    expect(listedSerials(crl).has(serialOf(after))).toBe(false);

    expect(opensslVerifyWithCrl(before, crl)).toMatch(/certificate revoked/);
    expect(opensslVerifyWithCrl(after, crl)).toMatch(/: OK/);

    const go = await goCheckCrl(crl, await caBundle());
    expect(go.output).toMatch(/^ok number=\d+ /m);
    expect(go.ok).toBe(true);
    expect(go.output).toContain(BigInt(`0x${serialOf(before)}`).toString(16));

    expect(await handshakeWithCrl(server, before, crl)).toEqual({
      ok: false,
      error: expect.stringMatching(/REVOKED/i),
    });
    expect(await handshakeWithCrl(server, after, crl)).toEqual({ ok: true });
  });
});

describe('what may not be revoked', () => {
  it('refuses a serial of another namespace: nothing revoked, nothing reissued; the CA namespace may revoke it', async () => {
    const victim = await namespace('victim');
    const attacker = await namespace('attacker');
    const secret = await workload(victim, 'bank');
    await createRevocation(customObjects, attacker, 'steal', {
      serialNumbers: [leafOf(secret).serialNumberHex],
    });
    const refused = await waitForDecision(customObjects, attacker, 'steal');
    expect(conditionOf(refused, 'Refused')).toMatchObject({ status: 'True', reason: 'CrossNamespace' });
    expect(conditionOf(refused, 'Applied')?.status).toBe('False');
    expect(refused.status?.revoked).toEqual([]);
    const crl = crlText(await readCrlConfigMap(core, ca));
    expect(listedSerials(crl).has(serialOf(secret))).toBe(false);
    expect(serialOf((await readSecret(core, victim, 'istio.bank'))!)).toBe(serialOf(secret));

    await createRevocation(customObjects, ca, 'from-the-ca', {
      serialNumbers: [leafOf(secret).serialNumberHex],
    });
    const applied = await waitForDecision(customObjects, ca, 'from-the-ca');
    expect(conditionOf(applied, 'Applied')?.status).toBe('True');
    await waitForWorkloadSecret(core, victim, 'bank', (s) => serialOf(s) !== serialOf(secret));
    await waitForCrl(core, victim, 'the bank serial', (t) => listedSerials(t).has(serialOf(secret)));
  });

  it('refuses an unknown ServiceAccount and an unknown serial in status, with the reason', async () => {
    const ns = await namespace('unk');
    await createRevocation(customObjects, ns, 'ghost', { serviceAccountName: 'ghost' });
    await createRevocation(customObjects, ns, 'nobody', { serialNumbers: ['0badc0ffee'] });
    const ghost = await waitForDecision(customObjects, ns, 'ghost');
    expect(conditionOf(ghost, 'Refused')).toMatchObject({ reason: 'UnknownServiceAccount' });
    expect(conditionOf(ghost, 'Refused')?.message).toContain(`${ns}/ghost`);
    const nobody = await waitForDecision(customObjects, ns, 'nobody');
    expect(conditionOf(nobody, 'Refused')).toMatchObject({ reason: 'UnknownSerial' });
    // What `kubectl get` shows: the refusal's reason under DECISION.
    const { stdout } = await execFileAsync('kubectl', [
      `--kubeconfig=${inject('kubeconfig')}`,
      '-n',
      ns,
      'get',
      'certificaterevocations',
    ]);
    const [header, ...rows] = stdout
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/));
    expect(header).toEqual(['NAME', 'SERVICEACCOUNT', 'REASON', 'APPLIED', 'DECISION', 'REVOKED', 'AGE']);
    expect(rows.find((r) => r[0] === 'ghost')).toEqual(
      expect.arrayContaining(['ghost', 'ghost', 'False', 'UnknownServiceAccount']),
    );
    expect(rows.find((r) => r[0] === 'nobody')).toEqual(
      expect.arrayContaining(['nobody', 'False', 'UnknownSerial']),
    );
  });

  it('alcazar revoke creates the object and, with --wait, prints the outcome and exits by it', async () => {
    const ns = await namespace('cli');
    const before = await workload(ns, 'shop');
    const revoke = async (...args: string[]) => {
      try {
        const { stdout } = await execFileAsync(
          process.execPath,
          [
            '--import',
            'tsx',
            join(repoRoot, 'src', 'cli', 'main.ts'),
            'revoke',
            `--kubeconfig=${inject('kubeconfig')}`,
            ...args,
          ],
          { cwd: repoRoot },
        );
        return { code: 0, out: stdout };
      } catch (err) {
        const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
        return { code, out: `${stdout}${stderr}` };
      }
    };
    const applied = await revoke(`${ns}/shop`, '--reason', 'superseded', '--wait');
    expect(applied.code, applied.out).toBe(0);
    expect(applied.out).toContain(`revoked serial ${serialOf(before)}`);
    const refused = await revoke('--serial', '0BADC0FFEE', '-n', ns, '--wait');
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('refused (UnknownSerial)');
    expect(refused.out).toContain(`kubectl -n ${ns} delete certificaterevocation`);
    const usage = await revoke('--serial', 'zz', '-n', ns);
    expect(usage.code).toBe(2);
    expect(usage.out).toContain('not a hexadecimal serial number');
  });

  it('rejects an invalid serial, an unknown reason, an empty spec and a changed spec at the API', async () => {
    const ns = await namespace('bad');
    const invalid = async (name: string, spec: Record<string, unknown>) => {
      try {
        await createRevocation(customObjects, ns, name, spec);
      } catch (err) {
        return String((err as { body?: unknown }).body ?? err);
      }
      throw new Error(`the API accepted ${JSON.stringify(spec)}`);
    };
    expect(await invalid('a', { serialNumbers: ['xyz'] })).toContain("'xyz' is not a serial number");
    expect(await invalid('b', { serviceAccountName: 'x', reason: 'bored' })).toMatch(
      /Unsupported value: \W*bored/,
    );
    expect(await invalid('c', {})).toContain('set serviceAccountName, serialNumbers, or both');
    await createRevocation(customObjects, ns, 'd', { serviceAccountName: 'nobody-here' });
    expect(
      await expectApiError(
        customObjects.patchNamespacedCustomObject(
          {
            group: 'alcazar.dev',
            version: 'v1alpha1',
            plural: 'certificaterevocations',
            namespace: ns,
            name: 'd',
            body: { spec: { serviceAccountName: 'other' } },
          },
          mergePatch,
        ),
      ),
    ).toBe(422);
  });
});

describe('the published CRL', () => {
  it('heals a deleted or tampered istio-ca-crl, in a workload namespace and in the CA namespace', async () => {
    const ns = await namespace('heal');
    const first = await waitForCrl(core, ns, 'published', (t) => t.length > 0);
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'istio-ca-crl' });
    // The CA namespace's CRL may be re-signed meanwhile (an earlier test's revocation): compare with it.
    const current = async () => crlText(await readCrlConfigMap(core, ca));
    const recreated = await waitFor('istio-ca-crl re-created as a copy of the CA namespace’s', async () => {
      const cm = await readCrlConfigMap(core, ns);
      return cm && cm.metadata?.uid !== first.metadata?.uid && crlText(cm) === (await current())
        ? cm
        : undefined;
    });
    await core.patchNamespacedConfigMap(
      { namespace: ns, name: 'istio-ca-crl', body: { data: { 'ca-crl.pem': 'tampered', extra: 'x' } } },
      mergePatch,
    );
    const reverted = await waitFor('the tampered copy reverted', async () => {
      const cm = await readCrlConfigMap(core, ns);
      const edited = cm?.metadata?.resourceVersion === recreated.metadata?.resourceVersion;
      return cm && !edited && !cm.data?.extra && crlText(cm) === (await current()) ? cm : undefined;
    });
    expect(Object.keys(reverted.data ?? {})).toEqual(['ca-crl.pem']);

    const central = await readCrlConfigMap(core, ca);
    const numberBefore = crlNumbers(crlText(central))[0]!;
    await core.patchNamespacedConfigMap(
      { namespace: ca, name: 'istio-ca-crl', body: { data: { 'ca-crl.pem': 'tampered' } } },
      mergePatch,
    );
    const resigned = await waitForCrl(core, ca, 're-signed', (t) => crlNumbers(t).length > 0);
    expect(crlNumbers(crlText(resigned))[0]! > numberBefore).toBe(true);
    await core.deleteNamespacedConfigMap({ namespace: ca, name: 'istio-ca-crl' });
    const again = await waitForCrl(core, ca, 're-created', (t) => crlNumbers(t).length > 0);
    expect(crlNumbers(crlText(again))[0]! > crlNumbers(crlText(resigned))[0]!).toBe(true);
    // …and the copies follow.
    await waitForCrl(core, ns, 'the new CRL copied', (t) => t === crlText(again));
  });

  it('leaves a namespace that stops being managed, and never touches a foreign istio-ca-crl', async () => {
    const ns = await namespace('unmanaged');
    await waitForCrl(core, ns, 'published', (t) => t.length > 0);
    await core.patchNamespace(
      { name: ns, body: { metadata: { labels: { 'ca.istio.io/override': 'false' } } } },
      mergePatch,
    );
    await waitFor('istio-ca-crl deleted', async () => (await readCrlConfigMap(core, ns)) === undefined);
    const foreign = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'istio-ca-crl' }, data: { 'ca-crl.pem': 'istiod wrote this' } },
    });
    await core.patchNamespace(
      { name: ns, body: { metadata: { labels: { 'ca.istio.io/override': 'true' } } } },
      mergePatch,
    );
    await waitFor('a ForeignConfigMap warning', async () => {
      const events = await core.listNamespacedEvent({
        namespace: ns,
        fieldSelector: 'involvedObject.name=istio-ca-crl',
      });
      return events.items.some((e) => e.reason === 'ForeignConfigMap');
    });
    expect((await readCrlConfigMap(core, ns))?.metadata?.resourceVersion).toBe(
      foreign.metadata?.resourceVersion,
    );
  });

  it('keeps a valid CRL for each root in use through a root rotation', async () => {
    const ns = await namespace('rot');
    const revokedBefore = await workload(ns, 'old');
    await createRevocation(customObjects, ns, 'old', { serviceAccountName: 'old' });
    await waitForCrl(core, ca, 'the old serial', (t) => listedSerials(t).has(serialOf(revokedBefore)));
    const phase = async () =>
      (await readSecret(core, ca, 'istio-ca-secret'))?.metadata?.annotations?.[
        'alcazar.dev/rotation-phase'
      ] ?? 'Idle';
    await setCertificateAuthoritySpec(customObjects, {});
    await annotateCertificateAuthority(customObjects, { 'alcazar.dev/rotate-root': 'revocation-test' });
    for (const expected of ['Publishing', 'Reissuing']) {
      await waitFor(`phase ${expected}`, async () => (await phase()) === expected, { timeoutMs: 60_000 });
      const bundle = await caBundle();
      expect(bundle.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
      const cm = await waitForCrl(core, ca, `two CRLs while ${expected}`, (t) => crlNumbers(t).length === 2);
      const go = await goCheckCrl(crlText(cm), bundle);
      expect(go.ok, go.output).toBe(true);
      expect(go.output.match(/^ok /gm)).toHaveLength(2);
      // The revoked serial is listed under both roots.
      expect(
        go.output.match(new RegExp(BigInt(`0x${serialOf(revokedBefore)}`).toString(16), 'g')),
      ).toHaveLength(2);
    }
    await waitFor('the rotation to finish', async () => (await phase()) === 'Idle', { timeoutMs: 90_000 });
    const cm = await waitForCrl(core, ca, 'one CRL again', (t) => crlNumbers(t).length === 1);
    const go = await goCheckCrl(crlText(cm), await caBundle());
    expect(go.ok, go.output).toBe(true);
  });
});

describe('the CRL number', () => {
  afterEach(async () => {
    await deleteCertificateAuthority(customObjects);
  });

  it('grows across a controller kill and a leader change', async () => {
    const ns = await namespace('num');
    await workload(ns, 'a');
    const start = crlNumbers(crlText(await waitForCrl(core, ca, 'published', (t) => t.length > 0)))[0]!;

    await controller!.kill();
    controller = await startController({ caNamespace: ca, args: ARGS });
    await createRevocation(customObjects, ns, 'after-kill', { serviceAccountName: 'a' });
    const afterKill = await waitForCrl(
      core,
      ca,
      'a higher number after the kill',
      (t) => crlNumbers(t)[0]! > start,
    );
    const killNumber = crlNumbers(crlText(afterKill))[0]!;

    await controller.stop();
    controller = undefined;
    const election = (identity: string) => [
      ...ARGS,
      '--leader-elect',
      `--identity=${identity}`,
      '--lease-duration=4s',
      '--renew-deadline=3s',
      '--retry-period=500ms',
    ];
    const replicas = await Promise.all(
      ['rev-a', 'rev-b'].map((id) => startController({ caNamespace: ca, args: election(id) })),
    );
    try {
      const leader = await waitFor('a leader', () =>
        replicas.find((r) => r.lines.some((l) => l.msg === 'became leader')),
      );
      const follower = replicas.find((r) => r !== leader)!;
      await leader.stop();
      await follower.waitForLog('the follower to take over', (l) => l.msg === 'became leader', 30_000);
      await workload(ns, 'b');
      await createRevocation(customObjects, ns, 'after-leader-change', { serviceAccountName: 'b' });
      const changed = await waitForCrl(
        core,
        ca,
        'a higher number after the leader change',
        (t) => crlNumbers(t)[0]! > killNumber,
      );
      expect(crlNumbers(crlText(changed))[0]! > killNumber).toBe(true);
    } finally {
      await Promise.all(replicas.map((r) => r.stop()));
    }
    controller = await startController({ caNamespace: ca, args: ARGS });
  });

  it('drops an entry once its certificate has expired', async () => {
    await setCertificateAuthoritySpec(customObjects, {
      workloadCertificates: { ttl: '40s', minGracePeriod: '5s', clockSkewAllowance: '0s' },
    });
    const ns = await namespace('exp');
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'brief' } } });
    const short = await waitForWorkloadSecret(
      core,
      ns,
      'brief',
      (s) => leafOf(s).notAfter.getTime() - leafOf(s).notBefore.getTime() <= 60_000,
    );
    await createRevocation(customObjects, ns, 'brief', { serviceAccountName: 'brief' });
    await waitForCrl(core, ca, 'the short-lived serial', (t) => listedSerials(t).has(serialOf(short)));
    const gone = await waitForCrl(
      core,
      ca,
      'the expired serial gone',
      (t) => !listedSerials(t).has(serialOf(short)),
      70_000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(leafOf(short).notAfter.getTime());
    const go = await goCheckCrl(crlText(gone), await caBundle());
    expect(go.ok, go.output).toBe(true);
  });
});
