// Revocation with a plugged-in CA (cacerts): alcazar signs the CRL with the operator's intermediate
// and publishes the operator's own CRLs (cacerts' ca-crl.pem) next to it, except one the intermediate
// issued itself, whose entries go into alcazar's; an intermediate that may
// not sign CRLs is reported on the CertificateAuthority as CRLValid=False, and issuing goes on.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { buildCrl, crlSignedBy, decodeCrlsPem, parseCrl } from '../../src/pki/crl.js';
import { privateKeyToPem } from '../../src/pki/keys.js';
import { decodeCertificatesPem } from '../../src/pki/pem.js';
import { createTestCa, createTestIntermediate, type TestCa } from '../../src/pki/testing.js';
import { useHarness } from './support/harness.js';
import {
  conditionOf,
  createRevocation,
  crlText,
  listedSerials,
  opensslVerifyWithCrl,
  serialOf,
  waitForCrl,
  waitForDecision,
  waitForReissued,
} from './support/revocation.js';
import { waitFor } from './support/wait.js';
import {
  getCertificateAuthority,
  setCertificateAuthoritySpec,
  waitForWorkloadSecret,
} from './support/workload.js';

const harness = useHarness({ cleanup: 'each', certificateAuthority: true });
const { core, customObjects } = harness;
const HOUR_MS = 3_600_000;

/** cacerts data for `signer` (PEM certificate and key) under the test root. */
function cacerts(ca: TestCa, signerPem: string, signerKeyPem: string, extra: Record<string, string> = {}) {
  return {
    'ca-cert.pem': signerPem,
    'ca-key.pem': signerKeyPem,
    'root-cert.pem': ca.root.pem,
    'cert-chain.pem': signerPem + ca.root.pem,
    ...extra,
  };
}

async function pluggedInController(data: Record<string, string>) {
  const caNs = await harness.namespace('ca');
  await core.createNamespacedSecret({
    namespace: caNs,
    body: { metadata: { name: 'cacerts' }, type: 'Opaque', stringData: data },
  });
  await setCertificateAuthoritySpec(customObjects, { rootCA: { mode: 'PluggedIn' } });
  await harness.controller({ caNamespace: caNs });
  return caNs;
}

async function workload(ns: string, sa: string): Promise<V1Secret> {
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  return waitForWorkloadSecret(core, ns, sa);
}

/**
 * An intermediate CA under `ca` whose KeyUsage lacks cRLSign, made by OpenSSL (alcazar's own
 * issuer always sets it). The files live in a private temporary directory for the call only.
 */
