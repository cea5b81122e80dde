// Signs the CRL of every CA in use and keeps it in ConfigMap istio-ca-crl of the CA namespace: one
// key on the work queue, re-examined on every revocation and CRL change, when the CA changes, and
// after the requeue-after that plan() names (half the validity, or the next listed expiry).
// CrlPublisher copies it, once every signer's CRL is in it, into every managed namespace.
import type { Logger } from 'pino';
import { type CrlSigner, crlSigners, operatorCrlPem } from '../../ca/crl-signers.js';
import { parseCertificateRevocationSpec } from '../../config/revocation-spec.js';
import { apiStatus } from '../../kube/client.js';
import { systemClock } from '../../kube/clock.js';
import { type ApiRequester, configMapsPath, MERGE_PATCH_CONTENT } from '../../kube/raw.js';
import { WorkQueue } from '../../kube/workqueue.js';
import { PLUGGED_IN_SECRET, SELF_SIGNED_SECRET } from '../../model/names.js';
import { buildCrl, crlSignedBy, decodeCrlsPem, parseCrl } from '../../pki/crl.js';
import { decodePem } from '../../pki/pem.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { ControllerContext } from '../context.js';
import { startReconcileLoop } from '../reconcile-loop.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../workload-secrets/observe.js';
import type { CrlHealth } from './health.js';
import {
  CRL_CONFIGMAP_NAME,
  CRL_KEY,
  CRL_NEXT_UPDATE_ANNOTATION,
  CRL_NUMBER_ANNOTATION,
  type CrlConfigMapView,
} from './observe.js';
import { entriesKey, type PublishedCrlConfigMap, planCrl, type RevokedForCrl } from './plan.js';

export interface CrlSources {
  signers: CrlSigner[];
  /** The operator's CRLs (plugged-in cacerts ca-crl.pem): see OperatorCrls. */
  operatorPem: string;
}

export interface CrlControllerOptions extends ControllerContext {
  /** Writes go through this (the API server, or an in-memory one in tests). */
  raw: ApiRequester;
  /** The signers and the operator's CRLs; by default derived from the shared authority and CA Secret. */
  sources?: () => CrlSources | undefined;
  metrics?: Metrics;
  now?: () => number;
}

export type { CrlHealth } from './health.js';

const KEY = 'crl';

/** CRLs as PEM, re-encoded, so that the operator's formatting does not count as an edit. */
function crlsPem(ders: readonly Buffer[]): string {
  return ders
    .map(
      (der) =>
        `-----BEGIN X509 CRL-----\n${der
          .toString('base64')
          .replace(/(.{64})/g, '$1\n')
          .replace(/\n$/, '')}\n-----END X509 CRL-----\n`,
    )
    .join('');
}

/** The operator's CRLs (plugged-in cacerts ca-crl.pem), sorted by who issued them. */
export interface OperatorCrls {
  /** Issued by other CAs (e.g. the root's, listing revoked intermediates): published as given, after ours. */
  foreign: Buffer[];
  /**
   * The entries of those one of our signers issued (e.g. istiod's, carried over with its
   * intermediate): listed in our CRL, which replaces them. Published beside ours, a verifier would
   * find two CRLs from one issuer and use either (OpenSSL takes the newer), so their revocations
   * could be lost.
   */
  adopted: RevokedForCrl[];
  /** Ours, but unreadable (their entries cannot be merged): left out, and logged. */
  unreadable: number;
}

export function operatorCrls(sources: CrlSources): OperatorCrls {
  const result: OperatorCrls = { foreign: [], adopted: [], unreadable: 0 };
  let ders: Buffer[];
  try {
    ders = decodeCrlsPem(sources.operatorPem || '');
  } catch {
    return result; // not PEM: nothing usable (cacerts loaded, so only this key is broken)
  }
  for (const der of ders) {
    if (!sources.signers.some((s) => crlSignedBy(der, s.certificateDer))) {
      result.foreign.push(der);
      continue;
    }
    let entries: ReturnType<typeof parseCrl>['entries'];
    try {
      entries = parseCrl(der).entries;
    } catch {
      result.unreadable++; // neither mergeable nor publishable as another CA's
      continue;
    }
    for (const entry of entries) {
      // When the certificate ends is not in a CRL: listed as long as the operator's CRL lists it.
      result.adopted.push({
        serial: entry.serial,
        notAfter: Number.POSITIVE_INFINITY,
        revokedAt: entry.revokedAt.getTime(),
        reason: entry.reason,
      });
    }
  }
  return result;
}

