// Keeps the signing authority loaded from the CA Secrets in the CA namespace.
// - Self-signed mode: istio-ca-secret is read; when it does not exist a new
//   root is generated and *created* (never updated). A lost race re-reads the
//   winner's root. A corrupt Secret stops signing with a clear reason; it is
//   never replaced (Istio #17739). A deleted Secret is re-created from the
//   root already in use, so a deletion cannot fork the trust domain.
// - Plugged-in mode: cacerts is read and validated; a change is picked up live.
import type { CoreV1Api, KubeConfig, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  CaLoadError,
  loadPluggedIn,
  loadSelfSigned,
  PLUGGED_IN_SECRET,
  SELF_SIGNED_SECRET,
  SELF_SIGNED_SECRET_TYPE,
  type SigningAuthority,
} from '../../ca/authority.js';
import { generateRootData } from '../../ca/self-signed.js';
import type { CaConfig } from '../../config/ca-spec.js';
import { describeApiError, isConflict } from '../../kube/client.js';
import { Informer } from '../../kube/informer.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../workload-secrets/observe.js';
import { type AcceptedRoot, acceptedRootSecret, type RootContinuity } from './continuity.js';

export type AuthorityState =
  | { status: 'ready'; authority: SigningAuthority }
  | { status: 'failed'; reason: string; message: string }
  | { status: 'pending'; message: string };

export interface CaSecretView {
  uid: string;
  resourceVersion: string;
  type: string;
  annotations: Record<string, string>;
  data: Record<string, Buffer>;
}

export interface AuthorityControllerOptions {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  namespace: string;
  log: Logger;
  config: () => CaConfig;
  /** Only the leader creates or re-creates the CA Secret. */
  canWrite: () => boolean;
  onChange: (state: AuthorityState, previous: AuthorityState) => void;
  resyncPeriodMs: number;
  stallTimeoutMs: number;
  now?: () => number;
  /** Root continuity: records roots in use, refuses a new root when a recorded one is missing. */
  continuity?: Pick<RootContinuity, 'whenMissing' | 'recordLoaded'>;
}

/** How often a missing root is looked for again (a restored Secret also wakes the informer). */
const MISSING_ROOT_RECHECK_MS = 5_000;

function toView(secret: V1Secret): CaSecretView {
  return {
    uid: secret.metadata?.uid ?? '',
    resourceVersion: secret.metadata?.resourceVersion ?? '',
    type: secret.type ?? '',
    annotations: secret.metadata?.annotations ?? {},
    data: Object.fromEntries(
      Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]),
    ),
  };
}

