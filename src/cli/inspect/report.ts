import type { V1Secret } from '@kubernetes/client-node';
import {
  CaLoadError,
  type LoadOptions,
  loadPluggedIn,
  loadSelfSigned,
  minSignerRemainingMs,
  PLUGGED_IN_SECRET,
  SELF_SIGNED_SECRET,
  type SigningAuthority,
} from '../../ca/authority.js';
import { contentDigestMatches } from '../../ca/content-digest.js';
import { type CaConfig, defaultCaConfig, parseCertificateAuthoritySpec } from '../../config/ca-spec.js';
import {
  isOwnedSecret,
  type ObservedSecret,
  observeNamespace,
  observeSecret,
  observeServiceAccount,
  SERVICE_ACCOUNT_ANNOTATION,
  signedByAuthority,
} from '../../controllers/workload-secrets/observe.js';
import {
  caViewOf,
  type Decision,
  plan,
  spiffeIdFor,
  workloadPolicy,
  workloadSecretName,
} from '../../controllers/workload-secrets/plan.js';
import { type RenewalPolicy, renewalDueAt } from '../../controllers/workload-secrets/renewal.js';
import { CERTIFICATE_AUTHORITY_NAME, CONTENT_DIGEST_ANNOTATION } from '../../model/names.js';
import type { Problem } from '../../pki/index.js';
import { defaultReservedDnsNames, type RefusedDnsName } from '../../policy/dns-names.js';
import type { InspectTarget } from './args.js';
import {
  checkChainAgainstCa,
  checkChainAgainstSecretRoot,
  checkDnsNames,
  checkIdentity,
  checkKey,
  checkRevocation,
  checkSecretShape,
  checkValidity,
  readLeaf,
} from './checks.js';
import { describeTimeLeft } from './format.js';
import type { CaSecretName, InspectObservation, Read } from './gather.js';

/** Whether a chain verified: `null` when it could not be checked (`message` says why). */
export interface ChainCheck {
  verified: boolean | null;
  /** Where the trust anchors came from, e.g. "istio-system/istio-ca-secret". */
  source: string | null;
  /** Why it failed or was not checked. */
  message?: string;
}

/**
 * The report, printed as is by `-o json`. Field names are stable; fields are added, never renamed.
 *
 *   secret            {namespace, name, type, managedByAlcazar, owners: [{kind, name, uid, controller}]}
 *   serviceAccount    the ServiceAccount the Secret is for, or null when its name does not say
 *   trustDomain       from the CertificateAuthority; configSource says whether it or the built-in defaults
 *   spiffeId          the certificate's one URI SAN (null when it has none, several, or is unreadable)
 *   expectedSpiffeId  spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>, or null
 *   spiffeIdMatches   spiffeId === expectedSpiffeId; null when nothing is expected
 *   dnsNames, serial (hex), keyType (ECDSA_P256 | RSA_2048 | other), issuer, subject, fingerprintSha256
 *   dnsNamesRefused   [{name, reason, why}]: names the ServiceAccount's alcazar.dev/dns-names asks for
 *                     that the DNS name policy leaves out (reason Invalid | Reserved | OutsideNamespace);
 *                     also a DNSNameRefused warning. A certificate that carries a name the policy does
 *                     not allow is a DnsNameNotAllowed problem. The reserved names are the defaults
 *                     for --ca-namespace.
 *   notBefore, notAfter   ISO 8601
 *   timeLeft          "89d 23h", or "expired 2d 4h ago"; timeLeftSeconds is negative once expired
 *   expired, notYetValid
 *   chain.secretRoot  cert-chain.pem verified against the Secret's own root-cert.pem
 *   chain.caBundle    … against the CA's current root bundle (verified null: the CA could not be read
 *                     or loaded; source is the CA Secret, e.g. istio-system/istio-ca-secret)
 *   keyMatches        key.pem is the private half of the certificate (null: unreadable)
 *   contentDigest     the alcazar.dev/content-digest annotation: verified (the leaf and key.pem are
 *                     exactly as alcazar wrote them with the CA signing now), mismatch, absent; null
 *                     when the CA could not be loaded. Only mismatch or absent make the controller
 *                     check in full.
 *   renewAt           ISO 8601, when the controller renews it (renewalDueAt); renewalDue when it has passed
 *   controller        what the controller's plan() decides now: {action, reason, message}; null when
 *                     not an istio.<sa> Secret or the CA the controller uses could not be read
 *   problems          [{reason, message}]: what makes the Secret wrong or unusable now (exit status 1)
 *   warnings          [{reason, message}]: what kept a check from running, or is worth knowing
 *   healthy           no problems
 * Certificate fields are null when cert-chain.pem cannot be read.
 */
