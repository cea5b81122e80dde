// A flood against a running controller: a burst of new ServiceAccounts while
// existing workload Secrets are tampered with in every way an outsider with
// write access can (garbage, a foreign key, a dropped key, a wrong bundle,
// deletion). Used by test/integration/flood.test.ts (scaled down, in npm
// test) and bench/flood.ts (`npm run flood`, 10,000 / 1,000).
import { readFileSync } from 'node:fs';
import type { CoreV1Api } from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { type Audit, auditNamespaces, caRootsOf } from './audit.js';
import { runPool } from './load.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const b64 = (text: string) => Buffer.from(text).toString('base64');

export const TAMPER_KINDS = [
  'garbage-chain',
  'foreign-key',
  'dropped-key',
  'wrong-bundle',
  'deleted',
] as const;
export type TamperKind = (typeof TAMPER_KINDS)[number];

export interface Workload {
  namespace: string;
  name: string;
}

/** Resident memory of a process, in MB. */
export function rssMbOf(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** What another workload's Secret held before the flood (read up front: it may be tampered with or gone later). */
export interface Donor {
  keyPem: string;
  certChainPem: string;
}

/** Tampers with istio.<sa>; `donor` supplies another Secret's valid key or certificate (base64, as stored). */
export async function tamper(core: CoreV1Api, w: Workload, kind: TamperKind, donor: Donor): Promise<void> {
  const name = `istio.${w.name}`;
  const patch = (data: Record<string, string | null>) =>
    core.patchNamespacedSecret({ namespace: w.namespace, name, body: { data } }, mergePatch);
  switch (kind) {
    case 'garbage-chain':
      return void (await patch({ 'cert-chain.pem': b64('-----BEGIN CERTIFICATE-----\nnot base64!\n') }));
    case 'foreign-key':
      return void (await patch({ 'key.pem': donor.keyPem }));
    case 'dropped-key':
      return void (await patch({ 'key.pem': null }));
    case 'wrong-bundle':
      // A leaf where the root should be: a bundle that is not the CA's.
      return void (await patch({ 'root-cert.pem': donor.certChainPem }));
    case 'deleted':
      return void (await core.deleteNamespacedSecret({ namespace: w.namespace, name }));
  }
}

export interface FloodResult {
  created: number;
  tampered: Record<TamperKind, number>;
  idleRssMb: number;
  peakRssMb: number;
  maxQueueDepth: number;
  /** How many times alcazar_workqueue_depth was read (a number each time) while the flood ran. */
  queueDepthReads: number;
  /** Wall time from the start of the burst to a clean audit (a report, not an assertion). */
  convergedSeconds: number;
  audit: Audit;
}

export interface FloodOptions {
  core: CoreV1Api;
  caNamespace: string;
  namespaces: readonly string[];
  /** Workloads whose Secrets exist: the first `tamper` of them are tampered with. */
  existing: readonly Workload[];
  tamper: number;
  /** New ServiceAccounts, spread over `namespaces`. */
  burst: number;
  pid: number;
  /** Reads alcazar_workqueue_depth. */
  queueDepth: () => Promise<number>;
  log: (line: string) => void;
  concurrency?: number;
  convergeTimeoutMs: number;
}

/** Runs the burst and the tampering at once, samples RSS and queue depth, and waits for a clean audit. */
export async function flood(opts: FloodOptions): Promise<FloodResult> {
  const victims = opts.existing.slice(0, opts.tamper);
  const donors: Donor[] = [];
  await runPool(victims, 16, async (w, i) => {
    const secret = await opts.core.readNamespacedSecret({ namespace: w.namespace, name: `istio.${w.name}` });
    donors[i] = {
      keyPem: secret.data?.['key.pem'] ?? '',
      certChainPem: secret.data?.['cert-chain.pem'] ?? '',
    };
  });
  const idleRssMb = rssMbOf(opts.pid);
  let peakRssMb = idleRssMb;
  let maxQueueDepth = 0;
  let queueDepthReads = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        peakRssMb = Math.max(peakRssMb, rssMbOf(opts.pid));
        const depth = await opts.queueDepth();
        if (Number.isFinite(depth)) {
          queueDepthReads++;
          maxQueueDepth = Math.max(maxQueueDepth, depth);
        }
      } catch {
        // the controller is gone: the caller's assertions say so
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  try {
    const outcome = await burstAndConverge(opts, victims, donors);
    return { ...outcome, idleRssMb, peakRssMb, maxQueueDepth, queueDepthReads };
  } finally {
    sampling = false;
    await sampler;
  }
}

async function burstAndConverge(
  opts: FloodOptions,
  victims: readonly Workload[],
  donors: readonly Donor[],
): Promise<Omit<FloodResult, 'idleRssMb' | 'peakRssMb' | 'maxQueueDepth' | 'queueDepthReads'>> {
  const { core, namespaces } = opts;
  const started = Date.now();
  const newcomers = Array.from({ length: opts.burst }, (_, i) => ({
    namespace: namespaces[i % namespaces.length]!,
    name: `flood-${i}`,
  }));
  const tampered = Object.fromEntries(TAMPER_KINDS.map((k) => [k, 0])) as Record<TamperKind, number>;
  await Promise.all([
    runPool(newcomers, opts.concurrency ?? 32, async (w) => {
      await core.createNamespacedServiceAccount({
        namespace: w.namespace,
        body: { metadata: { name: w.name } },
      });
    }),
    runPool(victims, 8, async (w, i) => {
      const kind = TAMPER_KINDS[i % TAMPER_KINDS.length]!;
      await tamper(core, w, kind, donors[(i + 1) % donors.length]!);
      tampered[kind]++;
    }),
  ]);
  opts.log(`burst sent: ${newcomers.length} ServiceAccounts, ${victims.length} Secrets tampered with`);
  let audit: Audit | undefined;
  const deadline = Date.now() + opts.convergeTimeoutMs;
  for (;;) {
    audit = await auditNamespaces(core, namespaces, await caRootsOf(core, opts.caNamespace));
    if (audit.problems.length === 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  return { created: newcomers.length, tampered, convergedSeconds: (Date.now() - started) / 1000, audit };
}

/** Polls RSS until it is at most `limitMb` (true) or `timeoutMs` passes (false); returns the last reading. */
export async function waitForRssAtMost(
  pid: number,
  limitMb: number,
  timeoutMs: number,
): Promise<{ settled: boolean; rssMb: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rssMb = rssMbOf(pid);
    if (rssMb <= limitMb) return { settled: true, rssMb };
    if (Date.now() > deadline) return { settled: false, rssMb };
    await new Promise((r) => setTimeout(r, 1_000));
  }
}
