// Rotates the self-signed root through the phases in plan.ts. Every step is
// a read-modify-write of istio-ca-secret guarded by its resourceVersion; the
// CA in use is always the one read back from the API server, never one held
// only in memory (Istio #14512).
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { SELF_SIGNED_SECRET, type SigningAuthority } from '../../ca/authority.js';
import { generateRootData } from '../../ca/self-signed.js';
import type { CaConfig } from '../../config/ca-spec.js';
import { describeApiError, isConflict } from '../../kube/client.js';
import type { EventSink } from '../../kube/events.js';
import { decodeCertificatesPem, encodeCertificatesPem } from '../../pki/pem.js';
import type { AuthorityController } from '../authority/controller.js';
import {
  planRotation,
  progressHolds,
  ROTATION_PHASES,
  type RotationDecision,
  type RotationPhase,
  type RotationProgress,
} from './plan.js';

export const PHASE_ANNOTATION = 'alcazar.dev/rotation-phase';
export const PHASE_SINCE_ANNOTATION = 'alcazar.dev/rotation-phase-since';
export const STARTED_ANNOTATION = 'alcazar.dev/rotation-started-at';
/** The last on-demand request handled, copied from the CertificateAuthority's annotation. */
export const HANDLED_REQUEST_ANNOTATION = 'alcazar.dev/rotation-request';
/** Set this annotation on the CertificateAuthority to a new value to rotate the root now. */
export const ROTATE_REQUEST_ANNOTATION = 'alcazar.dev/rotate-root';

/** How often a rotation under way is looked at (at most; --root-rotation-check-interval when Idle). */
const ACTIVE_ROTATION_CHECK_MS = 2_000;

const NEXT_CERT = 'next-ca-cert.pem';
const NEXT_KEY = 'next-ca-key.pem';
/** Kept while Reissuing so the retiring root can still sign its CRL (src/ca/crl-signers.ts). */
const PREVIOUS_KEY = 'previous-ca-key.pem';
export const PREVIOUS_CERT = 'previous-ca-cert.pem';

export interface RotationStatus {
  phase: RotationPhase;
  startedAt?: string;
  phaseSince?: string;
  message: string;
}

export interface RootRotationOptions {
  core: CoreV1Api;
  namespace: string;
  log: Logger;
  events: EventSink;
  authority: AuthorityController;
  config: () => CaConfig;
  /** The CertificateAuthority's rotate-root annotation, if any. */
  rotateRequest: () => string | undefined;
  progress: (authority: SigningAuthority) => RotationProgress;
  canWrite: () => boolean;
  checkIntervalMs: number;
  dwellMs: number;
  onStatusChange: () => void;
  now?: () => number;
}

export class RootRotationController {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private progressHeld: { phase: RotationPhase; since: number } | undefined;
  private stopped = false;
  /** resourceVersion of istio-ca-secret that our last write replaced, until the cache moves past it. */
  private replacedVersion: string | undefined;
  private statusValue: RotationStatus = { phase: 'Idle', message: 'no rotation under way' };
  private readonly now: () => number;

  constructor(private readonly opts: RootRotationOptions) {
    this.now = opts.now ?? Date.now;
  }

  get status(): RotationStatus {
    return this.statusValue;
  }

  /** Starts the periodic checks; resolves when the first one is done. */
  start(): Promise<void> {
    return this.check();
  }

  /**
   * The periodic check; while a rotation is under way, often enough that the status follows each
   * phase within seconds (progress is read from the caches, so a check costs no API call).
   */
  private nextCheckInMs(): number {
    const jittered = this.opts.checkIntervalMs * (0.9 + 0.2 * Math.random());
    const active = this.statusValue.phase !== 'Idle' || this.replacedVersion !== undefined;
    return active ? Math.min(jittered, ACTIVE_ROTATION_CHECK_MS) : jittered;
  }

