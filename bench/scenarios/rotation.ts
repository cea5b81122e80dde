// Root rotation at scale: N valid Secrets; request a rotation with the
// alcazar.dev/rotate-root annotation and time it, phase by phase, from the
// rotation-phase annotation on istio-ca-secret (Publishing → Reissuing →
// Idle with the new root), counting the API writes it took.
import { X509Certificate } from 'node:crypto';
import { waitUntil } from '../api.js';
import { readRequestCounts, writesBetween } from '../apiserver-metrics.js';
import { type BenchContext, collectProfile, ensureMinted, startController } from '../context.js';
import { CA_NAMESPACE, cpuSeconds } from '../controller.js';
import { annotateCertificateAuthority, MANAGED_SELECTOR, type ManagedServiceAccount } from '../population.js';
import type { ScenarioResult } from '../results.js';
import { round, summarize } from '../stats.js';
import { activeCa, verifyWorkloadSecrets } from '../verify.js';

/**
 * The controller's --root-rotation-propagation-delay. 0 s (the default) reissues every Secret straight
 * onto the final bundle; a delay longer than a pass over the Secrets (ALCAZAR_BENCH_ROTATION_DELAY,
 * e.g. 45s) makes the rotation refresh every bundle alone first and last, as a real one does.
 */
const propagationDelay = () => process.env.ALCAZAR_BENCH_ROTATION_DELAY ?? '0s';

const PHASE_ANNOTATION = 'alcazar.dev/rotation-phase';
const ROTATE_ANNOTATION = 'alcazar.dev/rotate-root';

interface CaSecret {
  metadata: { annotations?: Record<string, string> };
  data?: Record<string, string>;
}

interface SecretObject {
  metadata: { namespace: string; name: string };
  data?: Record<string, string>;
}

/** A base64 PEM bundle decoded, whitespace dropped: equal bundles compare equal however they are wrapped. */
function normalizedPem(base64: string | undefined): string {
  return Buffer.from(base64 ?? '', 'base64')
    .toString('utf8')
    .replace(/\s/g, '');
}

function fingerprintOf(secret: CaSecret): string {
  const pem = Buffer.from(secret.data?.['ca-cert.pem'] ?? '', 'base64').toString('utf8');
  return new X509Certificate(pem).fingerprint256;
}

