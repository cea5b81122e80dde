// CPU per workload Secret when a cache lists it: observeSecret on Secrets the signing authority
// issued, by the quick check (src/pki/leaf-check.ts) and by the full OpenSSL parse it falls back to,
// in one process. Hold the bench lock: `flock /work/notes/bench.lock npx tsx bench/observe-cost.ts [N]`.
import type { V1Secret } from '@kubernetes/client-node';
import { loadSelfSigned } from '../src/ca/authority.js';
import { issueWorkload } from '../src/ca/issue.js';
import { observeSecret } from '../src/controllers/workload-secrets/observe.js';
import { privateKeyToPem } from '../src/pki/index.js';
import { createTestCa } from '../src/pki/testing.js';

const n = Number(process.argv[2] ?? 2000);
const now = new Date();
const root = await createTestCa({ notBefore: new Date(now.getTime() - 3_600_000) });
const load = (ca: typeof root) =>
  loadSelfSigned(
    {
      'ca-cert.pem': Buffer.from(ca.root.pem),
      'ca-key.pem': Buffer.from(privateKeyToPem(ca.keys.privateKey)),
    },
    'bench/istio-ca-secret',
    { now, minRemainingMs: 60_000 },
  );
const authority = await load(root);
// Another authority: its quick check fails at the first comparison and the full parse runs, as for
// every Secret before the quick check existed.
const stranger = await load(await createTestCa({ notBefore: new Date(now.getTime() - 3_600_000) }));

const secrets: V1Secret[] = [];
for (let i = 0; i < n; i++) {
  const material = await issueWorkload(authority, {
    spiffeId: `spiffe://cluster.local/ns/bench/sa/sa-${i}`,
    dnsNames: [],
    keyAlgorithm: 'ECDSA_P256',
    ttlMs: 86_400_000,
    backdateMs: 60_000,
    now,
  });
  const data = Object.fromEntries(
    Object.entries(material.data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  );
  secrets.push({
    metadata: { name: `istio.sa-${i}`, namespace: 'bench', uid: `u-${i}`, resourceVersion: String(i) },
    type: 'istio.io/key-and-cert',
    data,
  });
}

function time(label: string, signer: typeof authority): number {
  let ok = 0;
  const started = process.cpuUsage();
  for (const secret of secrets) {
    const view = observeSecret(secret, undefined, () => signer);
    if (view.verified?.ok && !view.dataProblem) ok++;
  }
  const used = process.cpuUsage(started);
  const usPerSecret = (used.user + used.system) / n;
  console.log(`${label}: ${usPerSecret.toFixed(1)} µs CPU per Secret (${ok} of ${n} verified by the signer)`);
  return usPerSecret;
}

// Warm up both paths, then measure each twice, interleaved.
time('warm-up quick', authority);
time('warm-up full', stranger);
const quick = [time('quick check', authority), time('quick check', authority)];
const full = [time('full parse (other signer)', stranger), time('full parse (other signer)', stranger)];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`full / quick: ${(median(full) / median(quick)).toFixed(2)}×`);
