// The API writes of workload Secrets, and minting what they hold. They carry
// out what the reconcile decided and report what the API answered; they
// decide nothing.
import type { V1Secret } from '@kubernetes/client-node';
import type { SigningAuthority } from '../../ca/authority.js';
import { contentDigest } from '../../ca/content-digest.js';
import { issueWorkload, type WorkloadMaterial } from '../../ca/issue.js';
import type { CaConfig } from '../../config/ca-spec.js';
import { apiStatus, isNotFound } from '../../kube/client.js';
import { type ApiRequester, MERGE_PATCH_CONTENT, secretsPath } from '../../kube/raw.js';
import {
  CONTENT_DIGEST_ANNOTATION,
  DATA_KEYS,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  SERVICE_ACCOUNT_ANNOTATION,
  spiffeIdFor,
  WORKLOAD_SECRET_TYPE,
  workloadSecretName,
} from '../../model/names.js';
import { encodePem } from '../../pki/pem.js';
import { errorReason, type Metrics } from '../../telemetry/metrics.js';
import type { SharedCaches } from '../caches.js';
import { isOwnedSecret, leafDerOf, type ObservedSecret, writtenContent } from './observe.js';
import { backdateMs } from './renewal.js';

export interface WorkloadTarget {
  namespace: string;
  serviceAccount: string;
  /** The ServiceAccount's uid (the Secret's owner). */
  sa?: { uid: string };
  /** The DNS SANs the certificate gets: the requested ones the policy allows. */
  dnsNames: readonly string[];
  /** The Secret as cached, for patches and deletes guarded by its resourceVersion/uid. */
  secret?: ObservedSecret;
  config: CaConfig;
  authority: SigningAuthority;
  now: number;
}

export type CreateOutcome =
  | { result: 'created' }
  /** 409: a Secret stands at the name; whether it is ours. */
  | { result: 'conflict'; owned: boolean }
  /** 403: e.g. the namespace is terminating. */
  | { result: 'forbidden'; error: unknown };

export class WorkloadSecretWriter {
  constructor(
    private readonly raw: ApiRequester,
    private readonly caches: SharedCaches,
    private readonly metrics?: Metrics,
  ) {}

  /** A new key and certificate for the target's SPIFFE ID. */
  async mint(t: WorkloadTarget): Promise<WorkloadMaterial> {
    const { workload } = t.config;
    try {
      return await issueWorkload(t.authority, {
        spiffeId: spiffeIdFor(t.config.trustDomain, t.namespace, t.serviceAccount),
        dnsNames: t.dnsNames,
        keyAlgorithm: workload.keyAlgorithm,
        ttlMs: workload.ttlMs,
        backdateMs: backdateMs(workload.ttlMs, workload.clockSkewMs),
        now: new Date(t.now),
      });
    } catch (err) {
      this.metrics?.certificateSignFailed(errorReason(err));
      throw err;
    }
  }

  async create(t: WorkloadTarget, material: WorkloadMaterial): Promise<CreateOutcome> {
    const name = workloadSecretName(t.serviceAccount);
    try {
      await this.stored(t.namespace, name, () =>
        this.raw.request<V1Secret>('POST', secretsPath(t.namespace), {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: {
            name,
            namespace: t.namespace,
            labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
            annotations: {
              [SERVICE_ACCOUNT_ANNOTATION]: t.serviceAccount,
              [CONTENT_DIGEST_ANNOTATION]: digestOf(t, material),
            },
            ownerReferences: [
              {
                apiVersion: 'v1',
                kind: 'ServiceAccount',
                name: t.serviceAccount,
                uid: t.sa!.uid,
                controller: true,
              },
            ],
          },
          type: WORKLOAD_SECRET_TYPE,
          data: this.remember(t, material),
        }),
      );
      return { result: 'created' };
    } catch (err) {
      const status = apiStatus(err);
      if (status === 409) {
        const existing = await this.raw.request<V1Secret>('GET', secretsPath(t.namespace, name));
        return { result: 'conflict', owned: isOwnedSecret(existing) };
      }
      if (status === 403) return { result: 'forbidden', error: err };
      throw err;
    }
  }