export interface InspectReport {
  secret: {
    namespace: string;
    name: string;
    type: string;
    managedByAlcazar: boolean;
    owners: { kind: string; name: string; uid: string; controller: boolean }[];
  };
  serviceAccount: string | null;
  trustDomain: string;
  configSource: 'CertificateAuthority default' | 'built-in defaults';
  spiffeId: string | null;
  expectedSpiffeId: string | null;
  spiffeIdMatches: boolean | null;
  dnsNames: string[];
  dnsNamesRefused: RefusedDnsName[];
  serial: string | null;
  keyType: string | null;
  issuer: string | null;
  subject: string | null;
  fingerprintSha256: string | null;
  notBefore: string | null;
  notAfter: string | null;
  timeLeft: string | null;
  timeLeftSeconds: number | null;
  expired: boolean | null;
  notYetValid: boolean | null;
  chain: { secretRoot: ChainCheck; caBundle: ChainCheck };
  keyMatches: boolean | null;
  contentDigest: 'verified' | 'mismatch' | 'absent' | null;
  renewAt: string | null;
  renewalDue: boolean | null;
  controller: { action: Decision['action']; reason: string | null; message: string } | null;
  problems: Problem[];
  warnings: Problem[];
  healthy: boolean;
}

/** Everything the report says, decided from what was read; `now` is injected. */
export async function buildInspectReport(
  target: InspectTarget,
  observation: InspectObservation,
  now: Date,
): Promise<InspectReport> {
  const problems: Problem[] = [];
  const warnings: Problem[] = [];
  const { secret } = observation;
  const serviceAccount =
    target.serviceAccount ?? secret.metadata?.annotations?.[SERVICE_ACCOUNT_ANNOTATION] ?? null;

  const { config, configSource } = resolveConfig(observation.certificateAuthority, warnings);
  const ca = await loadAuthority(observation, config, now, warnings);
  const observed = observeSecret(secret);
  checkSecretShape(secret, problems, warnings);
  const leafData = readLeaf(secret, problems);
  const expectedSpiffeId =
    serviceAccount === null ? null : spiffeIdFor(config.trustDomain, target.namespace, serviceAccount);

  if (leafData) checkIdentity(leafData, expectedSpiffeId, problems);
  const validity = leafData && checkValidity(leafData.info, now, problems);
  const chain = {
    secretRoot: checkChainAgainstSecretRoot(secret, leafData, now, problems),
    caBundle: checkChainAgainstCa(ca, leafData, now, problems),
  };
  const keyMatches = checkKey(secret, leafData, problems);
  if (leafData) checkRevocation(observation, leafData.info, problems, warnings);
  const policy: RenewalPolicy = config.workload;
  const renewal =
    observed.certificate &&
    renewalDueAt(observed.certificate, policy, ca.ok ? ca.authority.signer.notAfter.getTime() : undefined);

  const info = leafData?.info;
  const spiffeId = info?.uris.length === 1 ? info.uris[0]! : null;
  const dnsNamesRefused = checkDnsNames(target, observation, config, info, problems, warnings);
  return {
    secret: {
      namespace: target.namespace,
      name: target.secretName,
      type: secret.type ?? '',
      managedByAlcazar: isOwnedSecret(secret),
      owners: (secret.metadata?.ownerReferences ?? []).map((o) => ({
        kind: o.kind,
        name: o.name,
        uid: o.uid,
        controller: o.controller ?? false,
      })),
    },
    serviceAccount,
    trustDomain: config.trustDomain,
    configSource,
    spiffeId,
    expectedSpiffeId,
    spiffeIdMatches: expectedSpiffeId === null || !info ? null : spiffeId === expectedSpiffeId,
    dnsNames: info?.dnsNames ?? [],
    dnsNamesRefused,
    serial: info?.serialNumberHex ?? null,
    keyType: info?.publicKeyAlgorithm ?? null,
    issuer: info?.issuer ?? null,
    subject: info?.subject ?? null,
    fingerprintSha256: info?.fingerprintSha256 ?? null,
    notBefore: info?.notBefore.toISOString() ?? null,
    notAfter: info?.notAfter.toISOString() ?? null,
    timeLeft: validity ? describeTimeLeft(validity.leftMs) : null,
    timeLeftSeconds: validity ? Math.trunc(validity.leftMs / 1000) : null,
    expired: validity?.expired ?? null,
    notYetValid: validity?.notYetValid ?? null,
    chain,
    keyMatches,
    contentDigest: checkContentDigest(secret, ca),
    renewAt: renewal === undefined ? null : new Date(renewal).toISOString(),
    renewalDue: renewal === undefined ? null : renewal <= now.getTime(),
    controller: controllerView(target, serviceAccount, observation, observed, ca, config, now, warnings),
    problems,
    warnings,
    healthy: problems.length === 0,
  };
}

