// Istio's CSR API against the real API server: tokens from the TokenRequest API, TokenReviews by
// the real authenticator, a gRPC client built from the .proto. Every refusal comes with its gRPC
// code and issues nothing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeSerialHex } from '../../src/pki/crl.js';
import { buildTestCsrPem, testKey } from '../../src/pki/csr-testing.js';
import { inspectCertificate } from '../../src/pki/index.js';
import { decodeCertificatesPem, encodePem } from '../../src/pki/pem.js';
import { type ControllerProcess, startController } from './support/controller.js';
import { CsrClient, csrPort, requestToken } from './support/csr-client.js';
import { adminKubeConfig, createTestNamespace } from './support/kube.js';
import { sample, scrape } from './support/metrics.js';
import { conditionOf, createRevocation, waitForDecision } from './support/revocation.js';
import { waitFor } from './support/wait.js';
import { deleteCertificateAuthority, setCertificateAuthoritySpec } from './support/workload.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const customObjects = kc.makeApiClient(CustomObjectsApi);
const cleanups: Array<() => Promise<void>> = [];
const SERVER_NAME = 'alcazar.csr-test.svc';
let controller: ControllerProcess;
let client: CsrClient;
let ns: string;
let roots: string;
const dir = mkdtempSync(join(tmpdir(), 'alcazar-csr-api-'));

const idOf = (namespace: string, sa: string) => `spiffe://cluster.local/ns/${namespace}/sa/${sa}`;
const issuedLines = () => controller.lines.filter((l) => l.msg === 'issued certificate for CSR');

/** A client that presents the chain it was issued (and its key) as its TLS client certificate. */
async function clientWithCertificate(chain: string[], key: ReturnType<typeof testKey>): Promise<CsrClient> {
  return new CsrClient({
    port: await csrPort(controller),
    roots,
    serverName: SERVER_NAME,
    clientCertificate: {
      cert: chain.join(''),
      key: key.export({ format: 'pem', type: 'pkcs8' }) as string,
    },
  });
}

beforeAll(async () => {
  await setCertificateAuthoritySpec(customObjects, { csr: { maxValidity: '48h' } });
  const ca = await createTestNamespace(core, 'ca');
  cleanups.push(ca.remove);
  const workloads = await createTestNamespace(core, 'csr');
  cleanups.push(workloads.remove);
  ns = workloads.name;
  for (const sa of ['a', 'b']) {
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  }
  controller = await startController({
    caNamespace: ca.name,
    args: ['--csr-port=0', `--csr-dns-names=${SERVER_NAME}`],
  });
  // What an agent trusts: the bundle alcazar publishes in its namespace.
  roots = await waitFor('the trust bundle', async () => {
    const cm = await core
      .readNamespacedConfigMap({ namespace: ns, name: 'istio-ca-root-cert' })
      .catch(() => undefined);
    return cm?.data?.['root-cert.pem'];
  });
  client = new CsrClient({ port: await csrPort(controller), roots, serverName: SERVER_NAME });
  await controller.waitForLog(
    'the serving certificate',
    (l) => l.msg === 'CSR API serving certificate issued',
  );
}, 120_000);

afterAll(async () => {
  client?.close();
  await controller?.stop();
  await deleteCertificateAuthority(customObjects);
  await Promise.all(cleanups.map((c) => c()));
  rmSync(dir, { recursive: true, force: true });
});

