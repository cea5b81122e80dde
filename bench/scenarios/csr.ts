// Istio's CSR API, alcazar against istiod: the same Node gRPC client, the same concurrency and the
// same kind of callers (ServiceAccounts with TokenRequest tokens for audience istio-ca) against
// alcazar's controller and against istiod (pilot-discovery with its built-in CA), both local
// processes on the bench's control plane, measured back to back (order alternating per run).
//
// Tokens: "cold" = every call carries a token minted for it that no server has seen, so each call
// costs a TokenReview wherever the server would cache one; "warm" = the same `concurrency` tokens
// over and over, each sent once in an untimed pass first (alcazar's review cache holds them;
// istiod has no such cache and reviews every call anyway).
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { buildTestCsrPem } from '../../src/pki/csr-testing.js';
import { decodeCertificatesPem } from '../../src/pki/pem.js';
import { repoRoot } from '../../test/cluster/paths.js';
import type { CsrClient } from '../../test/integration/support/csr-client.js';
import { runPool as pool } from '../../test/integration/support/load.js';
import { type Api, waitUntil } from '../api.js';
import { readRequestCounts, writesBetween } from '../apiserver-metrics.js';
import { type BenchContext, collectProfile, ensureMinted, startController } from '../context.js';
import { CA_NAMESPACE, type Controller, controlPlaneCpuSeconds, cpuSeconds } from '../controller.js';
import { ISTIOD_SELECTOR_LABEL, istiodBinary, type RunningIstiod, startIstiod } from '../csr/istiod.js';
import { connectClients, type PreparedCall, runClosedLoop, type Target } from '../csr/load.js';
import {
  type CsrServer,
  describeWindow,
  meetsGoal,
  type PairedRun,
  summarizePairs,
  type TokenMode,
  type WindowResult,
} from '../csr/summary.js';
import { BENCH_LABEL, ensureNamespace, OVERRIDE_LABEL, serviceAccountNames } from '../population.js';
import type { ScenarioResult } from '../results.js';

/** alcazar's callers: the first population namespace (managed, 100 ServiceAccounts). */
const ALCAZAR_ACCOUNTS = 100;
/** istiod's callers: a namespace alcazar does not manage, with ServiceAccounts of the same names. */
const ISTIOD_CLIENTS_NAMESPACE = 'bench-csr-istiod';
/** istiod's own namespace (its istio-ca-secret lives there, not in alcazar's istio-system). */
const ISTIOD_NAMESPACE = 'bench-istiod';
const AUDIENCE = 'istio-ca';
const TOKEN_SECONDS = 3600;

interface Account {
  namespace: string;
  name: string;
  spiffeId: string;
  /** PEM PKCS#10 for the account's own identity, with a P-256 key of its own, made up front. */
  csr: string;
}

interface Server {
  name: CsrServer;
  target: Target;
  pid: () => number;
  accounts: Account[];
  /** `maxConcurrency` tokens reused by every warm window (minted once). */
  warmTokens: string[];
}

async function mintToken(api: Api, account: Account): Promise<string> {
  const res = await api.call<{ status: { token: string } }>(
    'POST',
    `/api/v1/namespaces/${account.namespace}/serviceaccounts/${account.name}/token`,
    {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: [AUDIENCE], expirationSeconds: TOKEN_SECONDS },
    },
  );
  return res.body.status.token;
}

/** `count` fresh tokens, the accounts taken in turn; call i of a window uses token i. */
async function mintTokens(api: Api, accounts: readonly Account[], count: number): Promise<string[]> {
  const tokens = new Array<string>(count);
  await pool(
    Array.from({ length: count }, (_, i) => i),
    32,
    async (i) => {
      tokens[i] = await mintToken(api, accounts[i % accounts.length]!);
    },
  );
  return tokens;
}

function accountsOf(namespace: string, names: readonly string[]): Account[] {
  return names.map((name) => {
    const spiffeId = `spiffe://cluster.local/ns/${namespace}/sa/${name}`;
    return { namespace, name, spiffeId, csr: buildTestCsrPem({ uris: [spiffeId] }) };
  });
}

/** The calls of one window: call i is account i's CSR with token i (accounts taken in turn). */
function callsFor(accounts: readonly Account[], tokens: readonly string[], n: number): PreparedCall[] {
  return Array.from({ length: n }, (_, i) => {
    const token = tokens[i % tokens.length]!;
    // A token belongs to account (token index mod accounts): keep the CSR's identity with it.
    const account = accounts[(i % tokens.length) % accounts.length]!;
    return { csr: account.csr, token, spiffeId: account.spiffeId };
  });
}