async function rotateOnce(
  ctx: BenchContext,
  serviceAccounts: readonly ManagedServiceAccount[],
  run: number,
  profile: boolean,
) {
  const { api } = ctx;
  const n = serviceAccounts.length;
  const { controller, profileDir } = startController(ctx, `rotation-${n}-r${run}${profile ? '-prof' : ''}`, {
    profile,
    args: ['--root-rotation-check-interval=1s', `--root-rotation-propagation-delay=${propagationDelay()}`],
  });
  try {
    await controller.initialReconcile(120_000 + n * 50);
    const oldRoot = (await activeCa(api)).fingerprint;
    const phases: Record<string, number> = {};
    let doneAt: number | undefined;
    const path = `/api/v1/namespaces/${CA_NAMESPACE}/secrets`;
    const query = { fieldSelector: 'metadata.name=istio-ca-secret' };
    const resourceVersion = await api.resourceVersionOf(path, query);
    const watch = await api.watch<CaSecret>(path, { ...query, resourceVersion }, (event) => {
      if (event.type !== 'MODIFIED') return;
      const phase = event.object.metadata.annotations?.[PHASE_ANNOTATION] ?? 'Idle';
      phases[phase] ??= event.at;
      if (phase === 'Idle' && phases.Reissuing !== undefined && fingerprintOf(event.object) !== oldRoot) {
        doneAt ??= event.at;
      }
    });
    // Every workload Secret's latest root-cert.pem, to see the last bundle refresh land after Idle.
    const roots = new Map<string, string>();
    let lastRootChangeAt = 0;
    const secretsVersion = await api.resourceVersionOf('/api/v1/secrets', {
      labelSelector: MANAGED_SELECTOR,
    });
    const secretsWatch = await api.watch<SecretObject>(
      '/api/v1/secrets',
      { labelSelector: MANAGED_SELECTOR, resourceVersion: secretsVersion },
      (event) => {
        if (event.type !== 'MODIFIED' && event.type !== 'ADDED') return;
        const key = `${event.object.metadata.namespace}/${event.object.metadata.name}`;
        const root = normalizedPem(event.object.data?.['root-cert.pem']);
        if (roots.get(key) !== root) lastRootChangeAt = event.at;
        roots.set(key, root);
      },
    );
    try {
      const before = await readRequestCounts(api);
      const cpuBefore = cpuSeconds(controller.pid);
      const requestedAt = Date.now();
      await annotateCertificateAuthority(api, ROTATE_ANNOTATION, new Date(requestedAt).toISOString());
      const finishedAt = await waitUntil('the rotation to finish', () => doneAt, 600_000 + n * 100, 50);
      // Retiring the old root changes the bundle once more; the Secrets follow after Idle.
      const finalBundle = normalizedPem(
        (await api.call<SecretObject>('GET', `${path}/istio-ca-secret`)).body.data?.['root-cert.pem'],
      );
      const expected = serviceAccounts.map((sa) => `${sa.namespace}/istio.${sa.name}`);
      await waitUntil(
        'every Secret to carry the final bundle',
        () => expected.every((key) => roots.get(key) === finalBundle),
        600_000 + n * 100,
        100,
      );
      const convergedAt = Math.max(lastRootChangeAt, finishedAt);
      await controller.waitQuiet(120_000);
      const cpu = cpuSeconds(controller.pid) - cpuBefore;
      // Give fire-and-forget Events a moment to land before counting.
      await new Promise((r) => setTimeout(r, 2000));
      const writes = writesBetween(before, await readRequestCounts(api));
      const verification = await verifyWorkloadSecrets(api, serviceAccounts, 'ECDSA_P256');
      const result = {
        totalSeconds: round((finishedAt - requestedAt) / 1000, 2),
        convergedSeconds: round((convergedAt - requestedAt) / 1000, 2),
        publishingSeconds: round(
          ((phases.Reissuing ?? finishedAt) - (phases.Publishing ?? requestedAt)) / 1000,
          2,
        ),
        reissuingSeconds: round((finishedAt - (phases.Reissuing ?? finishedAt)) / 1000, 2),
        requestToPublishingSeconds: round(((phases.Publishing ?? requestedAt) - requestedAt) / 1000, 2),
        secretWrites: writes.byResource.secrets ?? 0,
        configmapWrites: writes.byResource.configmaps ?? 0,
        eventWrites: writes.byResource.events ?? 0,
        watchedWrites: writes.watchedTotal,
        allWrites: writes.total,
        controllerCpuSeconds: round(cpu, 2),
        reconcileFailures: controller.count('reconcile failed; will retry'),
        validAfter: verification.valid,
      };
      await controller.stop();
      return { result, problems: verification.problems, profile: collectProfile(ctx, profileDir) };
    } finally {
      watch.stop();
      secretsWatch.stop();
    }
  } finally {
    await controller.stop();
  }
}

export async function rotation(ctx: BenchContext): Promise<ScenarioResult> {
  const n = ctx.opts.rotationN;
  const runs: Array<Record<string, number>> = [];
  const notes: string[] = [];
  let profile: ScenarioResult['profile'];
  const total = ctx.opts.runs + (ctx.opts.profile ? 1 : 0);
  for (let i = 1; i <= total; i++) {
    const profiled = ctx.opts.profile && i === total;
    const serviceAccounts = await ensureMinted(ctx, n, 'ECDSA_P256');
    const { result, problems, profile: p } = await rotateOnce(ctx, serviceAccounts, i, profiled);
    if (profiled) profile = p;
    else runs.push(result);
    ctx.log(
      `  rotation n=${n} run ${i}${profiled ? ' (profiled, not counted)' : ''}: Idle after ${result.totalSeconds} s, ` +
        `all Secrets on the final bundle after ${result.convergedSeconds} s ` +
        `(publishing ${result.publishingSeconds} s, reissuing ${result.reissuingSeconds} s), writes secrets=${result.secretWrites} ` +
        `configmaps=${result.configmapWrites} events=${result.eventWrites} all=${result.allWrites}, ` +
        `cpu ${result.controllerCpuSeconds} s, valid after ${result.validAfter}/${n}`,
    );
    if (result.validAfter !== n)
      notes.push(`run ${i}: ${result.validAfter}/${n} valid after: ${problems.join('; ')}`);
  }
  const metric = (key: string) => summarize(runs.map((r) => r[key]!));
  return {
    scenario: 'rotation',
    key: `rotation n=${n}${propagationDelay() === '0s' ? '' : ` delay=${propagationDelay()}`}`,
    params: { n, checkInterval: '1s', propagationDelay: propagationDelay() },
    summary: Object.fromEntries(Object.keys(runs[0] ?? {}).map((k) => [k, metric(k)])),
    runs,
    notes,
    ...(profile ? { profile } : {}),
  };
}
