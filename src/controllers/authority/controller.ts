// Keeps the signing authority loaded from the CA Secrets in the CA namespace,
// as a keyed reconcile (one key) on the work queue:
// - Self-signed mode: istio-ca-secret is read; when it does not exist a new
//   root is generated and *created* (never updated). A lost race re-reads the
//   winner's root. A corrupt Secret stops signing with a clear reason; it is
//   never replaced (Istio #17739). A deleted Secret is re-created from the
//   root already in use, so a deletion cannot fork the trust domain.
// - Plugged-in mode: cacerts is read and validated; a change is picked up live.
// Root continuity (continuity.ts): every root loaded is recorded; when the CA
// Secret is missing and no root is held in memory, the record decides whether
// a new root may be made, must not be (RootMissing, looked at again every few
// seconds), or was accepted by the operator.
// The result is published in the shared state (caches.state.authority); the
// controllers that sign or report watch it there.
import type { V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  CaLoadError,
  loadPluggedIn,
  loadSelfSigned,
  minSignerRemainingMs,
  PLUGGED_IN_SECRET,
  SELF_SIGNED_SECRET,
  SELF_SIGNED_SECRET_TYPE,
  signerUsableUntil,
} from '../../ca/authority.js';
import { generateRootData } from '../../ca/self-signed.js';
import type { CaConfig } from '../../config/ca-spec.js';
import { describeApiError, isConflict } from '../../kube/client.js';
import { type Clock, systemClock } from '../../kube/clock.js';
import { type ApiRequester, secretsPath } from '../../kube/raw.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../model/names.js';
import type { SharedCaches } from '../caches.js';
import { OneKeyController } from '../reconcile-loop.js';
import { sameAuthorityState } from '../shared-state.js';
import type { RootContinuity } from './continuity.js';
import { acceptedRootSecret } from './continuity.js';
import { type AcceptedRoot, type AuthorityDecision, planAuthority } from './plan.js';
import { type AuthorityState, type CaSecretView, caSecretView } from './state.js';

export type { AuthorityState, CaSecretView } from './state.js';

const KEY = 'authority';

/**
 * How long, at most, the CA Secret this process created stands in for the cache's view of it. The
 * watch normally delivers it within milliseconds; if the cache hears nothing of it (deleted, and
 * the watch missed both events), the Secret counts as missing again after this and is re-created.
 */
export const CREATED_SECRET_GRACE_MS = 30_000;

/** A CA Secret that failed to load is loaded again after this, unchanged or not. */
export const FAILED_LOAD_RECHECK_MS = 60_000;

export interface AuthorityControllerOptions {
  caches: SharedCaches;
  raw: ApiRequester;
  namespace: string;
  log: Logger;
  /** Only the leader creates or re-creates the CA Secret. */
  canWrite: () => boolean;
  clock?: Clock;
  /** Root continuity: records roots in use, refuses a new root when a recorded one is missing. */
  continuity?: Pick<RootContinuity, 'whenMissing' | 'recordLoaded'>;
}

/** The annotations of istio-ca-secret that are alcazar's (the root rotation's state). */
const ALCAZAR_ANNOTATION_PREFIX = 'alcazar.dev/';

export class AuthorityController extends OneKeyController {
  /** What the published state was derived from, so unchanged input is not re-validated. */
  private evaluatedFrom = '';
  /**
   * The self-signed Secret last loaded successfully, to re-create it if it is deleted: its data,
   * and alcazar's annotations on it (a rotation's phase, start and handled request: without them a
   * rotation under way would restart from Idle on half-rotated contents).
   */
  private lastGoodSelfSigned:
    | { data: Record<string, Buffer>; annotations: Record<string, string> }
    | undefined;
  /**
   * The CA Secret as this process created it (the API's answer), until the cache has an event
   * about it. Without it, a reconcile between the create and its watch event saw no Secret,
   * generated a second root (a wasted keygen, seconds with RSA) and lost to its own first one
   * with a 409.
   */
  private created: { name: string; view: CaSecretView; until: number } | undefined;
  /** While our create of the CA Secret is under way: whether the cache heard of the Secret meanwhile. */
  private creating: { heard: boolean } | undefined;
  private readonly clock: Clock;
  /** After a failed load: when to load the same Secret again (see revalidateAt). */
  private retryLoadAt: number | undefined;