/** The leaf names the caller and chains to the last element (the roots), as an agent checks it. */
function checkSample(chain: string[], spiffeId: string): string | undefined {
  const leaf = new X509Certificate(chain[0]!);
  if (!(leaf.subjectAltName ?? '').includes(`URI:${spiffeId}`))
    return `leaf SAN ${leaf.subjectAltName} is not ${spiffeId}`;
  const roots = decodeCertificatesPem(chain[chain.length - 1]!).map((der) => new X509Certificate(der));
  const issuers = [...chain.slice(1, -1).map((pem) => new X509Certificate(pem)), ...roots];
  if (!issuers.some((issuer) => leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey)))
    return 'the leaf is not signed by any certificate of the chain';
  return undefined;
}

async function measureWindow(
  ctx: BenchContext,
  server: Server,
  mode: TokenMode,
  concurrency: number,
  n: number,
  notes: string[],
): Promise<WindowResult> {
  const { api } = ctx;
  const tokens = mode === 'cold' ? await mintTokens(api, server.accounts, n) : server.warmTokens;
  const calls = callsFor(server.accounts, tokens.slice(0, mode === 'cold' ? n : concurrency), n);
  const clients: CsrClient[] = await connectClients(server.target, concurrency);
  try {
    if (mode === 'warm') {
      // Every warm token once, untimed: from here on each is a repeat.
      const warmUp = await runClosedLoop(
        clients,
        callsFor(server.accounts, tokens.slice(0, concurrency), concurrency),
        0,
      );
      if (warmUp.ok !== concurrency)
        throw new Error(`${server.name} warm-up failed: ${JSON.stringify(warmUp.failures)}`);
    }
    const countsBefore = await readRequestCounts(api);
    const serverCpuBefore = cpuSeconds(server.pid());
    const controlPlaneBefore = controlPlaneCpuSeconds(ctx.state.pids);
    const load = await runClosedLoop(clients, calls);
    const serverCpuMs = (cpuSeconds(server.pid()) - serverCpuBefore) * 1000;
    const controlPlaneCpuMs = (controlPlaneCpuSeconds(ctx.state.pids) - controlPlaneBefore) * 1000;
    const writes = writesBetween(countsBefore, await readRequestCounts(api));
    const failed = Object.values(load.failures).reduce((sum, f) => sum + f.count, 0);
    for (const [code, f] of Object.entries(load.failures))
      notes.push(
        `${server.name} ${mode} c=${concurrency}: ${f.count} call(s) failed with code ${code}: ${f.example}`,
      );
    for (const sample of load.samples) {
      const problem = checkSample(sample.chain, sample.call.spiffeId);
      if (problem) notes.push(`${server.name} ${mode} c=${concurrency}: bad certificate: ${problem}`);
    }
    return describeWindow({
      latenciesMs: load.latenciesMs,
      wallMs: load.wallMs,
      failed,
      serverCpuMs,
      controlPlaneCpuMs,
      clientCpuMs: load.clientCpuMs,
      tokenReviews: writes.byResource.tokenreviews ?? 0,
      configMapWrites: writes.byResource.configmaps ?? 0,
    });
  } finally {
    for (const c of clients) c.close();
  }
}

async function prepareIstiodCallers(api: Api): Promise<Account[]> {
  const labels = { [BENCH_LABEL]: 'csr', [ISTIOD_SELECTOR_LABEL]: 'true', [OVERRIDE_LABEL]: 'false' };
  await ensureNamespace(api, ISTIOD_NAMESPACE, labels);
  await ensureNamespace(api, ISTIOD_CLIENTS_NAMESPACE, labels);
  const names = serviceAccountNames();
  await pool(names.slice(1), 16, async (name) => {
    await api.call(
      'POST',
      `/api/v1/namespaces/${ISTIOD_CLIENTS_NAMESPACE}/serviceaccounts`,
      { metadata: { name, labels: { [BENCH_LABEL]: 'csr' } } },
      { accept: [409] },
    );
  });
  // The controller-manager adds `default`.
  await waitUntil(
    `ServiceAccount default in ${ISTIOD_CLIENTS_NAMESPACE}`,
    async () =>
      (await api.send('GET', `/api/v1/namespaces/${ISTIOD_CLIENTS_NAMESPACE}/serviceaccounts/default`))
        .status === 200,
    60_000,
  );
  return accountsOf(ISTIOD_CLIENTS_NAMESPACE, names);
}

