// Rotates the self-signed root through the phases in plan.ts, as a keyed
// reconcile (one key) on the work queue. It runs when the CertificateAuthority
// (its rotate-root annotation), istio-ca-secret, the configuration or the CA
// change; while a rotation is under way also shortly after any workload
// Secret or trust bundle changes (its progress); and at the time the plan
// names, or every check interval at the latest. Every step is a
// read-modify-write of istio-ca-secret guarded by its resourceVersion; the CA
// in use is always the one read back from the API server, never one held only
// in memory (Istio #14512). The status is published in caches.state.rotation.
import type { V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { generateRootData } from '../../ca/self-signed.js';
import type { CaConfig } from '../../config/ca-spec.js';
import { isConflict } from '../../kube/client.js';
import { type Clock, systemClock } from '../../kube/clock.js';
import type { EventSink } from '../../kube/events.js';
import { type ApiRequester, secretsPath } from '../../kube/raw.js';
import {
  HANDLED_REQUEST_ANNOTATION,
  PHASE_ANNOTATION,
  PHASE_SINCE_ANNOTATION,
  ROTATE_REQUEST_ANNOTATION,
  SELF_SIGNED_SECRET,
  STARTED_ANNOTATION,
} from '../../model/names.js';
import type { SharedCaches } from '../caches.js';
import { OneKeyController } from '../reconcile-loop.js';
import { trustBundleProgress } from '../trust-bundle/queries.js';
import type { WorkloadQueries } from '../workload-secrets/queries.js';
import {
  planRotation,
  progressHolds,
  ROTATION_PHASES,
  type RotationDecision,
  type RotationPhase,
  type RotationProgress,
} from './plan.js';
import type { RotationStatus } from './status.js';
import { rotationStep } from './step.js';

// Moved to src/model/names.ts; re-exported here for existing imports.
export {
  HANDLED_REQUEST_ANNOTATION,
  PHASE_ANNOTATION,
  PHASE_SINCE_ANNOTATION,
  ROTATE_REQUEST_ANNOTATION,
  STARTED_ANNOTATION,
} from '../../model/names.js';
export type { RotationStatus } from './status.js';

const KEY = 'root';
/** How soon a step is tried again while the CA in use is being loaded from the newest Secret. */
const PROGRESS_DELAY_MS = 1_000;

/**
 * While a rotation is under way, progress is looked at this long after a cache event (coalesced).
 * Each look walks every workload Secret (~0.2 s at 100,000), and events keep coming for the whole
 * rotation: a second, and longer with more Secrets, so the looks cost at most ~2% of a core at any
 * size (10 s at 100,000; a phase then ends at most that much later).
 */
export function progressDelayMs(workloadSecrets: number): number {
  return Math.min(30_000, Math.max(1_000, Math.round(workloadSecrets / 10)));
}

export { PREVIOUS_CERT } from './step.js';

export interface RootRotationOptions {
  caches: SharedCaches;
  raw: ApiRequester;
  /** The CA namespace. */
  namespace: string;
  log: Logger;
  events: EventSink;
  workloads: WorkloadQueries;
  canWrite: () => boolean;
  checkIntervalMs: number;
  dwellMs: number;
  clock?: Clock;
}

/** What an Idle phase decides on: progress is not looked at (planRotation, progressHolds). */
const NO_PROGRESS: RotationProgress = { bundleCurrent: 0, bundleTotal: 0, signedByActive: 0, signedTotal: 0 };

export class RootRotationController extends OneKeyController {
  private progressHeld: { phase: RotationPhase; since: number } | undefined;
  private readonly clock: Clock;

  constructor(private readonly opts: RootRotationOptions) {
    const clock = opts.clock ?? systemClock;
    super(KEY, { clock, baseRetryDelayMs: 1_000, maxRetryDelayMs: opts.checkIntervalMs }, opts.log);
    this.clock = clock;
    const { caches } = opts;
    const now = () => this.queue.add(KEY);
    const soon = () => {
      if (this.status.phase !== 'Idle')
        this.queue.addAfter(KEY, progressDelayMs(caches.workloadSecrets.size));
    };
    caches.certificateAuthorities.subscribe({
      added: now,
      deleted: now,
      // Of the CertificateAuthority only the rotate-request annotation is read here (its spec
      // arrives through state.config). Its status is written at every step of a rotation's
      // progress: looking again at each write walked every workload Secret per Secret reissued.
      updated: (_key, before, after) => {
        if (before.annotations[ROTATE_REQUEST_ANNOTATION] !== after.annotations[ROTATE_REQUEST_ANNOTATION])
          now();
      },
    });
    caches.caSecrets[SELF_SIGNED_SECRET].subscribe({ added: now, updated: now, deleted: now });
    caches.state.config.subscribe(now);
    caches.state.authority.subscribe(now);
    caches.state.leading.subscribe((leading) => leading && now());
    caches.state.configHeld.subscribe((held) => !held && now());
    for (const informer of [caches.workloadSecrets, caches.trustBundles, caches.namespaces])
      informer.subscribe({ added: soon, updated: soon, deleted: soon });
  }

  get status(): RotationStatus {
    return this.opts.caches.state.rotation.current ?? { phase: 'Idle', message: 'no rotation under way' };
  }

  /** Asks for a look now. */
  check(): Promise<void> {
    return this.reconcileNow();
  }

  private progress(): RotationProgress | undefined {
    const state = this.opts.caches.state.authority.current;
    if (state.status !== 'ready') return undefined;
    const secrets = this.opts.workloads.rotationProgress(state.authority);
    const bundles = trustBundleProgress(
      this.opts.caches,
      this.opts.namespace,
      state.authority.rootBundleHash,
    );
    return {
      bundleCurrent: secrets.bundleCurrent + bundles.current,
      bundleTotal: secrets.total + bundles.total,
      signedByActive: secrets.signedByActive,
      signedTotal: secrets.total,
    };
  }

  async reconcile(): Promise<void> {
    const { caches } = this.opts;
    const config = caches.state.config.current;
    const state = caches.state.authority.current;
    const secret = caches.caSecret(SELF_SIGNED_SECRET);
    const now = this.clock.now();
    this.queue.addAfter(KEY, this.opts.checkIntervalMs * (0.9 + 0.2 * Math.random()));
    if (config.root.mode !== 'SelfSigned') {
      // The last self-signed phase would stay shown, and every Secret event would wake this in 1 s.
      caches.state.rotation.set({ phase: 'Idle', message: 'plugged-in CA: the operator rotates cacerts' });
      return;
    }
    if (state.status !== 'ready' || !secret) {
      caches.state.rotation.set(this.status);
      return;
    }
    const phase = phaseOf(secret.annotations[PHASE_ANNOTATION]);
    const phaseSince = Date.parse(secret.annotations[PHASE_SINCE_ANNOTATION] ?? '') || 0;
    const request = caches.certificateAuthority?.annotations[ROTATE_REQUEST_ANNOTATION];
    const shown = (message: string): RotationStatus => ({
      phase,
      ...(secret.annotations[STARTED_ANNOTATION]
        ? { startedAt: secret.annotations[STARTED_ANNOTATION] }
        : {}),
      ...(phase !== 'Idle' ? { phaseSince: secret.annotations[PHASE_SINCE_ANNOTATION] } : {}),
      message,
    });
    if (phase !== 'Idle' && !this.opts.canWrite()) {
      // A follower takes no step, so it does not walk every workload Secret for progress; and once
      // it leads, the dwell counts from its own first look, not from a view it never acted on.
      this.progressHeld = undefined;
      caches.state.rotation.set(shown('the leader carries the rotation on'));
      return;
    }
    // Progress matters only once a rotation is under way: counting it walks every workload Secret,
    // and this runs on every change of the CA, its Secret or the configuration.
    const progress = phase === 'Idle' ? NO_PROGRESS : this.progress()!;
    const holds = progressHolds(phase, progress);
    if (!holds || this.progressHeld?.phase !== phase)
      this.progressHeld = holds ? { phase, since: now } : undefined;
    const decision = planRotation({
      phase,
      phaseSince,
      progressHeldSince: this.progressHeld?.since,
      active: {
        notBefore: state.authority.signer.notBefore.getTime(),
        notAfter: state.authority.signer.notAfter.getTime(),
      },
      threshold: config.root.selfSigned.rotationThreshold,
      dwellMs: this.opts.dwellMs,
      requested: request !== undefined && request !== secret.annotations[HANDLED_REQUEST_ANNOTATION],
      progress,
      now,
    });
    caches.state.rotation.set(shown(decision.action === 'wait' ? decision.reason : decision.action));
    if (decision.action === 'wait') {
      if (decision.recheckAt !== undefined) this.queue.addAfter(KEY, decision.recheckAt - now);
      return;
    }
    if (!this.opts.canWrite()) return;
    if (state.loadedFrom !== undefined && state.loadedFrom !== secret.resourceVersion) {
      // The CA in use was loaded from an older version of the Secret (its load of this one is under
      // way): progress measured against that CA's bundle can pass a phase no workload has reached.
      this.queue.addAfter(KEY, PROGRESS_DELAY_MS);
      return;
    }
    await this.apply(decision, config, request, now, secret.resourceVersion);
  }

  /** Carries out one step: the new contents come from rotationStep; only the write happens here. */
  private async apply(
    decision: Exclude<RotationDecision, { action: 'wait' }>,
    config: CaConfig,
    request: string | undefined,
    now: number,
    decidedOn: string,
  ): Promise<void> {
    const { raw, namespace, log } = this.opts;
    const path = secretsPath(namespace, SELF_SIGNED_SECRET);
    // Read fresh: the write below replaces exactly this version or fails with 409.
    const secret = await raw.request<V1Secret>('GET', path);
    // The decision was made on the cached version; a newer one (e.g. our own last step, its watch
    // event not yet in) gets a new look when its event arrives, never a step meant for the old one.
    if (secret.metadata?.resourceVersion !== decidedOn) {
      log.debug({ step: decision.action }, `${SELF_SIGNED_SECRET} changed since the decision; looking again`);
      return;
    }
    const nextRoot =
      decision.action === 'start'
        ? await generateRootData({
            trustDomain: config.trustDomain,
            keyAlgorithm: config.root.selfSigned.keyAlgorithm,
            ttlMs: config.root.selfSigned.ttlMs,
            now: new Date(now),
          })
        : undefined;
    const after = rotationStep({
      decision,
      before: { data: decoded(secret), annotations: secret.metadata?.annotations ?? {} },
      nextRoot,
      request,
      now,
    });
    try {
      await raw.request('PUT', path, {
        ...secret,
        metadata: { ...secret.metadata, annotations: after.annotations },
        data: Object.fromEntries(
          Object.entries(after.data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
      });
    } catch (err) {
      if (isConflict(err)) return; // changed meanwhile: its watch event brings a new look
      throw err;
    }
    this.progressHeld = undefined;
    log.info({ step: decision.action }, after.message);
    this.opts.events.record(
      { apiVersion: 'v1', kind: 'Secret', namespace, name: SELF_SIGNED_SECRET, uid: secret.metadata?.uid },
      'Normal',
      `RootRotation${decision.action[0]!.toUpperCase()}${decision.action.slice(1)}`,
      after.message,
    );
  }
}

function phaseOf(value: string | undefined): RotationPhase {
  return (ROTATION_PHASES as readonly string[]).includes(value ?? '') ? (value as RotationPhase) : 'Idle';
}

function decoded(secret: V1Secret): Record<string, string> {
  return Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );
}