  constructor(private readonly opts: AuthorityControllerOptions) {
    const clock = opts.clock ?? systemClock;
    // A failed create is retried by the queue's backoff (1 s doubling to 60 s): no watch event would retry it.
    super(KEY, { clock, baseRetryDelayMs: 1_000, maxRetryDelayMs: 60_000 }, opts.log);
    this.clock = clock;
    const enqueue = () => this.queue.add(KEY);
    const { caches } = opts;
    for (const [name, informer] of Object.entries(caches.caSecrets)) {
      // Any event about the Secret means the cache has caught up with our create: from then on
      // its view counts (a deletion it saw is acted on at once, not after the grace).
      const seen = () => {
        if (this.created?.name === name) this.created = undefined;
        if (this.creating && name === SELF_SIGNED_SECRET) this.creating.heard = true;
        enqueue();
      };
      informer.subscribe({ added: seen, updated: seen, deleted: seen });
    }
    caches.state.config.subscribe(enqueue);
    caches.state.leading.subscribe((leading) => leading && enqueue());
    caches.state.configHeld.subscribe(enqueue);
    // An operator's accept-new-root annotation is acted on at once, not at the next RootMissing recheck.
    caches.certificateAuthorities.subscribe({ added: enqueue, updated: enqueue });
  }

  get current(): AuthorityState {
    return this.opts.caches.state.authority.current;
  }

  /** The CA Secret as cached (holds key material: never log it). */
  caSecret(name: string): CaSecretView | undefined {
    return this.opts.caches.caSecret(name as typeof SELF_SIGNED_SECRET);
  }

  // start() resolves once the first evaluation is done; the CA-side caches must have synced.

  /** Asks for an evaluation now. */
  reevaluate(): Promise<void> {
    return this.reconcileNow();
  }

  async reconcile(): Promise<void> {
    if (!this.opts.caches.caSideSynced) return; // until then every CA Secret looks missing
    const { state } = this.opts.caches;
    if (state.configHeld.current) {
      // Which Secret to load, and for which trust domain, is what the invalid spec would say.
      this.publish({
        status: 'failed',
        reason: 'InvalidSpec',
        message: `no CA is loaded while the CertificateAuthority's spec is invalid and no valid one has been in effect since start: ${state.specError.current ?? 'invalid spec'}`,
      });
      return;
    }
    const config = state.config.current;
    const due = this.revalidateAt(config);
    if (due !== undefined && this.clock.now() >= due) {
      this.retryLoadAt = undefined;
      this.evaluatedFrom = ''; // the same Secret is loaded again
    }
    const name = config.root.mode === 'SelfSigned' ? SELF_SIGNED_SECRET : PLUGGED_IN_SECRET;
    const secret = this.caSecretOrCreated(name);
    const source = `${this.opts.namespace}/${name}`;
    // A root held in memory is re-created as is; otherwise the record of roots used decides.
    const remembered = config.root.mode === 'SelfSigned' && this.lastGoodSelfSigned !== undefined;
    const missing =
      secret || remembered ? undefined : await this.opts.continuity?.whenMissing(config.root.mode, source);
    const decision = planAuthority({
      mode: config.root.mode,
      source,
      secret,
      trustDomain: config.trustDomain,
      evaluatedFrom: this.evaluatedFrom,
      state: this.current,
      canWrite: this.opts.canWrite(),
      haveLastGood: remembered,
      missing,
    });
    await this.execute(decision, config, secret);
    const next = this.revalidateAt(config);
    if (next !== undefined) this.queue.addAfter(KEY, next - this.clock.now());
  }

