// The CertificateAuthority `default`: its spec is the running configuration
// (built-in defaults when there is none), and its status reports what the
// controller sees. An invalid spec is reported and the last good one kept.
import {
  type CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  CERTIFICATE_AUTHORITY_NAME,
  certificateAuthorityResource as resource,
} from '../../config/ca-resource.js';
import {
  type CaConfig,
  defaultCaConfig,
  parseCertificateAuthoritySpec,
  specFingerprint,
} from '../../config/ca-spec.js';
import { apiStatus, describeApiError, isNotFound } from '../../kube/client.js';
import type { EventSink } from '../../kube/events.js';
import { Informer, type ListPage } from '../../kube/informer.js';
import type { AuthorityState } from '../authority/controller.js';
import type { CrlHealth } from '../crl/controller.js';
import type { RotationStatus } from '../root-rotation/controller.js';
import type { WorkloadCounts } from '../workload-secrets/controller.js';
import { type CaStatus, type Condition, desiredStatus, sameStatus } from './status.js';

interface CertificateAuthorityObject extends KubernetesObject {
  spec?: unknown;
  status?: CaStatus;
}

interface CaResourceView {
  generation: number;
  annotations: Record<string, string>;
  spec: unknown;
  status: CaStatus | undefined;
}

export interface CertificateAuthorityControllerOptions {
  kubeConfig: KubeConfig;
  customObjects: CustomObjectsApi;
  log: Logger;
  canWrite: () => boolean;
  /** False until the counts and rotation state are known (caches synced, first rotation check). */
  statusSettled?: () => boolean;
  onConfigChange: (config: CaConfig, previous: CaConfig) => void;
  /** An alcazar.dev/ annotation (an on-demand request such as rotate-root) changed. */
  onRequest?: () => void;
  authority: () => AuthorityState;
  counts: () => WorkloadCounts;
  rotation: () => RotationStatus;
  crl?: () => CrlHealth;
  events: EventSink;
  resyncPeriodMs: number;
  stallTimeoutMs: number;
  statusIntervalMs?: number;
  now?: () => number;
  /** Written to the status next to the roots, so they are only ever matched to this CA namespace. */
  caNamespace?: string;
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class CertificateAuthorityController {
  private config: CaConfig = defaultCaConfig();
  private specError: string | undefined;
  private crdMissingLogged = false;
  private lastSpecJson = 'undefined';
  private lastRequests: string | undefined;
  private readonly informer: Informer<CertificateAuthorityObject, CaResourceView>;
  private statusTimer: NodeJS.Timeout | undefined;
  private statusWrite: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  private conditionTimes = new Map<string, { status: string; at: string }>();

  constructor(private readonly opts: CertificateAuthorityControllerOptions) {
    this.now = opts.now ?? Date.now;
    const { group, version, plural } = resource;
    this.informer = new Informer<CertificateAuthorityObject, CaResourceView>({
      name: 'certificateauthorities',
      kubeConfig: opts.kubeConfig,
      source: {
        watchPath: `/apis/${group}/${version}/${plural}`,
        fieldSelector: `metadata.name=${CERTIFICATE_AUTHORITY_NAME}`,
        list: async (o) => {
          try {
            const page = (await opts.customObjects.listClusterCustomObject({
              group,
              version,
              plural,
              ...o,
            })) as ListPage<CertificateAuthorityObject>;
            this.crdMissingLogged = false;
            return page;
          } catch (err) {
            if (!isNotFound(err)) throw err;
            // No CRD installed: run on defaults; the watch fails and the informer retries with backoff.
            if (!this.crdMissingLogged) {
              opts.log.warn('the CertificateAuthority CRD is not installed; using built-in defaults');
              this.crdMissingLogged = true;
            }
            return { items: [], metadata: { resourceVersion: '0' } };
          }
        },
      },
      summarize: (obj) => ({
        generation: obj.metadata?.generation ?? 0,
        annotations: obj.metadata?.annotations ?? {},
        spec: obj.spec,
        status: obj.status,
      }),
      handlers: {
        added: (_, view) => this.applySpec(view),
        updated: (_, __, view) => this.applySpec(view),
        deleted: () => this.applySpec(undefined),
      },
      log: opts.log,
      resyncPeriodMs: opts.resyncPeriodMs,
      stallTimeoutMs: opts.stallTimeoutMs,
    });
  }

  get current(): CaConfig {
    return this.config;
  }

  /** Root fingerprints the status records for this CA namespace (kept while no CA is loaded). */
  statusRootFingerprints(caNamespace: string): string[] {
    const status = this.informer.get(CERTIFICATE_AUTHORITY_NAME)?.status;
    if (status?.caNamespace !== caNamespace) return [];
    return (status.roots ?? []).map((root) => root.fingerprintSha256);
  }

  /** The value of an annotation on the CertificateAuthority, if it exists. */
  annotation(name: string): string | undefined {
    return this.informer.get(CERTIFICATE_AUTHORITY_NAME)?.annotations[name];
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.waitForSync();
    this.statusTimer = setInterval(() => this.requestStatusUpdate(), this.opts.statusIntervalMs ?? 5_000);
    this.statusTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.statusTimer);
    await this.informer.stop();
    await this.statusWrite;
  }

