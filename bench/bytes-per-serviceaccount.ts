// What the controller keeps per ServiceAccount, measured in-process without a cluster: the shared
// caches over the in-memory API server, filled with N ServiceAccounts and valid ECDSA Secrets, and
// a work queue with N keys scheduled for renewal; bytes retained after a full GC.
//   npx tsx --expose-gc bench/bytes-per-serviceaccount.ts [N]   (default 3000, multiples of 100)
import { issueWorkload } from '../src/ca/issue.js';
import { controllerTestBed, readyAuthority } from '../src/controllers/testing.js';
import { WorkQueue } from '../src/kube/workqueue.js';

const n = Number(process.argv[2] ?? 3000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const collect = () => {
  gc();
  gc();
  return process.memoryUsage();
};

async function caches(): Promise<{ heap: number; arrayBuffers: number }> {
  const bed = controllerTestBed();
  await bed.start();
  await readyAuthority(bed);
  const state = bed.caches.state.authority.current;
  if (state.status !== 'ready') throw new Error('the CA is not ready');
  for (let i = 0; i < n / 100; i++) bed.namespace(`p${i}`, { labels: { 'ca.istio.io/override': 'true' } });
  for (let i = 0; i < n; i++) {
    const namespace = `p${Math.floor(i / 100)}`;
    const name = `sa-${i}`;
    const material = await issueWorkload(state.authority, {
      spiffeId: `spiffe://cluster.local/ns/${namespace}/sa/${name}`,
      dnsNames: [],
      keyAlgorithm: 'ECDSA_P256',
      ttlMs: 90 * 24 * 3600_000,
      backdateMs: 0,
      now: new Date(bed.clock.now()),
    });
    const uid = (prefix: number) => `${prefix}0000000-0000-0000-0000-${String(i).padStart(12, '0')}`;
    bed.api.seed(`/api/v1/namespaces/${namespace}/serviceaccounts/${name}`, {
      metadata: { name, namespace, uid: uid(0) },
    });
    bed.api.seed(`/api/v1/namespaces/${namespace}/secrets/istio.${name}`, {
      metadata: {
        name: `istio.${name}`,
        namespace,
        uid: uid(1),
        labels: { 'app.kubernetes.io/managed-by': 'alcazar' },
      },
      type: 'istio.io/key-and-cert',
      data: Object.fromEntries(
        Object.entries(material.data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      ),
    });
    if (i % 500 === 0) await bed.settle();
  }
  for (let i = 0; i < 400; i++) {
    if (bed.caches.workloadSecrets.size >= n && bed.caches.serviceAccounts.size >= n) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const full = collect();
  // What the two workload caches hold is what clearing them frees (the fake API server keeps its own copy).
  for (const informer of [bed.caches.workloadSecrets, bed.caches.serviceAccounts])
    (informer as unknown as { store: Map<string, unknown> }).store.clear();
  const cleared = collect();
  await bed.stop();
  return { heap: full.heapUsed - cleared.heapUsed, arrayBuffers: full.arrayBuffers - cleared.arrayBuffers };
}

function queue(): number {
  const keys = Array.from({ length: n }, (_, i) => `p${Math.floor(i / 100)}/sa-${i}`);
  const before = collect().heapUsed;
  const q = new WorkQueue();
  for (const [i, key] of keys.entries()) q.addAfter(key, 45 * 24 * 3600_000 + i * 1000);
  const after = collect().heapUsed;
  q.shutDown();
  return after - before;
}

const c = await caches();
const q = queue();
const per = (bytes: number) => Math.round(bytes / n);
console.log(`N=${n}, bytes per ServiceAccount:`);
console.log(`  caches, JS heap:            ${per(c.heap)}`);
console.log(`  caches, ArrayBuffers:       ${per(c.arrayBuffers)}`);
console.log(`  work queue (renewal timer): ${per(q)}`);
console.log(`  sum:                        ${per(c.heap + c.arrayBuffers + q)}`);
process.exit(0);