  /**
   * When the Secret must be loaded again although it has not changed (nothing else wakes this
   * controller then):
   * - after a failed load: a signer not valid yet becomes valid, and any failure is tried again;
   * - a loaded plugged-in signer, once it would no longer load (SignerExpiring): the CA goes not
   *   ready then, as a restart would find it, rather than staying ready with a signer that can only
   *   issue certificates shorter than the grace period, then already expired.
   * A self-signed root stays loaded to its end and past it: the rotation that replaces it runs on
   * the loaded authority (the status shows it ended: SignerExpired).
   */
  private revalidateAt(config: CaConfig): number | undefined {
    const current = this.current;
    if (current.status === 'failed') return this.retryLoadAt;
    if (current.status !== 'ready' || current.authority.mode !== 'PluggedIn') return undefined;
    return (
      signerUsableUntil('PluggedIn', current.authority.signer.notAfter, minSignerRemainingMs(config)) + 1
    );
  }

  /** The cached CA Secret; until the cache has seen it, the one this process just created. */
  private caSecretOrCreated(name: string): CaSecretView | undefined {
    const cached = this.opts.caches.caSecret(name as typeof SELF_SIGNED_SECRET);
    const created = this.created;
    if (cached || !created || created.name !== name || this.clock.now() >= created.until) {
      this.created = undefined;
      return cached;
    }
    return created.view;
  }

  private async execute(decision: AuthorityDecision, config: CaConfig, secret: CaSecretView | undefined) {
    const mode = config.root.mode;
    const source = `${this.opts.namespace}/${mode === 'SelfSigned' ? SELF_SIGNED_SECRET : PLUGGED_IN_SECRET}`;
    switch (decision.action) {
      case 'none': {
        const current = this.current;
        if (current.status === 'ready') await this.opts.continuity?.recordLoaded(current.authority);
        return;
      }
      case 'publish':
        this.evaluatedFrom = '';
        this.publish(decision.state);
        if (decision.recheckAfterMs !== undefined) this.queue.addAfter(KEY, decision.recheckAfterMs);
        return;
      case 'load': {
        this.evaluatedFrom = decision.inputKey;
        const loaded = await this.load(config, secret!, source);
        this.publish(loaded);
        if (loaded.status === 'ready') await this.opts.continuity?.recordLoaded(loaded.authority);
        return;
      }
      case 'create':
        await this.createSelfSigned(config, source, decision.restore, decision.accepted);
        return;
    }
  }

  /** Parses and validates the Secret: a CA that signs, or why it cannot. */
  private async load(config: CaConfig, secret: CaSecretView, source: string): Promise<AuthorityState> {
    const mode = config.root.mode;
    const loadOptions = {
      now: new Date(this.clock.now()),
      minRemainingMs: minSignerRemainingMs(config),
    };
    try {
      if (mode === 'SelfSigned' && secret.type !== SELF_SIGNED_SECRET_TYPE) {
        throw new CaLoadError(
          'WrongType',
          `${source} has type "${secret.type}", expected "${SELF_SIGNED_SECRET_TYPE}"`,
        );
      }
      const authority =
        mode === 'SelfSigned'
          ? await loadSelfSigned(secret.data, source, loadOptions)
          : await loadPluggedIn(secret.data, source, loadOptions);
      if (mode === 'SelfSigned') {
        this.lastGoodSelfSigned = {
          data: secret.data,
          annotations: Object.fromEntries(
            Object.entries(secret.annotations).filter(([name]) => name.startsWith(ALCAZAR_ANNOTATION_PREFIX)),
          ),
        };
      }
      this.retryLoadAt = undefined;
      return { status: 'ready', authority, loadedFrom: secret.resourceVersion };
    } catch (err) {
      // Looked at again later even if the Secret stays as it is: a signer not valid yet becomes
      // valid. And an unexpected error is a failure to show, not a retry: the input is marked as
      // evaluated, so the old signer would otherwise go on signing with nothing said.
      const failed =
        err instanceof CaLoadError
          ? { reason: err.reason, message: err.message, retryAt: err.retryAt }
          : { reason: 'LoadFailed', message: `${source} cannot be loaded: ${(err as Error).message}` };
      const now = this.clock.now();
      this.retryLoadAt = Math.max(failed.retryAt ?? now + FAILED_LOAD_RECHECK_MS, now + 1_000);
      return { status: 'failed', reason: failed.reason, message: failed.message };
    }
  }