  /** The next periodic check, counted from the end of the last one (whatever started it). */
  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), this.nextCheckInMs());
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Looks at the rotation now; checks never overlap. */
  check(): Promise<void> {
    this.running = this.running.then(() =>
      this.step()
        .catch((err: unknown) => {
          this.opts.log.warn({ err: describeApiError(err) }, 'root rotation step failed; will retry');
        })
        .then(() => this.schedule()),
    );
    return this.running;
  }

  private setStatus(next: RotationStatus): void {
    const changed = JSON.stringify(next) !== JSON.stringify(this.statusValue);
    this.statusValue = next;
    if (changed) this.opts.onStatusChange();
  }

  private async step(): Promise<void> {
    const config = this.opts.config();
    const state = this.opts.authority.current;
    const secret = this.opts.authority.caSecret(SELF_SIGNED_SECRET);
    if (config.root.mode !== 'SelfSigned' || state.status !== 'ready' || !secret) return;
    // The cache still shows the version our last write replaced: decide once it has caught up.
    if (secret.resourceVersion === this.replacedVersion) return;
    this.replacedVersion = undefined;
    const phase = phaseOf(secret.annotations[PHASE_ANNOTATION]);
    const phaseSince = Date.parse(secret.annotations[PHASE_SINCE_ANNOTATION] ?? '') || 0;
    const request = this.opts.rotateRequest();
    const progress = this.opts.progress(state.authority);
    const now = this.now();
    if (!progressHolds(phase, progress) || this.progressHeld?.phase !== phase) {
      this.progressHeld = progressHolds(phase, progress) ? { phase, since: now } : undefined;
    }
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
    this.setStatus({
      phase,
      ...(secret.annotations[STARTED_ANNOTATION]
        ? { startedAt: secret.annotations[STARTED_ANNOTATION] }
        : {}),
      ...(phase !== 'Idle' ? { phaseSince: secret.annotations[PHASE_SINCE_ANNOTATION] } : {}),
      message: decision.action === 'wait' ? decision.reason : decision.action,
    });
    if (decision.action === 'wait' || !this.opts.canWrite()) return;
    await this.apply(decision, config, request, now);
    await this.opts.authority.reevaluate();
  }

  private async apply(
    decision: Exclude<RotationDecision, { action: 'wait' }>,
    config: CaConfig,
    request: string | undefined,
    now: number,
  ): Promise<void> {
    const { core, namespace, log } = this.opts;
    // Read fresh: the write below replaces exactly this version or fails with 409.
    const secret = await core.readNamespacedSecret({ namespace, name: SELF_SIGNED_SECRET });
    const data = decoded(secret);
    const annotations = { ...(secret.metadata?.annotations ?? {}) };
    const stamp = new Date(now).toISOString();
    const bundle = data['root-cert.pem']
      ? decodeCertificatesPem(data['root-cert.pem'])
      : decodeCertificatesPem(data['ca-cert.pem']!);
    let message: string;

    switch (decision.action) {
      case 'start': {
        const next = await generateRootData({
          trustDomain: config.trustDomain,
          keyAlgorithm: config.root.selfSigned.keyAlgorithm,
          ttlMs: config.root.selfSigned.ttlMs,
          now: new Date(now),
        });
        const [nextDer] = decodeCertificatesPem(next['ca-cert.pem']!);
        data[NEXT_CERT] = next['ca-cert.pem']!;
        data[NEXT_KEY] = next['ca-key.pem']!;
        data['root-cert.pem'] = encodeCertificatesPem([...bundle, nextDer!]);
        annotations[PHASE_ANNOTATION] = 'Publishing';
        annotations[STARTED_ANNOTATION] = stamp;
        if (decision.trigger === 'Requested' && request !== undefined)
          annotations[HANDLED_REQUEST_ANNOTATION] = request;
        message = `root rotation started (${decision.trigger}): publishing the new root next to the old one`;
        break;
      }
      case 'activate': {
        if (!data[NEXT_CERT] || !data[NEXT_KEY])
          throw new Error(`${SELF_SIGNED_SECRET} is in Publishing but holds no next root`);
        data[PREVIOUS_CERT] = data['ca-cert.pem']!;
        data[PREVIOUS_KEY] = data['ca-key.pem']!;
        data['ca-cert.pem'] = data[NEXT_CERT];
        data['ca-key.pem'] = data[NEXT_KEY];
        delete data[NEXT_CERT];
        delete data[NEXT_KEY];
        annotations[PHASE_ANNOTATION] = 'Reissuing';
        message = 'new root active: reissuing workload certificates; the old root stays trusted';
        break;
      }
      case 'retire': {
        const active = decodeCertificatesPem(data['ca-cert.pem']!)[0]!;
        const previous = data[PREVIOUS_CERT] ? decodeCertificatesPem(data[PREVIOUS_CERT])[0] : undefined;
        data['root-cert.pem'] = encodeCertificatesPem(
          bundle.filter((der) => der.equals(active) || (previous !== undefined && !der.equals(previous))),
        );
        delete data[PREVIOUS_CERT];
        delete data[PREVIOUS_KEY];
        delete annotations[PHASE_ANNOTATION];
        delete annotations[STARTED_ANNOTATION];
        message = 'root rotation finished: the old root is no longer trusted';
        break;
      }
    }
    annotations[PHASE_SINCE_ANNOTATION] = stamp;
    if (decision.action === 'retire') delete annotations[PHASE_SINCE_ANNOTATION];
    try {
      await core.replaceNamespacedSecret({
        namespace,
        name: SELF_SIGNED_SECRET,
        body: {
          ...secret,
          metadata: { ...secret.metadata, annotations },
          data: Object.fromEntries(
            Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
          ),
        },
      });
    } catch (err) {
      if (isConflict(err)) return; // changed meanwhile: the next check decides again on the new state
      throw err;
    }
    this.replacedVersion = secret.metadata?.resourceVersion;
    this.progressHeld = undefined;
    log.info({ step: decision.action }, message);
    this.opts.events.record(
      { apiVersion: 'v1', kind: 'Secret', namespace, name: SELF_SIGNED_SECRET, uid: secret.metadata?.uid },
      'Normal',
      `RootRotation${decision.action[0]!.toUpperCase()}${decision.action.slice(1)}`,
      message,
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
