// CPU per workload Secret when a cache lists it: observeSecret on Secrets the signing authority
// issued, by the content digest (src/ca/content-digest.ts: the signature and key checks skipped), by
// the quick check (src/pki/leaf-check.ts) and by the full OpenSSL parse both fall back to, in one
// process, interleaved, medians of 3 passes each.
// Hold the bench lock: `flock /work/notes/bench.lock npx tsx bench/observe-cost.ts [N]`.
import type { V1Secret } from '@kubernetes/client-node';
import { loadSelfSigned } from '../src/ca/authority.js';
import { contentDigest } from '../src/ca/content-digest.js';
import { issueWorkload } from '../src/ca/issue.js';
import { leafChecks, observeSecret } from '../src/controllers/workload-secrets/observe.js';
import { CONTENT_DIGEST_ANNOTATION } from '../src/model/names.js';
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
/** The same Secrets as alcazar writes them now: with the content digest. */
const digested: V1Secret[] = [];
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
  const secret: V1Secret = {
    metadata: { name: `istio.sa-${i}`, namespace: 'bench', uid: `u-${i}`, resourceVersion: String(i) },
    type: 'istio.io/key-and-cert',
    data,
  };
  secrets.push(secret);
  const bytes = (k: keyof typeof material.data) => Buffer.from(material.data[k]);
  const digest = contentDigest(authority, {
    'cert-chain.pem': bytes('cert-chain.pem'),
    'key.pem': bytes('key.pem'),
    'root-cert.pem': bytes('root-cert.pem'),
  });
  digested.push({
    ...secret,
    metadata: { ...secret.metadata, annotations: { [CONTENT_DIGEST_ANNOTATION]: digest } },
  });
}

function time(label: string, signer: typeof authority, listed = secrets): number {
  let ok = 0;
  const checksBefore = leafChecks.signatureAndKey;
  const started = process.cpuUsage();
  for (const secret of listed) {
    const view = observeSecret(secret, undefined, () => signer);
    if (view.verified?.ok && !view.dataProblem) ok++;
  }
  const used = process.cpuUsage(started);
  const usPerSecret = (used.user + used.system) / n;
  const checks = leafChecks.signatureAndKey - checksBefore;
  console.log(
    `${label}: ${usPerSecret.toFixed(1)} µs CPU per Secret (${ok} of ${n} verified by the signer, ${checks} signature and key checks attempted)`,
  );
  return usPerSecret;
}

// Warm up every path, then measure each three times, interleaved.
time('warm-up digest', authority, digested);
time('warm-up quick', authority);
time('warm-up full', stranger);
const digest: number[] = [];
const quick: number[] = [];
const full: number[] = [];
for (let pass = 0; pass < 3; pass++) {
  digest.push(time('content digest', authority, digested));
  quick.push(time('quick check', authority));
  full.push(time('full parse (other signer)', stranger));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  `medians: digest ${median(digest).toFixed(1)} µs, quick ${median(quick).toFixed(1)} µs, full ${median(full).toFixed(1)} µs`,
);
console.log(`quick / digest: ${(median(quick) / median(digest)).toFixed(2)}×`);
console.log(`full / quick: ${(median(full) / median(quick)).toFixed(2)}×`);
console.log(`full / digest: ${(median(full) / median(digest)).toFixed(2)}×`);