  private applySpec(view: CaResourceView | undefined): void {
    // A changed on-demand annotation (rotate-root, accept-new-root) is acted on at once.
    const requests = JSON.stringify(
      Object.entries(view?.annotations ?? {}).filter(([name]) => name.startsWith('alcazar.dev/')),
    );
    if (this.lastRequests !== undefined && requests !== this.lastRequests) this.opts.onRequest?.();
    this.lastRequests = requests;
    const specJson = specFingerprint(view?.spec);
    if (specJson !== this.lastSpecJson) {
      this.lastSpecJson = specJson;
      const result = parseCertificateAuthoritySpec(view?.spec);
      if (result.ok) {
        this.specError = undefined;
        const previous = this.config;
        this.config = result.config;
        if (JSON.stringify(previous) !== JSON.stringify(result.config)) {
          this.opts.log.info({ config: result.config }, 'configuration changed');
          this.opts.onConfigChange(result.config, previous);
        }
      } else {
        this.specError = result.message;
        this.opts.log.error(
          { reason: 'InvalidSpec' },
          `CertificateAuthority ${CERTIFICATE_AUTHORITY_NAME} is invalid; keeping the last good configuration: ${result.message}`,
        );
      }
    }
    this.requestStatusUpdate();
  }

  /** Writes status when it differs from what the object shows; never more than one write in flight. */
  requestStatusUpdate(): void {
    this.statusWrite = this.statusWrite.then(() =>
      this.writeStatus().catch((err: unknown) => {
        this.opts.log.warn({ err: describeApiError(err) }, 'could not update CertificateAuthority status');
      }),
    );
  }

  private conditionTime(type: string, status: string): string {
    const previous = this.conditionTimes.get(type);
    if (previous?.status === status) return previous.at;
    const at = new Date(this.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    this.conditionTimes.set(type, { status, at });
    return at;
  }

  private async writeStatus(): Promise<void> {
    if (!this.opts.canWrite() || this.opts.statusSettled?.() === false) return;
    const view = this.informer.get(CERTIFICATE_AUTHORITY_NAME);
    if (!view) return;
    for (const c of view.status?.conditions ?? []) {
      if (!this.conditionTimes.has(c.type))
        this.conditionTimes.set(c.type, { status: c.status, at: c.lastTransitionTime });
    }
    const status = desiredStatus({
      generation: view.generation,
      config: this.config,
      specError: this.specError,
      authority: this.opts.authority(),
      counts: this.opts.counts(),
      rotation: this.opts.rotation(),
      ...(this.opts.crl && { crl: this.opts.crl() }),
      now: this.now(),
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
    if (view.status && sameStatus(view.status, status)) return;
    const { group, version, plural } = resource;
    try {
      await this.opts.customObjects.patchClusterCustomObjectStatus(
        {
          group,
          version,
          plural,
          name: CERTIFICATE_AUTHORITY_NAME,
          // A merge patch only adds: fields the status no longer has (phaseSince after Idle) are nulled.
          body: { status: withRemovals(view.status, status) },
          fieldManager: FIELD_MANAGER,
        },
        mergePatch,
      );
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
    }
  }
}

/** Who wrote the status, as managedFields shows it. */
export const FIELD_MANAGER = 'alcazar';

/**
 * `desired`, plus a null for every object field `previous` has and `desired` lacks, so that a
 * JSON merge patch removes it. Arrays and values are replaced whole, as merge patches do.
 */
export function withRemovals(previous: unknown, desired: unknown): unknown {
  if (!isPlainObject(previous) || !isPlainObject(desired)) return desired;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(previous)) if (!(key in desired)) out[key] = null;
  for (const [key, value] of Object.entries(desired)) out[key] = withRemovals(previous[key], value);
  return out;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
