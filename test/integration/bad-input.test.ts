// Bad input: malformed or foreign Secrets at our names, a CA Secret the
// controller cannot use, an invalid CertificateAuthority, unusual but legal
// names, and an apiserver that answers 429 and 500 for a while. Each gets a
// clear error (log and Event or status), nothing the controller does not own
// is touched, and the controller keeps running and converges afterwards.
import type { V1Secret } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { privateKeyToPem } from '../../src/pki/index.js';
import { createTestCa } from '../../src/pki/testing.js';
import { auditNamespaces, caRootsOf, describeAudit, digestOf, problemsOf } from './support/audit.js';
import type { ControllerProcess, LogLine } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { recordKeyDigests } from './support/key-digests.js';
import { expectApiError, statusCodeOf } from './support/kube.js';
import { ensureServiceAccount } from './support/load.js';
import { withLogExcerpt } from './support/log-excerpt.js';
import { waitFor } from './support/wait.js';
import * as workloads from './support/workload.js';

// Each describe says when its controllers, namespaces and CertificateAuthority go (cleanUp).
const harness = useHarness({ certificateAuthority: true });
const { core, customObjects } = harness;
const namespace = (prefix: string) => harness.namespace(prefix);
const b64 = (text: string) => Buffer.from(text).toString('base64');

async function warningsFor(namespace: string, name: string) {
  const list = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
  return list.items.filter((e) => e.type === 'Warning');
}

function waitForWarning(namespace: string, name: string, reason: string) {
  return waitFor(`a ${reason} Warning Event about ${namespace}/${name.slice(0, 40)}`, async () =>
    (await warningsFor(namespace, name)).find((e) => e.reason === reason),
  );
}

const startedOnce = (proc: ControllerProcess) =>
  proc.lines.filter((l) => l.msg === 'controller started').length === 1;

