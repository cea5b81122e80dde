// The CertificateAuthority `default`, as a keyed reconcile (one key) on the
// work queue: its spec becomes the running configuration (built-in defaults
// when there is none; an invalid spec is reported and the last good one
// kept), and its status reports what the controllers publish in the shared
// state. It runs when the object, the configuration, the CA, the rotation or
// leadership changes, and every status interval for the counts.
import type { Logger } from 'pino';
import { certificateAuthorityResource as resource } from '../../config/ca-resource.js';
import { type CaConfig, isValidTrustDomain, specFingerprint } from '../../config/ca-spec.js';
import { apiStatus } from '../../kube/client.js';
import { type Clock, systemClock } from '../../kube/clock.js';
import type { EventSink } from '../../kube/events.js';
import { type ApiRequester, clusterCustomObjectPath, MERGE_PATCH_CONTENT } from '../../kube/raw.js';
import { CERTIFICATE_AUTHORITY_NAME } from '../../model/names.js';
import type { SharedCaches } from '../caches.js';
import { OneKeyController } from '../reconcile-loop.js';
import type { WorkloadQueries } from '../workload-secrets/queries.js';
import { mergePatchFor, planConfiguration } from './configuration.js';
import { type Condition, desiredStatus, planStatusWrite } from './status.js';

/** The field manager of every status write (managedFields shows it). */
export const FIELD_MANAGER = 'alcazar';
const KEY = CERTIFICATE_AUTHORITY_NAME;

export interface CertificateAuthorityControllerOptions {
  caches: SharedCaches;
  raw: ApiRequester;
  log: Logger;
  canWrite: () => boolean;
  workloads: WorkloadQueries;
  events: EventSink;
  statusIntervalMs?: number;
  clock?: Clock;
  /** Written to the status next to the roots, so they are only ever matched to this CA namespace. */
  caNamespace?: string;
}

export class CertificateAuthorityController extends OneKeyController {
  private lastSpecJson = specFingerprint(undefined);
  /** Whether a valid configuration (or, with no CertificateAuthority, the defaults) has been in effect. */
  private configApplied = false;
  private conditionTimes = new Map<string, { status: string; at: string }>();
  private readonly clock: Clock;
  /** When this process last wrote the status (counts alone are written at most once per interval). */
  private lastWriteAt: number | undefined;

  constructor(private readonly opts: CertificateAuthorityControllerOptions) {
    const clock = opts.clock ?? systemClock;
    super(KEY, { clock }, opts.log);
    this.clock = clock;
    const { caches } = opts;
    const enqueue = () => this.queue.add(KEY);
    caches.certificateAuthorities.subscribe({ added: enqueue, updated: enqueue, deleted: enqueue });
    const { state } = caches;
    for (const value of [
      state.config,
      state.specError,
      state.authority,
      state.rotation,
      state.crl,
      state.leading,
    ])
      (value as { subscribe(fn: () => void): void }).subscribe(enqueue);
    // Another replica may have led meanwhile: its transition times, as stored, count from now on.
    state.leading.subscribe((leading) => leading && this.conditionTimes.clear());
  }

  get current(): CaConfig {
    return this.opts.caches.state.config.current;
  }

  /** Root fingerprints the status records for this CA namespace (kept while no CA is loaded). */
  statusRootFingerprints(caNamespace: string): string[] {
    const status = this.opts.caches.certificateAuthority?.status;
    if (status?.caNamespace !== caNamespace) return [];
    return (status.roots ?? []).map((root) => root.fingerprintSha256);
  }

  /** The value of an annotation on the CertificateAuthority, if it exists. */
  annotation(name: string): string | undefined {
    return this.opts.caches.certificateAuthority?.annotations[name];
  }

  // start() resolves once the spec has been read; the CA-side caches must have synced.

  /** Asks for a status write (if it differs) now. */
  requestStatusUpdate(): void {
    this.queue.add(KEY);
  }

  /** Until the counts and the rotation state are known, the status would show zeros: no write. */
  private get settled(): boolean {
    return this.opts.caches.hasSynced && this.opts.caches.state.rotation.current !== undefined;
  }

  async reconcile(): Promise<void> {
    this.queue.addAfter(KEY, this.statusIntervalMs);
    this.applySpec();
    if (!this.opts.canWrite() || !this.settled) return;
    await this.writeStatus();
  }