export class AuthorityController {
  private state: AuthorityState = { status: 'pending', message: 'loading the CA' };
  private readonly informers: Record<string, Informer<V1Secret, CaSecretView>>;
  /** What the current state was derived from, so unchanged input is not re-validated. */
  private evaluatedFrom = '';
  /** The self-signed Secret data last loaded successfully, to re-create it if it is deleted. */
  private lastGoodSelfSigned: { data: Record<string, Buffer>; trustDomain: string } | undefined;
  private evaluation: Promise<void> = Promise.resolve();
  /** A failed create of the CA Secret is retried with backoff: no watch event would ever retry it. */
  private createRetry: { failures: number; timer?: NodeJS.Timeout } = { failures: 0 };
  private stopped = false;
  private missingRecheck: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: AuthorityControllerOptions) {
    this.now = opts.now ?? Date.now;
    const informer = (name: string) =>
      new Informer<V1Secret, CaSecretView>({
        name: `secret ${opts.namespace}/${name}`,
        kubeConfig: opts.kubeConfig,
        source: {
          watchPath: `/api/v1/namespaces/${opts.namespace}/secrets`,
          fieldSelector: `metadata.name=${name}`,
          list: (o) => opts.core.listNamespacedSecret({ namespace: opts.namespace, ...o }),
        },
        summarize: toView,
        handlers: {
          added: () => this.reevaluate(),
          updated: () => this.reevaluate(),
          deleted: () => this.reevaluate(),
        },
        log: opts.log,
        resyncPeriodMs: opts.resyncPeriodMs,
        stallTimeoutMs: opts.stallTimeoutMs,
      });
    this.informers = {
      [SELF_SIGNED_SECRET]: informer(SELF_SIGNED_SECRET),
      [PLUGGED_IN_SECRET]: informer(PLUGGED_IN_SECRET),
    };
  }

  get current(): AuthorityState {
    return this.state;
  }

  /** The CA Secret as cached (holds key material: never log it). */
  caSecret(name: string): CaSecretView | undefined {
    return this.informers[name]?.get(`${this.opts.namespace}/${name}`);
  }

  async start(): Promise<void> {
    for (const informer of Object.values(this.informers)) informer.start();
    await Promise.all(Object.values(this.informers).map((i) => i.waitForSync()));
    this.reevaluate();
    await this.evaluation;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.createRetry.timer);
    clearTimeout(this.missingRecheck);
    await Promise.all(Object.values(this.informers).map((i) => i.stop()));
    await this.evaluation;
  }

  /** Re-derives the state from the caches; evaluations never overlap. */
  reevaluate(): Promise<void> {
    this.evaluation = this.evaluation.then(() =>
      this.evaluate().catch((err: unknown) => {
        this.opts.log.error({ err }, 'evaluating the CA failed');
      }),
    );
    return this.evaluation;
  }

  private setState(next: AuthorityState): void {
    const previous = this.state;
    this.state = next;
    const changed =
      previous.status !== next.status ||
      (next.status === 'ready' &&
        previous.status === 'ready' &&
        previous.authority.generation !== next.authority.generation) ||
      (next.status !== 'ready' && previous.status !== 'ready' && previous.message !== next.message);
    if (!changed) return;
    if (next.status === 'ready') {
      this.opts.log.info(
        {
          source: next.authority.source,
          signer: next.authority.signer.fingerprintSha256,
          notAfter: next.authority.signer.notAfter.toISOString(),
          roots: next.authority.roots.length,
        },
        'CA loaded',
      );
    } else if (next.status === 'failed') {
      this.opts.log.error({ reason: next.reason }, `CA cannot sign: ${next.message}`);
    }
    this.opts.onChange(next, previous);
  }

  private async evaluate(): Promise<void> {
    // Until the caches have synced every CA Secret looks missing; start() evaluates once they have.
    if (!Object.values(this.informers).every((informer) => informer.hasSynced)) return;
    const config = this.opts.config();
    const mode = config.root.mode;
    const name = mode === 'SelfSigned' ? SELF_SIGNED_SECRET : PLUGGED_IN_SECRET;
    const source = `${this.opts.namespace}/${name}`;
    const secret = this.informers[name]!.get(`${this.opts.namespace}/${name}`);
    const loadOptions = {
      now: new Date(this.now()),
      minRemainingMs: Math.max(config.workload.minGracePeriodMs, 60_000),
    };
    const fingerprint = `${mode}|${secret?.uid}|${secret?.resourceVersion}|${config.trustDomain}`;
    if (fingerprint === this.evaluatedFrom && this.state.status !== 'pending') {
      if (this.state.status === 'ready') await this.opts.continuity?.recordLoaded(this.state.authority);
      return;
    }

    if (!secret) {
      this.evaluatedFrom = '';
      // A root held in memory is re-created as is; otherwise the record of roots used decides.
      const remembered = mode === 'SelfSigned' && this.lastGoodSelfSigned !== undefined;
      const decision = remembered ? undefined : await this.opts.continuity?.whenMissing(mode, source);
      if (decision?.action === 'refuse') {
        this.setState({ status: 'failed', reason: 'RootMissing', message: decision.message });
        this.recheckMissingLater();
        return;
      }
      if (mode === 'PluggedIn') {
        this.setState({
          status: 'failed',
          reason: 'MissingSecret',
          message: `rootCA.mode is PluggedIn but Secret ${source} does not exist`,
        });
        return;
      }
      await this.createSelfSigned(config, source, decision?.action === 'accept' ? decision : undefined);
      return;
    }

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
      if (mode === 'SelfSigned')
        this.lastGoodSelfSigned = { data: secret.data, trustDomain: config.trustDomain };
      this.evaluatedFrom = fingerprint;
      this.setState({ status: 'ready', authority });
      await this.opts.continuity?.recordLoaded(authority);
    } catch (err) {
      this.evaluatedFrom = fingerprint;
      if (err instanceof CaLoadError)
        this.setState({ status: 'failed', reason: err.reason, message: err.message });
      else throw err;
    }
  }

  /** Creates istio-ca-secret: the root in use if it was deleted, otherwise a new one. Never overwrites. */
  private async createSelfSigned(config: CaConfig, source: string, accepted?: AcceptedRoot): Promise<void> {
    if (!this.opts.canWrite()) {
      this.setState({ status: 'pending', message: `waiting for the leader to create ${source}` });
      return;
    }
    const restoring = this.lastGoodSelfSigned !== undefined;
    const generated = restoring
      ? undefined
      : await generateRootData({
          trustDomain: config.trustDomain,
          keyAlgorithm: config.root.selfSigned.keyAlgorithm,
          ttlMs: config.root.selfSigned.ttlMs,
          now: new Date(this.now()),
        });
    const fromAccepted =
      generated && accepted ? acceptedRootSecret(generated, accepted, this.now()) : undefined;
    const stringData = fromAccepted?.stringData ?? generated;
    const data = restoring
      ? Object.fromEntries(
          Object.entries(this.lastGoodSelfSigned!.data).map(([k, v]) => [k, v.toString('base64')]),
        )
      : undefined;
    try {
      await this.opts.core.createNamespacedSecret({
        namespace: this.opts.namespace,
        body: {
          metadata: {
            name: SELF_SIGNED_SECRET,
            namespace: this.opts.namespace,
            labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
            ...(fromAccepted ? { annotations: fromAccepted.annotations } : {}),
          },
          type: SELF_SIGNED_SECRET_TYPE,
          ...(data ? { data } : { stringData }),
        },
      });
      this.createRetry.failures = 0;
      if (restoring) this.opts.log.warn(`${source} was deleted; re-created it with the root in use`);
      else if (accepted)
        this.opts.log.warn(
          { request: accepted.request, previousRoots: accepted.previousRoots.length },
          `accepted a new root in ${source}: the old roots stay trusted while every workload is reissued`,
        );
      else
        this.opts.log.info(
          { trustDomain: config.trustDomain },
          `generated a new self-signed root in ${source}`,
        );
    } catch (err) {
      if (isConflict(err)) {
        this.createRetry.failures = 0;
        // Another replica won the race: its root is the one; the watch brings it.
        this.opts.log.info(`${source} was created by someone else meanwhile; using that root`);
        return;
      }
      this.setState({
        status: 'failed',
        reason: 'CreateFailed',
        message: `cannot create ${source}: ${describeApiError(err)}`,
      });
      this.retryCreateLater();
    }
  }

  private recheckMissingLater(): void {
    if (this.stopped) return;
    clearTimeout(this.missingRecheck);
    this.missingRecheck = setTimeout(() => void this.reevaluate(), MISSING_ROOT_RECHECK_MS);
    this.missingRecheck.unref();
  }

  private retryCreateLater(): void {
    if (this.stopped) return;
    const delayMs = Math.min(1_000 * 2 ** this.createRetry.failures++, 60_000);
    clearTimeout(this.createRetry.timer);
    this.createRetry.timer = setTimeout(() => void this.reevaluate(), delayMs);
    this.createRetry.timer.unref();
    this.opts.log.info({ retryInMs: delayMs }, 'will retry creating the CA Secret');
  }
}