describe('Secrets at our names', () => {
  let ca: string;
  let controller: ControllerProcess;

  beforeAll(async () => {
    ca = await namespace('ca');
    controller = await harness.controller({ caNamespace: ca });
  });
  afterAll(harness.cleanUp);

  /** Waits until the controller has decided about the ServiceAccount (a reconcile logged after `from`). */
  const reconciledAfter = (from: number, namespace: string, serviceAccount: string, action?: string) =>
    waitFor(`a reconcile of ${namespace}/${serviceAccount}`, () =>
      controller.lines
        .slice(from)
        .find(
          (l: LogLine) =>
            l.msg === 'reconciled' &&
            l.namespace === namespace &&
            l.serviceAccount === serviceAccount &&
            (action === undefined || l.action === action),
        ),
    );

  it('ours with malformed data (garbage PEM, a missing key) is rewritten with a valid certificate', async () => {
    const ns = await namespace('bad');
    const roots = await caRootsOf(core, ca);
    const cases: Array<[string, Record<string, string | null>]> = [
      [
        'garbage',
        { 'cert-chain.pem': b64('-----BEGIN CERTIFICATE-----\nnot base64!\n'), 'key.pem': b64('junk') },
      ],
      ['nokey', { 'key.pem': null }],
      ['truncated', { 'cert-chain.pem': b64('-----BEGIN CERTIFICATE-----\nMIIB') }],
    ];
    for (const [sa, data] of cases) {
      await ensureServiceAccount(core, ns, sa);
      await workloads.waitForWorkloadSecret(core, ns, sa);
      const broken = await core.patchNamespacedSecret(
        { namespace: ns, name: `istio.${sa}`, body: { data } },
        workloads.mergePatch,
      );
      const fixed = await workloads.waitForWorkloadSecret(
        core,
        ns,
        sa,
        (s) => s.metadata?.resourceVersion !== broken.metadata?.resourceVersion,
      );
      expect(problemsOf(fixed, ns, sa, undefined, roots)).toEqual([]);
      expect(workloads.opensslVerify(fixed)).toContain('OK');
      const issued = await controller.waitForLog(
        `the reissue of ${sa}`,
        (l) =>
          l.msg === 'issued workload certificate' &&
          l.namespace === ns &&
          l.serviceAccount === sa &&
          l.reason === 'InvalidData',
      );
      expect(issued.level).toBe('info');
      recordKeyDigests([digestOf(fixed.data!['key.pem']!)]);
    }
  });

  it("someone else's Secret at istio.<sa> — malformed, or of another type — is never touched, and is reported", async () => {
    const ns = await namespace('foreign');
    const foreign: Record<string, V1Secret> = {
      malformed: await core.createNamespacedSecret({
        namespace: ns,
        body: {
          metadata: { name: 'istio.malformed' },
          type: 'istio.io/key-and-cert',
          data: {
            'cert-chain.pem': b64('garbage'),
            'key.pem': b64('garbage'),
            'root-cert.pem': b64('garbage'),
          },
        },
      }),
      tls: await core.createNamespacedSecret({
        namespace: ns,
        body: {
          metadata: { name: 'istio.tls' },
          type: 'kubernetes.io/tls',
          data: { 'tls.crt': b64('not a certificate'), 'tls.key': b64('not a key') },
        },
      }),
    };
    const from = controller.lines.length;
    for (const sa of Object.keys(foreign)) await ensureServiceAccount(core, ns, sa);
    for (const [sa, before] of Object.entries(foreign)) {
      const warning = await waitForWarning(ns, sa, 'ForeignSecret');
      expect(warning.message).toContain(`istio.${sa}`);
      expect(warning.message).toContain('not managed by alcazar');
      const logged = await controller.waitForLog(
        `the ForeignSecret warning for ${sa}`,
        (l) =>
          l.level === 'warn' && l.reason === 'ForeignSecret' && l.namespace === ns && l.serviceAccount === sa,
      );
      expect(logged.msg).toContain(`istio.${sa}`);
      await reconciledAfter(from, ns, sa);
      const after = await workloads.readSecret(core, ns, `istio.${sa}`);
      expect(after?.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
      expect(after?.type).toBe(before.type);
      expect(after?.data).toEqual(before.data);
    }
    // Deleting the ServiceAccounts leaves them alone too.
    const beforeDelete = controller.lines.length;
    for (const sa of Object.keys(foreign))
      await core.deleteNamespacedServiceAccount({ namespace: ns, name: sa });
    for (const [sa, before] of Object.entries(foreign)) {
      await reconciledAfter(beforeDelete, ns, sa, 'none');
      expect((await workloads.readSecret(core, ns, `istio.${sa}`))?.metadata?.resourceVersion).toBe(
        before.metadata?.resourceVersion,
      );
    }
  });

  it('ours (our label) with the wrong type is replaced by one of the right type', async () => {
    const ns = await namespace('type');
    await ensureServiceAccount(core, ns, 'typed');
    const ours = await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: 'istio.typed2', labels: { 'app.kubernetes.io/managed-by': 'alcazar' } },
        type: 'Opaque',
        data: { 'cert-chain.pem': b64('x') },
      },
    });
    await ensureServiceAccount(core, ns, 'typed2');
    const replaced = await workloads.waitForWorkloadSecret(
      core,
      ns,
      'typed2',
      (s) => s.metadata?.uid !== ours.metadata?.uid,
    );
    expect(replaced.type).toBe('istio.io/key-and-cert');
    expect(workloads.opensslVerify(replaced)).toContain('OK');
    // Seen before its ServiceAccount it is an orphan, seen after it has the wrong type: deleted either way.
    await controller.waitForLog(
      'the deletion',
      (l) =>
        l.msg === 'deleted workload Secret' &&
        l.namespace === ns &&
        l.serviceAccount === 'typed2' &&
        ['WrongType', 'ServiceAccountDeleted'].includes(l.reason as string),
    );
  });

  it('unusual but legal names: a 63-character namespace, dotted and 247-character ServiceAccounts get the right SPIFFE IDs; a 253-character one is reported NameTooLong', async () => {
    const longNs = `n${'x'.repeat(54)}${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}`;
    expect(longNs).toHaveLength(63);
    const ns = await harness.namespaceNamed(longNs);
    const longest = `s${'a'.repeat(246)}`; // istio.<247> is 253 characters: the longest that fits
    const tooLong = `t${'b'.repeat(252)}`; // a legal ServiceAccount name whose Secret name cannot exist
    for (const sa of ['a.b.c', longest, tooLong]) await ensureServiceAccount(core, ns, sa);
    for (const sa of ['a.b.c', longest, 'default']) {
      const secret = await workloads.waitForWorkloadSecret(core, ns, sa);
      expect(workloads.leafOf(secret).uris).toEqual([`spiffe://cluster.local/ns/${ns}/sa/${sa}`]);
      expect(workloads.opensslVerify(secret)).toContain('OK');
    }
    const warning = await waitForWarning(ns, tooLong, 'NameTooLong');
    expect(warning.message).toContain('253');
    const logged = await controller.waitForLog(
      'the NameTooLong warning',
      (l) => l.level === 'warn' && l.reason === 'NameTooLong' && l.namespace === ns,
    );
    expect(String(logged.msg)).toMatch(/259 characters/);
    const audit = await auditNamespaces(core, [ns], await caRootsOf(core, ca));
    expect(audit.problems).toEqual([`${ns}/istio.${tooLong}: missing`]);
    recordKeyDigests(audit.keyDigests);
    expect(startedOnce(controller)).toBe(true);
    expect(controller.lines.some((l) => l.level === 'error' || l.level === 'fatal')).toBe(false);
  });
});