  private get statusIntervalMs(): number {
    return this.opts.statusIntervalMs ?? 5_000;
  }

  private applySpec(): void {
    const { state } = this.opts.caches;
    const spec = this.opts.caches.certificateAuthority?.spec;
    const decision = planConfiguration(spec, this.lastSpecJson, state.config.current);
    this.lastSpecJson = specFingerprint(spec);
    // No CertificateAuthority at all: the defaults are the configuration, as documented.
    if (spec === undefined) this.configApplied = true;
    switch (decision.action) {
      case 'none':
        return;
      case 'apply':
        if (decision.changed) this.opts.log.info({ config: decision.config }, 'configuration changed');
        this.configApplied = true;
        state.config.set(decision.config);
        state.specError.set(undefined);
        state.configHeld.set(false);
        return;
      case 'reject':
        state.specError.set(decision.message);
        if (!this.configApplied) {
          // Nothing valid has been in effect since start: acting on the defaults could change every
          // identity (another trust domain) or make a root where a plugged-in one was meant.
          state.configHeld.set(true);
          this.opts.log.error(
            { reason: 'InvalidSpec' },
            `CertificateAuthority ${CERTIFICATE_AUTHORITY_NAME} is invalid and no valid configuration has been in effect since start: nothing is loaded, issued, written or deleted until it is fixed: ${decision.message}`,
          );
          return;
        }
        this.opts.log.error(
          { reason: 'InvalidSpec' },
          `CertificateAuthority ${CERTIFICATE_AUTHORITY_NAME} is invalid; keeping the last good configuration: ${decision.message}`,
        );
        return;
    }
  }

  private conditionTime(type: string, status: string): string {
    const previous = this.conditionTimes.get(type);
    if (previous?.status === status) return previous.at;
    const at = new Date(this.clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    this.conditionTimes.set(type, { status, at });
    return at;
  }

  private async writeStatus(): Promise<void> {
    const { caches } = this.opts;
    const view = caches.certificateAuthority;
    if (!view) return;
    for (const c of view.status?.conditions ?? []) {
      if (!this.conditionTimes.has(c.type))
        this.conditionTimes.set(c.type, { status: c.status, at: c.lastTransitionTime });
    }
    const status = desiredStatus({
      generation: view.generation,
      config: caches.state.config.current,
      specError: caches.state.specError.current,
      ...(caches.state.configHeld.current
        ? { configHeld: { trustDomain: requestedTrustDomain(view.spec) } }
        : {}),
      authority: caches.state.authority.current,
      counts: this.opts.workloads.counts(),
      rotation: caches.state.rotation.current!,
      crl: caches.state.crl.current,
      now: this.clock.now(),
      transitionTime: (type: Condition['type'], s: Condition['status']) => this.conditionTime(type, s),
      caNamespace: this.opts.caNamespace,
      previous: view.status,
    });
    const expiring = status.conditions.find((c) => c.type === 'RootExpiring');
    if (expiring?.status === 'True') {
      this.opts.events.record(
        {
          apiVersion: `${resource.group}/${resource.version}`,
          kind: resource.kind,
          name: CERTIFICATE_AUTHORITY_NAME,
        },
        'Warning',
        expiring.reason,
        expiring.message,
      );
    }
    const now = this.clock.now();
    const plan = planStatusWrite(view.status, status, this.lastWriteAt, now, this.statusIntervalMs);
    if (!plan.write) {
      if (plan.retryInMs !== undefined) this.queue.addAfter(KEY, plan.retryInMs);
      return;
    }
    const path = `${clusterCustomObjectPath(resource, CERTIFICATE_AUTHORITY_NAME, 'status')}?fieldManager=${FIELD_MANAGER}`;
    try {
      await this.opts.raw.request(
        'PATCH',
        path,
        { status: mergePatchFor(view.status, status) },
        MERGE_PATCH_CONTENT,
      );
      this.lastWriteAt = now;
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
    }
  }
}

/** The trust domain a spec asks for, when it names a valid one (an older CRD may have let anything in). */
function requestedTrustDomain(spec: unknown): string | undefined {
  const value = (spec as { trustDomain?: unknown } | undefined)?.trustDomain;
  return isValidTrustDomain(value) ? value : undefined;
}