  async reissue(t: WorkloadTarget, material: WorkloadMaterial): Promise<void> {
    await this.patch(t, this.remember(t, material), digestOf(t, material));
  }

  /**
   * New root bundle and chain, same key and leaf: nothing a workload must re-handshake for. The
   * content digest is left as it is: it covers the leaf and key.pem, which stay (a v1 digest from
   * an older alcazar covered the bundle too; it stops verifying, and the Secret is checked in full
   * until its next reissue writes a v2 one).
   */
  async refreshBundle(t: WorkloadTarget): Promise<void> {
    const leafDer = t.secret && leafDerOf(t.secret);
    if (!leafDer) throw new Error('cannot refresh: no leaf');
    await this.patch(
      t,
      base64Values({
        'cert-chain.pem': encodePem('CERTIFICATE', leafDer) + t.authority.chainPem,
        'root-cert.pem': t.authority.rootBundlePem,
      }),
      undefined,
    );
  }

  /** Deletes exactly the object decided about: never a newer one someone else created. */
  async delete(namespace: string, secret: ObservedSecret, name: string): Promise<void> {
    try {
      await this.raw.request('DELETE', secretsPath(namespace, name), {
        preconditions: { uid: secret.uid, resourceVersion: secret.resourceVersion },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Runs a write through the Secret cache, which keeps what the API answered: the watch event of
   * our own write is then neither parsed nor (metadata-only watch) read back.
   */
  private stored(namespace: string, name: string, write: () => Promise<V1Secret>): Promise<V1Secret> {
    return this.caches.workloadSecrets.writing(`${namespace}/${name}`, write);
  }

  /** The Secret data (base64) for freshly minted material, remembered so its watch event is not parsed again. */
  private remember(t: WorkloadTarget, material: WorkloadMaterial): Record<string, string> {
    const data = base64Values(material.data);
    this.caches.writtenSecrets.remember(
      data,
      writtenContent(material.leafDer, t.config.workload.keyAlgorithm, t.authority),
    );
    return data;
  }

  /**
   * Merge-patches our Secret, guarded by the resourceVersion decided on: if it changed meanwhile the
   * API answers 409 and the key is retried against the new state. Data keys that are not ours are
   * removed; annotations that are not ours are kept (a merge patch names only the ones it sets).
   */
  private async patch(
    t: WorkloadTarget,
    base64Data: Record<string, string>,
    /** The content digest to write; undefined leaves the annotation as it is. */
    digest: string | undefined,
  ): Promise<void> {
    const secret = t.secret!;
    const name = workloadSecretName(t.serviceAccount);
    const patchData: Record<string, string | null> = {};
    for (const key of secret.dataKeys)
      if (!(DATA_KEYS as readonly string[]).includes(key)) patchData[key] = null;
    for (const [key, value] of Object.entries(base64Data)) patchData[key] = value;
    await this.stored(t.namespace, name, () =>
      this.raw.request<V1Secret>(
        'PATCH',
        secretsPath(t.namespace, name),
        {
          metadata: {
            resourceVersion: secret.resourceVersion,
            labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
            annotations: {
              [SERVICE_ACCOUNT_ANNOTATION]: t.serviceAccount,
              ...(digest === undefined ? {} : { [CONTENT_DIGEST_ANNOTATION]: digest }),
            },
          },
          data: patchData,
        },
        MERGE_PATCH_CONTENT,
      ),
    );
  }
}

/** The content digest of freshly minted material, keyed by the authority that issued its leaf. */
function digestOf(t: WorkloadTarget, material: WorkloadMaterial): string {
  return contentDigest(t.authority, {
    leafDer: material.leafDer,
    'key.pem': Buffer.from(material.data['key.pem']),
  });
}

function base64Values(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
}