/** What is in the CA namespace's istio-ca-crl, checked against the signers. */
export function examinePublished(
  view: CrlConfigMapView,
  sources: CrlSources,
  operator: Pick<OperatorCrls, 'foreign'> = operatorCrls(sources),
): PublishedCrlConfigMap {
  const result: PublishedCrlConfigMap = { owned: view.owned, crls: [], wellFormed: false };
  if (view.text === undefined) return result;
  let blocks: ReturnType<typeof decodePem>;
  try {
    blocks = decodePem(view.text);
  } catch {
    return result;
  }
  // An operator CRL that one of our signers issued counts as ours here: a second CRL of that signer,
  // so the text is signed again without it (its entries are in ours).
  const foreign = operator.foreign;
  const others: Buffer[] = [];
  for (const block of blocks) {
    if (block.type !== 'X509 CRL') return result;
    const signer = sources.signers.find((s) => crlSignedBy(block.der, s.certificateDer));
    if (!signer) {
      others.push(block.der);
      continue;
    }
    let parsed: ReturnType<typeof parseCrl>;
    try {
      parsed = parseCrl(block.der);
    } catch {
      return result; // not one we would sign: the text counts as edited, and is signed again
    }
    result.crls.push({
      signerFingerprint: signer.fingerprint,
      crlNumber: parsed.crlNumber ?? 0n,
      thisUpdate: parsed.thisUpdate.getTime(),
      nextUpdate: parsed.nextUpdate?.getTime() ?? 0,
      entriesKey: entriesKey(parsed.entries),
    });
  }
  const othersMatch = others.length === foreign.length && others.every((der, i) => der.equals(foreign[i]!));
  const onlyOurKey = view.dataKeys.length === 1 && view.dataKeys[0] === CRL_KEY;
  result.wellFormed = othersMatch && onlyOurKey;
  return result;
}

export class CrlController {
  readonly queue: WorkQueue;
  private workers: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly sources: () => CrlSources | undefined;
  private publishableMemo: { key: string; ok: boolean; expires: number } | undefined;
  /** The last CRL number this process signed: numbers never repeat even if every copy was just lost. */
  private lastNumber = 0n;
  private readonly caKey: string;

  constructor(private readonly opts: CrlControllerOptions) {
    const clock = opts.clock ?? systemClock;
    this.now = opts.now ?? (() => clock.now());
    this.queue = new WorkQueue({ clock });
    this.sources = opts.sources ?? (() => this.sourcesFromCaches());
    this.caKey = `${opts.caNamespace}/${CRL_CONFIGMAP_NAME}`;
    const enqueue = () => this.queue.add(KEY);
    // A new CA, a new configuration (the CRL validity) or a new leader: sign or check again.
    const { state } = opts.caches;
    state.authority.subscribe(enqueue);
    state.config.subscribe(enqueue);
    state.leading.subscribe((leading) => leading && enqueue());
    state.configHeld.subscribe((held) => !held && enqueue());
    opts.caches.revocations.subscribe({ added: enqueue, updated: enqueue, deleted: enqueue });
    const onCrl = (key: string) => {
      if (key === this.caKey) this.queue.add(KEY);
    };
    opts.caches.crls.subscribe({ added: onCrl, updated: onCrl, deleted: onCrl });
  }

  start(): void {
    this.workers = startReconcileLoop({
      queue: this.queue,
      workers: 1,
      reconcile: () => this.reconcile(),
      log: this.opts.log,
      describeKey: () => ({ configMap: this.caKey }),
      onError: (_, err) => this.failed(err),
    });
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await this.workers;
  }