describe('a CA the controller cannot use', () => {
  afterEach(harness.cleanUp);
  const conditionOf = (ca: Awaited<ReturnType<typeof workloads.getCertificateAuthority>>, type: string) =>
    ca.status?.conditions?.find((c) => c.type === type);

  const cases = [
    {
      what: 'garbage in ca-cert.pem',
      type: 'istio.io/ca-root',
      reason: 'Unparsable',
      data: async () => ({ 'ca-cert.pem': 'this is not a certificate\n', 'ca-key.pem': 'nor a key\n' }),
    },
    {
      what: 'the wrong type (Opaque), with valid data',
      type: 'Opaque',
      reason: 'WrongType',
      data: async () => {
        const ca = await createTestCa({ notBefore: new Date(Date.now() - 60_000) });
        return { 'ca-cert.pem': ca.root.pem, 'ca-key.pem': privateKeyToPem(ca.keys.privateKey) };
      },
    },
  ];
  for (const c of cases) {
    it(`istio-ca-secret with ${c.what}: refused with reason ${c.reason} in the log and the status, never replaced, nothing issued`, async () => {
      await workloads.setCertificateAuthoritySpec(customObjects, {});
      const ca = await namespace('ca');
      const created = await core.createNamespacedSecret({
        namespace: ca,
        body: { metadata: { name: 'istio-ca-secret' }, type: c.type, stringData: await c.data() },
      });
      const ns = await namespace('w');
      await ensureServiceAccount(core, ns, 'app');
      const controller = await harness.controller({ caNamespace: ca });
      const error = await controller.waitForLog(
        `an error with reason ${c.reason}`,
        (l) => l.level === 'error' && l.reason === c.reason,
      );
      expect(error.msg).toContain(`${ca}/istio-ca-secret`);
      const status = await waitFor('Ready=False in the CertificateAuthority status', async () => {
        const resource = await workloads.getCertificateAuthority(customObjects);
        return conditionOf(resource, 'Ready')?.status === 'False' &&
          conditionOf(resource, 'Ready')?.reason === c.reason
          ? resource
          : undefined;
      });
      expect(conditionOf(status, 'CAReady')).toMatchObject({ status: 'False', reason: c.reason });
      await controller.waitForLog(
        'initial reconcile finished',
        (l) => l.msg === 'initial reconcile finished' && l.controller === 'workload-secrets',
      );
      expect(await workloads.readSecret(core, ns, 'istio.app')).toBeUndefined();
      const after = await workloads.readSecret(core, ca, 'istio-ca-secret');
      expect(after?.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
      expect(after?.type).toBe(c.type);
      expect(controller.lines.some((l) => String(l.msg).startsWith('generated a new self-signed root'))).toBe(
        false,
      );
    });
  }

  it('an invalid CertificateAuthority spec is refused by the apiserver with 422 naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ trustDomain: 'Not A Domain!' }, 'spec.trustDomain'],
      [{ workloadCertificates: { ttl: 'forever' } }, 'spec.workloadCertificates.ttl'],
      [{ rootCA: { mode: 'Borrowed' } }, 'spec.rootCA.mode'],
    ];
    for (const [spec, field] of cases) {
      let message = '';
      const code = await expectApiError(
        workloads.setCertificateAuthoritySpec(customObjects, spec).catch((err: unknown) => {
          const body = (err as { body?: unknown }).body;
          message = typeof body === 'string' ? body : JSON.stringify(body ?? '');
          throw err;
        }),
      );
      expect(code, JSON.stringify(spec)).toBe(422);
      expect(message).toContain(field);
    }
    expect(
      statusCodeOf(await workloads.getCertificateAuthority(customObjects).catch((e: unknown) => e)),
    ).toBe(404);
  });
});