/** alcazar's controller with its CSR API on a free port, ready to sign and quiet. */
async function startAlcazar(
  ctx: BenchContext,
  label: string,
  profile: boolean,
): Promise<{ controller: Controller; target: Target; profileDir?: string }> {
  const { controller, profileDir } = startController(ctx, label, { profile });
  const serving = await controller.waitForLog(
    'the CSR API port',
    (l) => l.msg === 'serving the CSR API (istio.v1.auth.IstioCertificateService)',
    120_000,
  );
  await controller.waitForLog(
    'the serving certificate',
    (l) => l.msg === 'CSR API serving certificate issued',
    120_000,
  );
  await controller.initialReconcile(300_000);
  // What an agent in a managed namespace trusts: the bundle alcazar publishes there.
  const roots = await waitUntil(
    'istio-ca-root-cert in bench-p000',
    async () => {
      const res = await ctx.api.send<{ data?: Record<string, string> }>(
        'GET',
        '/api/v1/namespaces/bench-p000/configmaps/istio-ca-root-cert',
      );
      return res.status === 200 ? res.body.data?.['root-cert.pem'] : undefined;
    },
    60_000,
  );
  await controller.waitQuiet(120_000);
  // alcazar's default --csr-dns-names include istiod.<ca-namespace>.svc, the name agents dial.
  return {
    controller,
    profileDir,
    target: { port: Number(serving.port), roots, serverName: 'istiod.istio-system.svc' },
  };
}

/** An untimed pass so both servers start the timed windows warmed up (JIT, pools, connections). */
async function warmUp(ctx: BenchContext, server: Server): Promise<void> {
  const tokens = await mintTokens(ctx.api, server.accounts, 200);
  const clients = await connectClients(server.target, 16);
  try {
    const result = await runClosedLoop(clients, callsFor(server.accounts, tokens, 200), 0);
    if (result.ok !== 200)
      throw new Error(`${server.name} does not issue: ${JSON.stringify(result.failures).slice(0, 500)}`);
  } finally {
    for (const c of clients) c.close();
  }
}

/**
 * alcazar records every certificate it hands out (small ConfigMaps alcazar-issued-* in its namespace, one
 * merge patch of a shard per call or per batch, awaited before the answer) so revoking a
 * ServiceAccount covers it. Entries live until the certificate expires (24 h here), so the record
 * grows over the scenario. Counts both layouts: a key per certificate, or (before) a line.
 */
async function describeIssuanceRecord(api: Api): Promise<string> {
  const { items } = await api.listAll<{ metadata: { name: string }; data?: Record<string, string> }>(
    `/api/v1/namespaces/${CA_NAMESPACE}/configmaps`,
  );
  const shards = items.filter((cm) => cm.metadata.name.startsWith('alcazar-issued-'));
  const certificates = shards.flatMap((cm) =>
    Object.entries(cm.data ?? {}).flatMap(([key, v]) =>
      key.split('_').length === 3 ? [key] : v.split('\n').filter(Boolean),
    ),
  );
  const bytes = shards.map((cm) => JSON.stringify(cm.data ?? {}).length);
  const total = bytes.reduce((a, b) => a + b, 0);
  return (
    `alcazar's issuance record at the end: ${certificates.length} certificates in ${shards.length} ConfigMaps, ` +
    `largest ${Math.round(Math.max(0, ...bytes) / 1024)} KiB, ` +
    `${certificates.length ? Math.round(total / certificates.length) : 0} bytes of data per certificate`
  );
}

function describeRun(server: CsrServer, mode: TokenMode, c: number, w: WindowResult): string {
  return (
    `  ${server.padEnd(7)} ${mode} c=${String(c).padEnd(3)} ${w.csrPerSecond} CSR/s, p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms, ` +
    `cpu ${w.serverCpuMsPerCsr} ms/CSR (apiserver+etcd ${w.controlPlaneCpuMsPerCsr}, client ${w.clientCpuMsPerCsr}), ` +
    `TokenReviews/CSR ${w.tokenReviewsPerCsr}, ConfigMap writes/CSR ${w.configMapWritesPerCsr}, failed ${w.failed}`
  );
}