/** Whether the Secret's content digest verifies under the CA loaded (src/ca/content-digest.ts). */
function checkContentDigest(secret: V1Secret, ca: AuthorityLoad): InspectReport['contentDigest'] {
  const annotation = secret.metadata?.annotations?.[CONTENT_DIGEST_ANNOTATION];
  if (annotation === undefined) return 'absent';
  if (!ca.ok) return null;
  const bytes = (key: string) => Buffer.from(secret.data?.[key] ?? '', 'base64');
  const values = {
    'cert-chain.pem': bytes('cert-chain.pem'),
    'key.pem': bytes('key.pem'),
    'root-cert.pem': bytes('root-cert.pem'),
  };
  return contentDigestMatches(ca.authority, values, annotation) ? 'verified' : 'mismatch';
}

function resolveConfig(
  read: Read<{ spec?: unknown }>,
  warnings: Problem[],
): { config: CaConfig; configSource: InspectReport['configSource'] } {
  const ref = `CertificateAuthority ${CERTIFICATE_AUTHORITY_NAME}`;
  if (!read.ok) {
    warnings.push({
      reason: 'CertificateAuthorityUnreadable',
      message: `cannot read ${ref}: ${read.error}; assuming the built-in defaults`,
    });
    return { config: defaultCaConfig(), configSource: 'built-in defaults' };
  }
  if (read.value === undefined) return { config: defaultCaConfig(), configSource: 'built-in defaults' };
  const parsed = parseCertificateAuthoritySpec(read.value.spec);
  if (!parsed.ok) {
    warnings.push({
      reason: 'CertificateAuthorityInvalid',
      message: `${ref} is invalid (${parsed.message}); assuming the built-in defaults`,
    });
    return { config: defaultCaConfig(), configSource: 'built-in defaults' };
  }
  return { config: parsed.config, configSource: ref };
}

/**
 * The authority loaded: from the Secret the configured mode reads, or failing that the other one.
 * `asController`: the controller holds the same authority (or fails to load it the same way), so
 * its decisions can be predicted.
 */
export type AuthorityLoad = { asController: boolean } & (
  | { ok: true; authority: SigningAuthority }
  | { ok: false; source: string | null; message: string }
);

