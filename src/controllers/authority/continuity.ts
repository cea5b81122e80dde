// Reads and writes the root history (ca/root-history.ts) for the authority
// controller: after a root loads it is recorded in ConfigMap
// alcazar-root-history in the CA namespace; when the CA Secret is missing and
// no root is held in memory, the record decides whether a new root may be
// made (fresh install), must not be (RootMissing), or was accepted by the
// operator (a new root, trusting the old ones next to it).
import type { CoreV1Api, V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { CaMode, SigningAuthority } from '../../ca/authority.js';
import {
  decideMissingRoot,
  encodeRootHistory,
  historyAfterLoad,
  type MissingRootDecision,
  parseRootHistory,
  ROOT_HISTORY_CONFIGMAP,
  type RootHistory,
} from '../../ca/root-history.js';
import { CERTIFICATE_AUTHORITY_NAME, certificateAuthorityResource } from '../../config/ca-resource.js';
import { describeApiError, isConflict, isNotFound } from '../../kube/client.js';
import type { EventSink } from '../../kube/events.js';
import { decodeCertificatesPem, encodeCertificatesPem } from '../../pki/pem.js';
import {
  PHASE_ANNOTATION,
  PHASE_SINCE_ANNOTATION,
  PREVIOUS_CERT,
  STARTED_ANNOTATION,
} from '../root-rotation/controller.js';
import { TRUST_BUNDLE_KEY, TRUST_BUNDLE_NAME } from '../trust-bundle/observe.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../workload-secrets/observe.js';

export interface RootContinuityOptions {
  core: CoreV1Api;
  namespace: string;
  log: Logger;
  events: EventSink;
  canWrite: () => boolean;
  /** The CertificateAuthority's accept-new-root annotation. */
  acceptRequest: () => string | undefined;
  /** Root fingerprints the CertificateAuthority status records for this CA namespace. */
  statusFingerprints: () => string[];
  now?: () => number;
}

export class RootContinuity {
  private missingSince: number | undefined;
  private acceptedRequest: string | undefined;
  /** The authority generation last recorded (or found recorded). */
  private recordedGeneration: string | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: RootContinuityOptions) {
    this.now = opts.now ?? Date.now;
  }

  private async read(): Promise<{ history: RootHistory; configMap?: V1ConfigMap }> {
    const { core, namespace } = this.opts;
    try {
      const configMap = await core.readNamespacedConfigMap({ namespace, name: ROOT_HISTORY_CONFIGMAP });
      return { history: parseRootHistory(configMap.data), configMap };
    } catch (err) {
      if (isNotFound(err)) return { history: parseRootHistory(undefined) };
      throw err;
    }
  }

  /** What to do about a missing CA Secret when no root is held in memory. */
  async whenMissing(mode: CaMode, source: string): Promise<MissingRootDecision> {
    this.missingSince ??= this.now();
    let history: RootHistory;
    try {
      ({ history } = await this.read());
    } catch (err) {
      return {
        action: 'refuse',
        missingFingerprint: '',
        message: `${source} is missing and ${this.opts.namespace}/${ROOT_HISTORY_CONFIGMAP} cannot be read (${describeApiError(err)}); not making a new root without knowing which roots were used`,
      };
    }
    const input = {
      mode,
      source,
      history,
      statusFingerprints: this.opts.statusFingerprints(),
      request: this.opts.acceptRequest(),
      missingSince: this.missingSince,
    };
    let decision = decideMissingRoot(input);
    if (decision.action === 'accept' && decision.previousActive === undefined) {
      // The record lacks the old root's certificate: published trust bundles still carry it.
      decision = decideMissingRoot({ ...input, publishedRoots: await this.publishedRoots() });
    }
    if (decision.action === 'refuse' && (await this.existsOnServer(source))) {
      // Our cache has not seen it yet (another replica just created it): the watch brings it.
      return { action: 'create' };
    }
    if (decision.action === 'refuse' && this.opts.canWrite()) {
      this.opts.events.record(
        {
          apiVersion: `${certificateAuthorityResource.group}/${certificateAuthorityResource.version}`,
          kind: certificateAuthorityResource.kind,
          name: CERTIFICATE_AUTHORITY_NAME,
        },
        'Warning',
        'RootMissing',
        decision.message,
      );
    }
    if (decision.action === 'accept') this.acceptedRequest = decision.request;
    return decision;
  }

  private async existsOnServer(source: string): Promise<boolean> {
    const name = source.slice(source.indexOf('/') + 1);
    try {
      await this.opts.core.readNamespacedSecret({ namespace: this.opts.namespace, name });
      return true;
    } catch {
      return false;
    }
  }

  /** Roots found in a few istio-ca-root-cert ConfigMaps (another namespace's copy survives this one). */
  private async publishedRoots(): Promise<Buffer[]> {
    try {
      const list = await this.opts.core.listConfigMapForAllNamespaces({
        fieldSelector: `metadata.name=${TRUST_BUNDLE_NAME}`,
        labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
        limit: 20,
      });
      return list.items.flatMap((cm) => {
        try {
          return decodeCertificatesPem(cm.data?.[TRUST_BUNDLE_KEY] ?? '');
        } catch {
          return [];
        }
      });
    } catch (err) {
      this.opts.log.warn({ err: describeApiError(err) }, 'cannot list trust bundles to find the old roots');
      return [];
    }
  }

  /** Records the loaded CA's roots (leader only); a failure is logged and retried at the next load. */
  async recordLoaded(authority: SigningAuthority): Promise<void> {
    this.missingSince = undefined;
    if (!this.opts.canWrite() || this.recordedGeneration === authority.generation) return;
    const { core, namespace, log } = this.opts;
    try {
      const { history, configMap } = await this.read();
      const next = historyAfterLoad(
        history,
        {
          mode: authority.mode,
          roots: decodeCertificatesPem(authority.rootBundlePem),
          activeFingerprint: authority.activeRootFingerprint,
        },
        this.acceptedRequest,
      );
      if (!next) {
        this.recordedGeneration = authority.generation;
        return;
      }
      const metadata = {
        name: ROOT_HISTORY_CONFIGMAP,
        namespace,
        labels: { ...configMap?.metadata?.labels, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
        ...(configMap ? { resourceVersion: configMap.metadata?.resourceVersion } : {}),
      };
      const body = { metadata, data: encodeRootHistory(next) };
      if (configMap) await core.replaceNamespacedConfigMap({ namespace, name: ROOT_HISTORY_CONFIGMAP, body });
      else await core.createNamespacedConfigMap({ namespace, body });
      this.acceptedRequest = undefined;
      this.recordedGeneration = authority.generation;
      log.info(
        { roots: next.fingerprints.length, active: next.active },
        `recorded the roots in use in ${namespace}/${ROOT_HISTORY_CONFIGMAP}`,
      );
    } catch (err) {
      log[isConflict(err) ? 'debug' : 'warn'](
        { err: describeApiError(err) },
        `could not record the roots in ${namespace}/${ROOT_HISTORY_CONFIGMAP}; will retry at the next load`,
      );
    }
  }
}

export type AcceptedRoot = Extract<MissingRootDecision, { action: 'accept' }>;

/**
 * istio-ca-secret for an accepted new root, set up as a root rotation in its Reissuing phase: the
 * new root signs, the old roots stay in the bundle until no managed leaf signed by them remains,
 * then the rotation retires the old active root as usual.
 */
export function acceptedRootSecret(
  generated: Record<string, string>,
  accepted: AcceptedRoot,
  now: number,
): { stringData: Record<string, string>; annotations: Record<string, string> } {
  const [newRoot] = decodeCertificatesPem(generated['ca-cert.pem']!);
  const stamp = new Date(now).toISOString();
  if (accepted.previousRoots.length === 0) {
    return { stringData: generated, annotations: { [ACCEPTED_REQUEST_ANNOTATION]: accepted.request } };
  }
  return {
    stringData: {
      ...generated,
      'root-cert.pem': encodeCertificatesPem([...accepted.previousRoots, newRoot!]),
      ...(accepted.previousActive
        ? { [PREVIOUS_CERT]: encodeCertificatesPem([accepted.previousActive]) }
        : {}),
    },
    annotations: {
      [ACCEPTED_REQUEST_ANNOTATION]: accepted.request,
      [PHASE_ANNOTATION]: 'Reissuing',
      [PHASE_SINCE_ANNOTATION]: stamp,
      [STARTED_ANNOTATION]: stamp,
    },
  };
}

/** On istio-ca-secret: the accept-new-root request it was made for. */
export const ACCEPTED_REQUEST_ANNOTATION = 'alcazar.dev/accepted-new-root';
