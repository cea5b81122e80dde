// Private keys never reach the logs. Runs last (see support/last-sequencer.ts):
// scans every controller log the suite wrote to .local/test-logs/ for private
// keys in any encoding, and for the exact key.pem values of every workload and
// CA Secret that exists now or that earlier tests recorded. A canary
// controller of its own makes sure there is minting activity to scan even when
// this file runs alone; the scanner itself is checked against planted keys.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, privateKeyToPem } from '../../src/pki/index.js';
import { digestOf } from './support/audit.js';
import { type ControllerProcess, startController, testLogDir } from './support/controller.js';
import { recordedKeyDigests, recordKeyDigests } from './support/key-digests.js';
import { leaksInLine, scanText } from './support/key-leak-scan.js';
import { adminKubeConfig, createTestNamespace } from './support/kube.js';
import { ensureServiceAccount } from './support/load.js';
import { waitForWorkloadSecret } from './support/workload.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const cleanups: Array<() => Promise<void>> = [];

afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
});

/** sha256 of every private-key value stored in a workload or CA Secret in the cluster now. */
async function keyDigestsInCluster(): Promise<string[]> {
  const [workloads, roots, pluggedIn] = await Promise.all([
    core.listSecretForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=alcazar' }),
    core.listSecretForAllNamespaces({ fieldSelector: 'type=istio.io/ca-root' }),
    core.listSecretForAllNamespaces({ fieldSelector: 'metadata.name=cacerts' }),
  ]);
  const digests: string[] = [];
  for (const secret of [...workloads.items, ...roots.items, ...pluggedIn.items]) {
    for (const [key, value] of Object.entries(secret.data ?? {}))
      if (key.endsWith('key.pem')) digests.push(digestOf(value));
  }
  return digests;
}

describe('secrets never leak', () => {
  it('the scanner finds a planted key in every encoding it looks for', async () => {
    const pem = privateKeyToPem((await generateKeyPair('ECDSA_P256')).privateKey);
    const stored = Buffer.from(pem).toString('base64');
    const body = pem
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join('\\n');
    const known = new Set([digestOf(stored)]);
    expect(leaksInLine(JSON.stringify({ msg: 'x', pem }), new Set())).toContain('pem-marker');
    expect(leaksInLine(JSON.stringify({ data: { 'key.pem': stored } }), known)).toEqual(
      expect.arrayContaining(['known-key-value', 'base64-pem-key']),
    );
    expect(leaksInLine(`{"msg":"body ${body}"}`, new Set())).toEqual(['base64-der-key']);
    // What the logs legitimately hold is not mistaken for a key.
    expect(
      leaksInLine(
        '{"signer":"c678bbfbc52e2dbca79cc1059c8f45f414f9d8a445cd262260b0f62fc339a177","serial":"399a71a63229e4c9821c3b22317848df"}',
        new Set(),
      ),
    ).toEqual([]);
  });

  it('no controller log of this run holds a private key (PEM, base64, DER, or any key.pem value minted)', async () => {
    // A canary: a controller that mints, so there is something to scan whatever ran before.
    const ca = await createTestNamespace(core, 'ca');
    const ns = await createTestNamespace(core, 'leak');
    cleanups.push(ca.remove, ns.remove);
    let canary: ControllerProcess | undefined = await startController({ caNamespace: ca.name });
    try {
      for (const sa of ['canary-1', 'canary-2']) await ensureServiceAccount(core, ns.name, sa);
      for (const sa of ['canary-1', 'canary-2']) {
        const secret = await waitForWorkloadSecret(core, ns.name, sa);
        recordKeyDigests([digestOf(secret.data!['key.pem']!)]);
        await canary.waitForLog(
          `the issue for ${sa}`,
          (l) => l.msg === 'issued workload certificate' && l.serviceAccount === sa,
        );
      }
    } finally {
      await canary.stop();
      canary = undefined;
    }

    const known = new Set([...recordedKeyDigests(), ...(await keyDigestsInCluster())]);
    const files = readdirSync(testLogDir).filter((f) => f.startsWith('controller-') && f.endsWith('.log'));
    let bytes = 0;
    let issuedLines = 0;
    const findings = files.flatMap((file) => {
      const text = readFileSync(join(testLogDir, file), 'utf8');
      bytes += text.length;
      issuedLines += text.split('"msg":"issued workload certificate"').length - 1;
      return scanText(file, text, known);
    });
    console.log(
      `[key-leak] scanned ${files.length} controller logs (${bytes} bytes, ${issuedLines} certificates issued) ` +
        `against ${known.size} known key values`,
    );
    expect(files.length, 'controller logs to scan').toBeGreaterThan(0);
    expect(bytes).toBeGreaterThan(0);
    expect(issuedLines, 'the logs show minting').toBeGreaterThanOrEqual(2);
    expect(known.size).toBeGreaterThanOrEqual(2);
    expect(findings).toEqual([]);
  });
});