export async function csr(ctx: BenchContext): Promise<ScenarioResult[]> {
  const { api, opts, log } = ctx;
  const binary = istiodBinary(log);
  const managed = await ensureMinted(ctx, ALCAZAR_ACCOUNTS, 'ECDSA_P256');
  const alcazarAccounts = accountsOf(
    'bench-p000',
    managed.filter((sa) => sa.namespace === 'bench-p000').map((sa) => sa.name),
  );
  const istiodAccounts = await prepareIstiodCallers(api);
  const maxConcurrency = Math.max(...opts.csrConcurrency);

  const alcazar = await startAlcazar(ctx, 'csr', false);
  let istiod: RunningIstiod | undefined;
  const pairs = new Map<string, PairedRun[]>();
  const notes: string[] = [];
  let profile: ScenarioResult['profile'];
  let recordNote: string | undefined;
  try {
    istiod = await startIstiod({
      api,
      binary,
      kubeconfig: ctx.state.kubeconfig,
      namespace: ISTIOD_NAMESPACE,
      workDir: join(repoRoot, '.local', 'bench-istiod', ctx.stamp),
      logFile: join(repoRoot, '.local', 'bench-logs', ctx.stamp, 'istiod.log'),
      log,
    });
    const running = istiod;
    const servers: Record<CsrServer, Server> = {
      alcazar: {
        name: 'alcazar',
        target: alcazar.target,
        pid: () => alcazar.controller.pid,
        accounts: alcazarAccounts,
        warmTokens: await mintTokens(api, alcazarAccounts, maxConcurrency),
      },
      istiod: {
        name: 'istiod',
        target: { port: running.port, roots: running.roots, serverName: running.serverName },
        pid: () => running.pid,
        accounts: istiodAccounts,
        warmTokens: await mintTokens(api, istiodAccounts, maxConcurrency),
      },
    };
    for (const server of Object.values(servers)) await warmUp(ctx, server);
    for (let run = 1; run <= opts.runs; run++) {
      // Alternate who goes first, so neither always follows the other's leftovers.
      const order: CsrServer[] = run % 2 === 1 ? ['alcazar', 'istiod'] : ['istiod', 'alcazar'];
      for (const mode of opts.csrTokens) {
        for (const c of opts.csrConcurrency) {
          const pair: Partial<PairedRun> = {};
          for (const name of order) {
            pair[name] = await measureWindow(ctx, servers[name], mode, c, opts.csrN, notes);
            log(`${describeRun(name, mode, c, pair[name])} (run ${run})`);
          }
          const key = `${mode} ${c}`;
          pairs.set(key, [...(pairs.get(key) ?? []), pair as PairedRun]);
        }
      }
    }
    if (opts.profile) {
      // An extra, profiled alcazar (the profiler's overhead must not touch the counted runs).
      await alcazar.controller.stop();
      const profiled = await startAlcazar(ctx, 'csr-prof', true);
      const server = { ...servers.alcazar, target: profiled.target, pid: () => profiled.controller.pid };
      const from = Date.now() - profiled.controller.spawnedAt;
      for (const mode of opts.csrTokens)
        log(
          describeRun('alcazar', mode, 16, await measureWindow(ctx, server, mode, 16, opts.csrN, [])) +
            ' (profiled, not counted)',
        );
      const to = Date.now() - profiled.controller.spawnedAt;
      await profiled.controller.stop();
      profile = collectProfile(ctx, profiled.profileDir, { fromMs: from, toMs: to });
    }
    recordNote = await describeIssuanceRecord(api);
  } finally {
    await alcazar.controller.stop();
    await istiod?.stop();
  }
  const results: ScenarioResult[] = [];
  for (const mode of opts.csrTokens) {
    for (const c of opts.csrConcurrency) {
      const runs = pairs.get(`${mode} ${c}`) ?? [];
      const summary = summarizePairs(runs);
      log(
        `csr ${mode} c=${c}: alcazar/istiod throughput ${summary.throughputRatio!.median}×, p99 ${summary.p99Ratio!.median}× → ${meetsGoal(summary) ? 'goal met' : 'goal missed'}`,
      );
      results.push({
        scenario: 'csr',
        key: `csr tokens=${mode} concurrency=${c}`,
        params: {
          tokens: mode,
          concurrency: c,
          n: opts.csrN,
          alcazarCallers: `${alcazarAccounts.length} ServiceAccounts in bench-p000 (managed)`,
          istiodCallers: `${istiodAccounts.length} ServiceAccounts in ${ISTIOD_CLIENTS_NAMESPACE}`,
          alcazarCa: 'self-signed root, ECDSA P-256 (alcazar default)',
          istiodCa: 'self-signed root, RSA-2048 (istiod default)',
          csrKey: 'ECDSA P-256',
          cold: 'every call carries a token minted for it (TokenRequest, audience istio-ca) that no server has seen',
          warm: `the same ${c} tokens over and over, each sent once untimed first`,
        },
        summary,
        runs: runs as unknown as Array<Record<string, unknown>>,
        notes: [
          ...notes.filter((n) => n.includes(` ${mode} c=${c}:`)),
          ...(recordNote && results.length === 0 ? [recordNote] : []),
        ],
        ...(profile && results.length === 0 ? { profile } : {}),
      });
    }
  }
  return results;
}