function intermediateWithoutCrlSign(ca: TestCa): { certPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'alcazar-no-crlsign-'));
  const path = (name: string) => join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    writeFileSync(path('root.pem'), ca.root.pem);
    writeFileSync(path('root.key'), privateKeyToPem(ca.keys.privateKey), { mode: 0o600 });
    writeFileSync(
      path('ext.cnf'),
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', path('int.key')]);
    openssl(['pkcs8', '-topk8', '-nocrypt', '-in', path('int.key'), '-out', path('int.p8')]);
    openssl([
      'req',
      '-new',
      '-key',
      path('int.p8'),
      '-subj',
      '/O=cluster.local/CN=no crlSign',
      '-out',
      path('int.csr'),
    ]);
    openssl([
      'x509',
      '-req',
      '-in',
      path('int.csr'),
      '-CA',
      path('root.pem'),
      '-CAkey',
      path('root.key'),
      '-CAcreateserial',
      '-days',
      '30',
      '-extfile',
      path('ext.cnf'),
      '-out',
      path('int.pem'),
    ]);
    return { certPem: readFileSync(path('int.pem'), 'utf8'), keyPem: readFileSync(path('int.p8'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('revocation with a plugged-in CA', () => {
  it("signs the CRL with the cacerts intermediate, publishes the root's CRL from ca-crl.pem beside it and merges the intermediate's own", async () => {
    const notBefore = new Date(Date.now() - 60_000);
    const ca = await createTestCa({ notBefore });
    const intermediate = await createTestIntermediate(ca.issuer, { notBefore });
    // The operator's CRL: the root revokes some other intermediate of its own.
    const operatorSerial = 'abcdef0123';
    const operatorCrl = buildCrl({
      issuer: { certificate: ca.root.der, privateKey: ca.keys.privateKey },
      crlNumber: 7n,
      thisUpdate: notBefore,
      nextUpdate: new Date(Date.now() + 24 * HOUR_MS),
      entries: [{ serial: operatorSerial, revokedAt: notBefore, reason: 'cACompromise' }],
    });
    // And one the intermediate itself issued (as istiod's, carried over with it): one CRL per issuer.
    const carriedSerial = '0a0b0c';
    const carriedCrl = buildCrl({
      issuer: { certificate: intermediate.certificate.der, privateKey: intermediate.keys.privateKey },
      crlNumber: 5n,
      thisUpdate: notBefore,
      nextUpdate: new Date(Date.now() + 24 * HOUR_MS),
      entries: [{ serial: carriedSerial, revokedAt: notBefore, reason: 'superseded' }],
    });
    const caNs = await pluggedInController(
      cacerts(ca, intermediate.certificate.pem, privateKeyToPem(intermediate.keys.privateKey), {
        'ca-crl.pem': operatorCrl.pem + carriedCrl.pem,
      }),
    );

    const ns = await harness.namespace('rvp');
    const before = await workload(ns, 'cart');
    await createRevocation(customObjects, ns, 'cart-leak', {
      serviceAccountName: 'cart',
      reason: 'keyCompromise',
    });
    const decided = await waitForDecision(customObjects, ns, 'cart-leak');
    expect(conditionOf(decided, 'Applied')).toMatchObject({ status: 'True', reason: 'Revoked' });
    const after = await waitForReissued(core, ns, 'cart', before);

    const published = await waitForCrl(core, ns, 'the revoked serial', (t) =>
      listedSerials(t).has(serialOf(before)),
    );
    const text = crlText(published);
    const crls = decodeCrlsPem(text);
    const bySigner = (der: Buffer) => crls.filter((crl) => crlSignedBy(crl, der));
    const [ours, ...more] = bySigner(intermediate.certificate.der);
    expect(ours, 'a CRL signed by the cacerts intermediate').toBeDefined();
    expect(more, 'and only one').toEqual([]);
    expect(parseCrl(ours!).entries.map((e) => e.serial)).toEqual(
      expect.arrayContaining([serialOf(before), carriedSerial]),
    );
    expect(bySigner(ca.root.der).map((der) => der.equals(operatorCrl.der))).toEqual([true]);
    expect(crls).toHaveLength(2);
    const caText = crlText(await waitForCrl(core, caNs, 'the same CRLs', (t) => t === text));
    expect(caText).toBe(text);

    expect(opensslVerifyWithCrl(before, text)).toMatch(/certificate revoked/);
    expect(opensslVerifyWithCrl(after, text)).toMatch(/: OK/);
    const status = await getCertificateAuthority(customObjects);
    expect(status.status?.conditions?.find((c) => c.type === 'CRLValid')).toMatchObject({
      status: 'True',
      reason: 'Signed',
    });
  });

  it('reports an intermediate that may not sign CRLs as CRLValid=False and keeps issuing', async () => {
    const ca = await createTestCa({ notBefore: new Date(Date.now() - 60_000) });
    const signer = intermediateWithoutCrlSign(ca);
    const [signerDer] = decodeCertificatesPem(signer.certPem);
    await pluggedInController(cacerts(ca, signer.certPem, signer.keyPem));

    const ns = await harness.namespace('rvn');
    const issued = await workload(ns, 'web');
    const pems = decodeCertificatesPem(Buffer.from(issued.data!['cert-chain.pem']!, 'base64').toString());
    expect(pems[1]?.equals(signerDer!), 'the leaf is signed by the intermediate without cRLSign').toBe(true);

    const condition = await waitFor('CRLValid=False on the CertificateAuthority', async () => {
      const found = (await getCertificateAuthority(customObjects)).status?.conditions?.find(
        (c) => c.type === 'CRLValid',
      );
      return found?.status === 'False' ? found : undefined;
    });
    expect(condition.reason).toBe('SignFailed');
    expect(condition.message).toMatch(/cRLSign/);
    // Nothing is published that a verifier would take for a valid CRL of this CA.
    const published = await core
      .readNamespacedConfigMap({ namespace: ns, name: 'istio-ca-crl' })
      .catch(() => undefined);
    const text = crlText(published);
    expect(decodeCrlsPem(text).filter((crl) => crlSignedBy(crl, signerDer!))).toEqual([]);
  });
});