describe('an apiserver that answers 429 and 500 for a while', () => {
  afterEach(harness.cleanUp);
  it('a refused creation of the root CA Secret at start is retried: the CA comes up once the apiserver accepts it', async () => {
    const api = await harness.apiProxy();
    const ca = await namespace('ca');
    const ns = await namespace('late-ca');
    // Only the create of istio-ca-secret fails, twice; everything else passes.
    api.failWith({
      status: 500,
      times: 2,
      match: (method, path) => method === 'POST' && path.startsWith(`/api/v1/namespaces/${ca}/secrets`),
    });
    const proc = await harness.controller({ caNamespace: ca, kubeconfig: api.kubeconfig });
    await proc.waitForLog('the refused creation', (l) => l.reason === 'CreateFailed' && l.level === 'error');
    await ensureServiceAccount(core, ns, 'app');
    const caSecret = await waitFor(
      'istio-ca-secret',
      () => workloads.readSecret(core, ca, 'istio-ca-secret'),
      {
        timeoutMs: 60_000,
      },
    );
    expect(caSecret.type).toBe('istio.io/ca-root');
    const secret = await workloads.waitForWorkloadSecret(core, ns, 'app', undefined, 60_000);
    expect(workloads.opensslVerify(secret)).toContain('OK');
    expect(api.stats.injected[500]).toBe(2);
    expect(
      proc.lines.filter((l) => String(l.msg).startsWith('generated a new self-signed root')),
    ).toHaveLength(1);
  });

  it('the controller retries with backoff, says so clearly, and converges afterwards', async () => {
    const api = await harness.apiProxy();
    const ca = await namespace('ca');
    const ns = await namespace('flaky');
    const proc = await harness.controller({ caNamespace: ca, kubeconfig: api.kubeconfig });
    await ensureServiceAccount(core, ns, 'steady');
    await withLogExcerpt(proc, workloads.waitForWorkloadSecret(core, ns, 'steady'));
    const from = proc.lines.length;
    const since = () => proc.lines.slice(from);
    const failuresOf = (sa: string) =>
      since().filter(
        (l) => l.msg === 'reconcile failed; will retry' && l.namespace === ns && l.serviceAccount === sa,
      );

    // 429: the open watches still deliver, so the controller tries, is refused, and backs off.
    api.failWith({ status: 429 });
    await ensureServiceAccount(core, ns, 'during-429');
    await waitFor('three refused attempts for during-429', () => failuresOf('during-429').length >= 3, {
      timeoutMs: 30_000,
    });
    const delays = failuresOf('during-429').map((l) => l.retryInMs as number);
    expect(delays.slice(0, 3)).toEqual([...delays.slice(0, 3)].sort((a, b) => a - b));
    expect(delays[2]).toBeGreaterThan(delays[0]!);
    expect(String(failuresOf('during-429')[0]!.err)).toContain('HTTP 429');
    // Watches that end now cannot be re-established: the informers retry with backoff too.
    api.endWatches();
    await waitFor(
      'list/watch retries',
      () => since().filter((l) => l.msg === 'list/watch failed; retrying').length >= 4,
      {
        timeoutMs: 30_000,
      },
    );

    // 500 for a while longer; the ServiceAccount created now is only seen after recovery.
    api.failWith({ status: 500 });
    await ensureServiceAccount(core, ns, 'during-500');
    await waitFor('a refused list/watch with 500', () =>
      since().some(
        (l) => l.msg === 'list/watch failed; retrying' && /500|Internal Server Error/.test(String(l.err)),
      ),
    );
    api.stopFailing();

    let last: Awaited<ReturnType<typeof auditNamespaces>> | undefined;
    const audit = await waitFor(
      'convergence after the errors stop',
      async () => {
        last = await auditNamespaces(core, [ns], await caRootsOf(core, ca));
        return last.problems.length === 0 && last.serviceAccounts === 4 ? last : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 1_000 },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${last ? describeAudit(last) : ''}`);
    });
    recordKeyDigests(audit.keyDigests);
    expect(api.stats.injected[429]).toBeGreaterThan(0);
    expect(api.stats.injected[500]).toBeGreaterThan(0);
    const warnings = since().filter((l) => l.level === 'warn');
    expect(warnings.some((l) => /429/.test(String(l.err)))).toBe(true);
    expect(startedOnce(proc)).toBe(true);
    expect(
      proc.lines.filter((l) => String(l.msg).startsWith('generated a new self-signed root')),
    ).toHaveLength(1);
  });
});