async function loadAuthority(
  observation: InspectObservation,
  config: CaConfig,
  now: Date,
  warnings: Problem[],
): Promise<AuthorityLoad> {
  const ns = observation.caNamespace;
  const order: CaSecretName[] =
    config.root.mode === 'SelfSigned'
      ? [SELF_SIGNED_SECRET, PLUGGED_IN_SECRET]
      : [PLUGGED_IN_SECRET, SELF_SIGNED_SECRET];
  const name = order.find((candidate) => {
    const read = observation.caSecrets[candidate];
    return !read.ok || read.value !== undefined;
  });
  const unavailable = (source: string | null, message: string, asController = false): AuthorityLoad => {
    warnings.push({ reason: 'CaBundleUnavailable', message: `${message}; the CA bundle was not checked` });
    return { ok: false, source, message, asController };
  };
  if (name === undefined) {
    return unavailable(null, `neither ${ns}/${SELF_SIGNED_SECRET} nor ${ns}/${PLUGGED_IN_SECRET} exists`);
  }
  const source = `${ns}/${name}`;
  const read = observation.caSecrets[name];
  if (!read.ok) return unavailable(source, `cannot read ${source}: ${read.error}`);
  const asController = name === order[0];
  if (!asController) {
    warnings.push({
      reason: 'CaSecretNotForMode',
      message: `rootCA.mode is ${config.root.mode} but only ${source} exists; checked against it`,
    });
  }
  const data = Object.fromEntries(
    Object.entries(read.value!.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')]),
  );
  // The same margin the authority controller loads with, so "not ready" means the same here.
  const options: LoadOptions = { now, minRemainingMs: minSignerRemainingMs(config) };
  try {
    const load = name === SELF_SIGNED_SECRET ? loadSelfSigned : loadPluggedIn;
    return { ok: true, authority: await load(data, source, options), asController };
  } catch (err) {
    if (err instanceof CaLoadError) {
      return unavailable(source, `the CA cannot be loaded: ${err.message}`, asController);
    }
    throw err;
  }
}

/**
 * What the controller would decide now, from the same views and the same `plan`. Needs the
 * ServiceAccount and its Namespace; without them it says why it cannot tell.
 */
function controllerView(
  target: InspectTarget,
  serviceAccount: string | null,
  observation: InspectObservation,
  observed: ObservedSecret,
  ca: AuthorityLoad,
  config: CaConfig,
  now: Date,
  warnings: Problem[],
): InspectReport['controller'] {
  const cannotTell = (why: string) => {
    warnings.push({
      reason: 'ControllerViewUnavailable',
      message: `cannot tell what the controller will do: ${why}`,
    });
    return null;
  };
  const saRead = observation.serviceAccount;
  // Only istio.<sa> Secrets are the controller's to decide about; and only with the CA it would
  // use can its decision be predicted (the CA warnings already say why not).
  const isWorkloadSecret =
    serviceAccount !== null && target.secretName === workloadSecretName(serviceAccount);
  if (!isWorkloadSecret || !saRead || !ca.asController) return null;
  if (!saRead.ok) return cannotTell(`cannot read ServiceAccount ${serviceAccount}: ${saRead.error}`);
  if (!observation.namespace.ok) {
    return cannotTell(`cannot read Namespace ${target.namespace}: ${observation.namespace.error}`);
  }
  if (observed.certificate && ca.ok) {
    observed.certificate.signedBy = signedByAuthority(observed, ca.authority)
      ? ca.authority.signer.fingerprintSha256
      : undefined;
  }
  const sa = saRead.value;
  const ns = observation.namespace.value;
  const decision = plan({
    namespace: target.namespace,
    serviceAccount,
    ...(sa && { sa: observeServiceAccount(sa) }),
    ...(ns && { ns: observeNamespace(ns) }),
    secret: observed,
    ca: ca.ok ? caViewOf(ca.authority) : { ready: false, notReadyReason: ca.message },
    policy: workloadPolicy(
      config,
      observation.reservedDnsNames ?? defaultReservedDnsNames(observation.caNamespace),
    ),
    targeting: config.namespaces,
    caNamespace: observation.caNamespace,
    now: now.getTime(),
  });
  return {
    action: decision.action,
    reason: decision.action === 'none' ? null : decision.reason,
    message: describeDecision(decision),
  };
}

const DECISION_TEXT: Record<Decision['action'], string> = {
  none: 'nothing to do',
  create: 'create the Secret',
  reissue: 'issue a new key and certificate',
  refreshBundle: 'rewrite root-cert.pem and the chain',
  recreate: 'delete and re-create the Secret',
  delete: 'delete the Secret',
  report: 'leave it and report',
};

export function describeDecision(decision: Decision): string {
  const text = DECISION_TEXT[decision.action];
  if (decision.action === 'none') return text;
  if (decision.action === 'report') return `${text} ${decision.reason}: ${decision.message}`;
  if (decision.action === 'reissue' && decision.message)
    return `${text} (${decision.reason}: ${decision.message})`;
  return `${text} (${decision.reason})`;
}