describe('CSR API', () => {
  it("issues the caller's own identity: leaf then root bundle, each ending in a newline, verified by OpenSSL", async () => {
    const token = await requestToken(core, ns, 'a');
    const outcome = await client.call(
      { csr: buildTestCsrPem({ uris: [idOf(ns, 'a')] }), validityDuration: 3600 },
      token,
    );
    expect(outcome).toMatchObject({ ok: true });
    if (!outcome.ok) return;
    expect(outcome.chain).toHaveLength(2);
    for (const element of outcome.chain) expect(element.endsWith('\n')).toBe(true);
    expect(outcome.chain[1]).toBe(roots.endsWith('\n') ? roots : `${roots}\n`);
    const leaf = inspectCertificate(decodeCertificatesPem(outcome.chain[0]!)[0]!);
    expect(leaf.uris).toEqual([idOf(ns, 'a')]);
    expect(leaf.dnsNames).toEqual([]);
    expect(leaf.isCA).toBe(false);
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBeLessThanOrEqual(3600_000 + 5 * 60_000);
    writeFileSync(join(dir, 'roots.pem'), outcome.chain.at(-1)!);
    writeFileSync(join(dir, 'leaf.pem'), outcome.chain[0]!);
    expect(
      execFileSync('openssl', ['verify', '-CAfile', join(dir, 'roots.pem'), join(dir, 'leaf.pem')], {
        encoding: 'utf8',
      }),
    ).toContain(': OK');
    const line = await controller.waitForLog(
      'the issuance line',
      (l) => l.msg === 'issued certificate for CSR' && l.serviceAccount === 'a',
    );
    expect(line).toMatchObject({ namespace: ns, serial: leaf.serialNumberHex });
  });

  it('uses the default lifetime when none is asked for, and reuses a reviewed token', async () => {
    const token = await requestToken(core, ns, 'b');
    const before = sample(await scrape(controller), 'alcazar_csr_token_reviews_total', { cache: 'hit' });
    for (let i = 0; i < 2; i++) {
      const outcome = await client.call({ csr: buildTestCsrPem({ uris: [idOf(ns, 'b')] }) }, token);
      expect(outcome.ok).toBe(true);
      if (!outcome.ok) return;
      const leaf = inspectCertificate(decodeCertificatesPem(outcome.chain[0]!)[0]!);
      // 24 h, notBefore backdated by the clock-skew allowance (5 min).
      expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe(24 * 3600_000 + 5 * 60_000);
    }
    expect(sample(await scrape(controller), 'alcazar_csr_token_reviews_total', { cache: 'hit' })).toBe(
      before + 1,
    );
  });

  it('accepts a client certificate it issued instead of a token', async () => {
    const key = testKey('P-256');
    const token = await requestToken(core, ns, 'a');
    const first = await client.call(
      { csr: buildTestCsrPem({ privateKey: key, uris: [idOf(ns, 'a')] }) },
      token,
    );
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    const withCertificate = await clientWithCertificate(first.chain, key);
    try {
      const renewed = await withCertificate.call({ csr: buildTestCsrPem({ uris: [idOf(ns, 'a')] }) });
      expect(renewed.ok).toBe(true);
      // The certificate proves identity a, and nothing else.
      const other = await withCertificate.call({ csr: buildTestCsrPem({ uris: [idOf(ns, 'b')] }) });
      expect(other).toMatchObject({ ok: false, code: status.PERMISSION_DENIED });
    } finally {
      withCertificate.close();
    }
  });

  it('refuses a revoked client certificate, and takes a token from the same caller instead', async () => {
    const key = testKey('P-256');
    const csr = () => buildTestCsrPem({ uris: [idOf(ns, 'b')] });
    const first = await client.call(
      { csr: buildTestCsrPem({ privateKey: key, uris: [idOf(ns, 'b')] }) },
      await requestToken(core, ns, 'b'),
    );
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    const [leaf] = decodeCertificatesPem(first.chain[0]!);
    const serial = normalizeSerialHex(inspectCertificate(leaf!).serialNumberHex)!;
    await createRevocation(customObjects, ns, 'b-leaked', {
      serialNumbers: [serial],
      reason: 'keyCompromise',
    });
    const decided = await waitForDecision(customObjects, ns, 'b-leaked');
    expect(conditionOf(decided, 'Applied')).toMatchObject({ status: 'True' });
    const withCertificate = await clientWithCertificate(first.chain, key);
    try {
      // The controller's cache hears of the decision a moment after the API server has it.
      const refused = await waitFor('the revoked certificate refused', async () => {
        const outcome = await withCertificate.call({ csr: csr() });
        return outcome.ok ? undefined : outcome;
      });
      expect(refused).toMatchObject({ ok: false, code: status.UNAUTHENTICATED });
      expect(refused.ok === false && refused.details).toMatch(/has been revoked/);
      const logged = issuedLines().length;
      const withToken = await withCertificate.call({ csr: csr() }, await requestToken(core, ns, 'b'));
      expect(withToken.ok).toBe(true);
      // Its log line comes through the controller's stdout a moment later: wait for it here, or it
      // lands in the next test's count of certificates issued.
      await waitFor('the issuance logged', async () => issuedLines().length > logged || undefined);
    } finally {
      withCertificate.close();
    }
  });

  describe('refusals, each with its code and no certificate issued', () => {
    const cases: Array<
      [string, () => Promise<{ csr: string; validityDuration?: number; token?: string }>, number, RegExp]
    > = [
      [
        'no token',
        async () => ({ csr: buildTestCsrPem({ uris: [idOf(ns, 'a')] }) }),
        status.UNAUTHENTICATED,
        /no "authorization: Bearer/,
      ],
      [
        'an expired token',
        async () => {
          // TokenRequest will not mint a token that is already expired: take a real one and move its
          // exp into the past. alcazar refuses it before any TokenReview (it would fail there too).
          const [header, payload, signature] = (await requestToken(core, ns, 'a')).split('.');
          const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
          claims.exp = Math.floor(Date.now() / 1000) - 60;
          const token = [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join(
            '.',
          );
          return { csr: buildTestCsrPem({ uris: [idOf(ns, 'a')] }), token };
        },
        status.UNAUTHENTICATED,
        /expired/,
      ],
      [
        'a token for another audience',
        async () => ({
          csr: buildTestCsrPem({ uris: [idOf(ns, 'a')] }),
          token: await requestToken(core, ns, 'a', ['not-istio']),
        }),
        status.UNAUTHENTICATED,
        /did not authenticate the token|audience/,
      ],
      [
        'a garbage token',
        async () => ({ csr: buildTestCsrPem({ uris: [idOf(ns, 'a')] }), token: 'not-a-jwt' }),
        status.UNAUTHENTICATED,
        /did not authenticate/,
      ],
      [
        'a token of ServiceAccount a with a CSR for b',
        async () => ({
          csr: buildTestCsrPem({ uris: [idOf(ns, 'b')] }),
          token: await requestToken(core, ns, 'a'),
        }),
        status.PERMISSION_DENIED,
        /may only have spiffe:\/\/cluster.local\/ns\/.*\/sa\/a/,
      ],
      [
        'extra SANs',
        async () => ({
          csr: buildTestCsrPem({ uris: [idOf(ns, 'a')], dnsNames: ['evil.example.com'] }),
          token: await requestToken(core, ns, 'a'),
        }),
        status.PERMISSION_DENIED,
        /DNS:evil.example.com/,
      ],
      [
        'a second URI SAN',
        async () => ({
          csr: buildTestCsrPem({ uris: [idOf(ns, 'a'), 'spiffe://cluster.local/ns/kube-system/sa/admin'] }),
          token: await requestToken(core, ns, 'a'),
        }),
        status.PERMISSION_DENIED,
        /may only have/,
      ],
      [
        'malformed DER',
        async () => ({
          csr: encodePem('CERTIFICATE REQUEST', Buffer.from('3082010a0201', 'hex')),
          token: await requestToken(core, ns, 'a'),
        }),
        status.INVALID_ARGUMENT,
        /not one DER SEQUENCE|not a DER PKCS#10/,
      ],
      [
        'a bad signature',
        async () => ({
          csr: buildTestCsrPem({ uris: [idOf(ns, 'a')], corruptSignature: true }),
          token: await requestToken(core, ns, 'a'),
        }),
        status.INVALID_ARGUMENT,
        /signature does not verify/,
      ],
      [
        'an unsupported key (P-521)',
        async () => ({
          csr: buildTestCsrPem({ privateKey: testKey('P-521'), uris: [idOf(ns, 'a')] }),
          token: await requestToken(core, ns, 'a'),
        }),
        status.INVALID_ARGUMENT,
        /curve secp521r1 is not accepted/,
      ],
      [
        'an oversized message',
        async () => ({
          csr: `${buildTestCsrPem({ uris: [idOf(ns, 'a')] })}${' '.repeat(200_000)}`,
          token: await requestToken(core, ns, 'a'),
        }),
        status.RESOURCE_EXHAUSTED,
        /.*/,
      ],
      [
        'a validity above the maximum',
        async () => ({
          csr: buildTestCsrPem({ uris: [idOf(ns, 'a')] }),
          validityDuration: 49 * 3600,
          token: await requestToken(core, ns, 'a'),
        }),
        status.INVALID_ARGUMENT,
        /exceeds the maximum of 172800s/,
      ],
    ];

    it.each(cases)('%s', async (_, make, code, message) => {
      const request = await make();
      const before = issuedLines().length;
      const issuedBefore = sample(await scrape(controller), 'citadel_server_success_cert_issuance_count');
      const outcome = await client.call(request, request.token);
      expect(outcome).toMatchObject({ ok: false, code });
      if (outcome.ok) return;
      expect(outcome.details).toMatch(message);
      expect(sample(await scrape(controller), 'citadel_server_success_cert_issuance_count')).toBe(
        issuedBefore,
      );
      expect(issuedLines()).toHaveLength(before);
    });

    it('an unmanaged namespace', async () => {
      const off = await createTestNamespace(core, 'csr-off', { 'ca.istio.io/override': 'false' });
      cleanups.push(off.remove);
      await core.createNamespacedServiceAccount({ namespace: off.name, body: { metadata: { name: 'c' } } });
      const token = await requestToken(core, off.name, 'c');
      const outcome = await client.call({ csr: buildTestCsrPem({ uris: [idOf(off.name, 'c')] }) }, token);
      expect(outcome).toMatchObject({ ok: false, code: status.PERMISSION_DENIED });
      if (!outcome.ok) expect(outcome.details).toContain(`namespace ${off.name} is not managed`);
      expect(issuedLines().filter((l) => l.namespace === off.name)).toHaveLength(0);
    });

    it("counted every refusal in Citadel's metrics", async () => {
      const text = await scrape(controller);
      expect(sample(text, 'citadel_server_authentication_failure_count')).toBeGreaterThanOrEqual(4);
      expect(sample(text, 'citadel_server_csr_parsing_err_count')).toBeGreaterThanOrEqual(3);
      expect(sample(text, 'citadel_server_id_extraction_err_count')).toBeGreaterThanOrEqual(3);
      expect(sample(text, 'citadel_server_csr_count')).toBeGreaterThan(
        sample(text, 'citadel_server_success_cert_issuance_count'),
      );
    });
  });

  it('answers a good caller while a flood of bad tokens waits for TokenReviews', async () => {
    const token = await requestToken(core, ns, 'b');
    const csr = buildTestCsrPem({ uris: [idOf(ns, 'b')] });
    expect((await client.call({ csr }, token)).ok).toBe(true); // its review is now cached
    // 200 distinct forged tokens: each needs a TokenReview, at most 8 run at once.
    const flood = Array.from({ length: 200 }, (_, i) =>
      client.call({ csr }, `${token.slice(0, -8)}forged${i}`),
    );
    const good = await client.call({ csr }, token);
    expect(good.ok).toBe(true);
    const refused = await Promise.all(flood);
    expect(refused.every((o) => !o.ok && o.code === status.UNAUTHENTICATED)).toBe(true);
  });

  it('never logs a token', async () => {
    const token = await requestToken(core, ns, 'a');
    await client.call({ csr: buildTestCsrPem({ uris: [idOf(ns, 'b')] }) }, token);
    const signature = token.split('.')[2]!;
    expect(controller.lines.some((l) => JSON.stringify(l).includes(signature))).toBe(false);
  });

  it('reports the server in /readyz', async () => {
    const port = (
      await controller.waitForLog('metrics port', (l) => l.msg === 'serving /metrics, /healthz and /readyz')
    ).port;
    const text = await (await fetch(`http://127.0.0.1:${port}/readyz?verbose`)).text();
    expect(text).toMatch(/csr-api/);
  });
});