  private publish(next: AuthorityState): void {
    const shared = this.opts.caches.state.authority;
    const changed = !sameAuthorityState(shared.current, next);
    shared.set(next);
    if (!changed) return;
    const { log } = this.opts;
    if (next.status === 'ready') {
      log.info(
        {
          source: next.authority.source,
          signer: next.authority.signer.fingerprintSha256,
          notAfter: next.authority.signer.notAfter.toISOString(),
          roots: next.authority.roots.length,
        },
        'CA loaded',
      );
    } else if (next.status === 'failed') {
      log.error({ reason: next.reason }, `CA cannot sign: ${next.message}`);
    }
  }

  /** Creates istio-ca-secret: the root in use if it was deleted, otherwise a new one. Never overwrites. */
  private async createSelfSigned(
    config: CaConfig,
    source: string,
    restore: boolean,
    accepted: AcceptedRoot | undefined,
  ): Promise<void> {
    const { log, namespace } = this.opts;
    const generated = restore
      ? undefined
      : await generateRootData({
          trustDomain: config.trustDomain,
          keyAlgorithm: config.root.selfSigned.keyAlgorithm,
          ttlMs: config.root.selfSigned.ttlMs,
          now: new Date(this.clock.now()),
        });
    // An accepted new root starts out as a rotation in its Reissuing phase, trusting the old roots.
    const fromAccepted =
      generated && accepted ? acceptedRootSecret(generated, accepted, this.clock.now()) : undefined;
    const contents = generated
      ? { stringData: fromAccepted?.stringData ?? generated }
      : {
          data: Object.fromEntries(
            Object.entries(this.lastGoodSelfSigned!.data).map(([k, v]) => [k, v.toString('base64')]),
          ),
        };
    const creating = { heard: false };
    this.creating = creating;
    try {
      const stored = await this.opts.raw.request<V1Secret>('POST', secretsPath(namespace), {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: SELF_SIGNED_SECRET,
          namespace,
          labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
          // A restored root keeps its rotation state; an accepted one starts its own.
          annotations: fromAccepted?.annotations ?? (restore ? this.lastGoodSelfSigned!.annotations : {}),
        },
        type: SELF_SIGNED_SECRET_TYPE,
        ...contents,
      });
      // Loaded from the API's answer now, not when the watch brings it (unless the cache heard of
      // it first: then the cache's view counts, a deletion included); looked at again once the
      // grace is over, in case the cache never sees it.
      if (!creating.heard) {
        this.created = {
          name: SELF_SIGNED_SECRET,
          view: caSecretView(stored),
          until: this.clock.now() + CREATED_SECRET_GRACE_MS,
        };
        this.queue.addAfter(KEY, CREATED_SECRET_GRACE_MS);
      }
      this.queue.add(KEY);
      if (restore) log.warn(`${source} was deleted; re-created it with the root in use`);
      else if (accepted)
        log.warn(
          { request: accepted.request, previousRoots: accepted.previousRoots.length },
          `accepted a new root in ${source}: the old roots stay trusted while every workload is reissued`,
        );
      else log.info({ trustDomain: config.trustDomain }, `generated a new self-signed root in ${source}`);
    } catch (err) {
      if (isConflict(err)) {
        // Another replica won the race, or this one created it earlier and its cache has not seen
        // it within the grace (or the create's answer was lost): the stored root is the one.
        log.info(
          `${source} already exists (created by another replica, or earlier by this one); using the stored root`,
        );
        return;
      }
      this.evaluatedFrom = '';
      this.publish({
        status: 'failed',
        reason: 'CreateFailed',
        message: `cannot create ${source}: ${describeApiError(err)}`,
      });
      log.info({ retryInMs: 1_000 * 2 ** this.queue.retries(KEY) }, 'will retry creating the CA Secret');
      throw err;
    } finally {
      if (this.creating === creating) this.creating = undefined;
    }
  }
}