  /** After the CA or the configuration changed. */
  enqueue(): void {
    this.queue.add(KEY);
  }

  get health(): CrlHealth {
    return this.opts.caches.state.crl.current;
  }

  /** The CA's CRL signers (the retiring root too, while a rotation keeps its key) and the operator's CRLs. */
  private sourcesFromCaches(): CrlSources | undefined {
    const state = this.opts.caches.state.authority.current;
    if (state.status !== 'ready') return undefined;
    const secretName = state.authority.mode === 'SelfSigned' ? SELF_SIGNED_SECRET : PLUGGED_IN_SECRET;
    const data = this.opts.caches.caSecret(secretName)?.data;
    return { signers: crlSigners(state.authority, data), operatorPem: operatorCrlPem(state.authority, data) };
  }

  /**
   * The CA namespace's CRL text, when every current signer has a CRL in it and none has expired:
   * what the publisher may copy. Decided from the cache alone (memoised by content and signers),
   * so it does not depend on when this controller last ran.
   */
  publishable(): { text: string; hash: string } | undefined {
    const view = this.opts.caches.crls.get(this.caKey);
    const sources = this.sources();
    if (!view?.text || !view.contentHash || !sources) return undefined;
    const memoKey = `${view.contentHash}|${sources.signers.map((s) => s.fingerprint).join(',')}`;
    if (this.publishableMemo?.key !== memoKey) {
      const published = examinePublished(view, sources);
      const covered = sources.signers.every((s) =>
        published.crls.some((c) => c.signerFingerprint === s.fingerprint),
      );
      const expires = Math.min(...published.crls.map((c) => c.nextUpdate));
      this.publishableMemo = {
        key: memoKey,
        ok: published.owned && published.wellFormed && covered,
        expires,
      };
    }
    const memo = this.publishableMemo;
    return memo.ok && memo.expires > this.now() ? { text: view.text, hash: view.contentHash } : undefined;
  }

  private failed(err: unknown): void {
    this.opts.metrics?.crlSignFailed();
    const previous = this.health;
    const nextUpdate = previous.state === 'unknown' ? undefined : previous.nextUpdate;
    this.opts.caches.state.crl.set({
      state: 'failing',
      ...(nextUpdate !== undefined && { nextUpdate }),
      message: `cannot sign or publish the CRL: ${(err as Error).message}`,
    });
  }

  private revoked(): RevokedForCrl[] {
    const entries: RevokedForCrl[] = [];
    for (const [, view] of this.opts.caches.revocations.entries()) {
      if (!view.decided?.applied) continue;
      const parsed = parseCertificateRevocationSpec(view.spec);
      const reason = parsed.ok ? parsed.request.reason : 'unspecified';
      for (const entry of view.revoked) {
        entries.push({
          serial: entry.serial,
          notAfter: entry.notAfter,
          revokedAt: view.revokedAt ?? view.createdAt,
          reason,
        });
      }
    }
    return entries;
  }

  private highestCrlNumber(): bigint {
    let highest = this.lastNumber;
    for (const [, view] of this.opts.caches.crls.entries())
      if (view.highestCrlNumber > highest) highest = view.highestCrlNumber;
    return highest;
  }

  private async reconcile(): Promise<void> {
    if (!this.opts.canWrite()) return;
    const sources = this.sources();
    const view = this.opts.caches.crls.get(this.caKey);
    const now = this.now();
    const validityMs = this.opts.config().revocation.crlValidityMs;
    const operator = sources ? operatorCrls(sources) : { foreign: [], adopted: [], unreadable: 0 };
    const revoked = [...this.revoked(), ...operator.adopted];
    const published = view && sources ? examinePublished(view, sources, operator) : undefined;
    const decision = planCrl({
      signers: sources?.signers.map((s) => s.fingerprint),
      revoked,
      validityMs,
      ...(published && { published }),
      highestCrlNumber: this.highestCrlNumber(),
      now,
    });
    const log = this.opts.log.child({ namespace: this.opts.caNamespace, configMap: CRL_CONFIGMAP_NAME });
    if (operator.unreadable > 0 && decision.action === 'sign')
      log.warn(
        { unreadable: operator.unreadable },
        'cacerts ca-crl.pem holds a CRL issued by the signing CA that cannot be read: its entries are not in the published CRL',
      );
    switch (decision.action) {
      case 'wait':
        return;
      case 'report':
        log.warn({ reason: decision.reason }, decision.message);
        this.opts.events.record(
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            namespace: this.opts.caNamespace,
            name: CRL_CONFIGMAP_NAME,
            uid: view?.uid,
          },
          'Warning',
          decision.reason,
          decision.message,
        );
        return;
      case 'none': {
        // 'none' is decided only on what was published.
        const { crls } = published!;
        this.setHealth(
          Math.min(...crls.map((c) => c.nextUpdate)),
          crls[0] ? countEntries(crls[0].entriesKey) : 0,
        );
        this.queue.addAfter(KEY, decision.recheckAt - now);
        return;
      }
      case 'sign': {
        const crls = sources!.signers.map(
          (signer) =>
            buildCrl({
              issuer: { certificate: signer.certificateDer, privateKey: signer.privateKey },
              crlNumber: decision.crlNumber,
              thisUpdate: new Date(decision.thisUpdate),
              nextUpdate: new Date(decision.nextUpdate),
              entries: decision.entries,
            }).pem,
        );
        const text = crls.join('') + crlsPem(operator.foreign);
        this.lastNumber = decision.crlNumber;
        await this.write(view, text, decision.crlNumber, decision.nextUpdate, log);
        this.setHealth(decision.nextUpdate, decision.entries.length);
        log.info(
          {
            reason: decision.reason,
            crlNumber: decision.crlNumber.toString(),
            revoked: decision.entries.length,
            issuers: crls.length,
            ...(operator.adopted.length > 0 && { fromOperatorCrls: operator.adopted.length }),
            nextUpdate: new Date(decision.nextUpdate).toISOString(),
          },
          'signed CRL',
        );
        // Look again at half the validity (the plan of the next pass names the exact moment).
        this.queue.addAfter(KEY, (decision.nextUpdate - now) / 2);
        return;
      }
    }
  }

  private setHealth(nextUpdate: number, revoked: number): void {
    this.opts.caches.state.crl.set({ state: 'current', nextUpdate, revoked });
    this.opts.metrics?.setCrl({ nextUpdate: new Date(nextUpdate), revoked });
  }

  private async write(
    view: CrlConfigMapView | undefined,
    text: string,
    crlNumber: bigint,
    nextUpdate: number,
    log: Logger,
  ): Promise<void> {
    const { raw, caNamespace: namespace } = this.opts;
    const annotations = {
      [CRL_NUMBER_ANNOTATION]: crlNumber.toString(),
      [CRL_NEXT_UPDATE_ANNOTATION]: new Date(nextUpdate).toISOString(),
    };
    const labels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
    if (!view) {
      try {
        await raw.request('POST', configMapsPath(namespace), {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: CRL_CONFIGMAP_NAME, namespace, labels, annotations },
          data: { [CRL_KEY]: text },
        });
      } catch (err) {
        if (apiStatus(err) === 409) log.debug('istio-ca-crl exists already: the cache is behind');
        throw err;
      }
      return;
    }
    const data: Record<string, string | null> = { [CRL_KEY]: text };
    for (const key of view.dataKeys) if (key !== CRL_KEY) data[key] = null;
    await raw.request(
      'PATCH',
      configMapsPath(namespace, CRL_CONFIGMAP_NAME),
      { metadata: { resourceVersion: view.resourceVersion, labels, annotations }, data, binaryData: null },
      MERGE_PATCH_CONTENT,
    );
  }
}

function countEntries(key: string): number {
  return key === '' ? 0 : key.split(',').length;
}
