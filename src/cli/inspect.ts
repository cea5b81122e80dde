// `alcazar inspect`: one workload Secret as the controller sees it (identity, validity, chains of
// trust, key/certificate match, when it renews) from GETs only. Reading the API (gatherObservation),
// judging (buildInspectReport) and printing (formatInspectText) are apart, so the last two are
// tested without a cluster. Key material is read, never printed: the report says whether the key
// matches, and nothing else about it.
import { parseArgs } from 'node:util';
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Namespace,
  type V1Secret,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import {
  CaLoadError,
  type LoadOptions,
  loadPluggedIn,
  loadSelfSigned,
  PLUGGED_IN_SECRET,
  SELF_SIGNED_SECRET,
  type SigningAuthority,
} from '../ca/authority.js';
import { CERTIFICATE_AUTHORITY_NAME, certificateAuthorityResource } from '../config/ca-resource.js';
import { type CaConfig, defaultCaConfig, parseCertificateAuthoritySpec } from '../config/ca-spec.js';
import {
  isOwnedSecret,
  type ObservedSecret,
  observeNamespace,
  observeSecret,
  observeServiceAccount,
  SERVICE_ACCOUNT_ANNOTATION,
  signedByAuthority,
} from '../controllers/workload-secrets/observe.js';
import {
  type Decision,
  plan,
  serviceAccountOfSecret,
  spiffeIdFor,
  WORKLOAD_SECRET_TYPE,
  workloadSecretName,
} from '../controllers/workload-secrets/plan.js';
import { type RenewalPolicy, renewAt } from '../controllers/workload-secrets/renewal.js';
import { describeApiError, isNotFound, loadKubeConfig } from '../kube/client.js';
import {
  type CertificateInfo,
  type ChainVerification,
  decodeCertificatesPem,
  inspectCertificate,
  keyMatchesCertificate,
  type Problem,
  parsePrivateKeyPem,
  validateWorkloadLeaf,
  verifyChain,
} from '../pki/index.js';

export const INSPECT_USAGE = `usage: alcazar inspect <namespace>/<serviceaccount> [flags]
       alcazar inspect --secret <namespace>/<secret-name> [flags]

Reports on a workload Secret (istio.<serviceaccount>, or the one named): its SPIFFE ID, validity,
chain of trust, whether key and certificate match, and when alcazar renews it. Read-only.

flags:
  --secret NS/NAME      inspect this Secret instead of istio.<serviceaccount>
  -o, --output FORMAT   text (default) or json
  --kubeconfig PATH     kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --ca-namespace NAME   namespace of the CA Secrets (default: istio-system)
  -h, --help            show this help

exit status: 0 healthy, 1 problems found, 2 usage error, 3 Secret not found,
             4 the Secret could not be read (API unreachable, forbidden)`;

export const EXIT = { healthy: 0, problems: 1, usage: 2, notFound: 3, unreadable: 4 } as const;

// ---------------------------------------------------------------------------------------------
// Arguments

export interface InspectTarget {
  namespace: string;
  secretName: string;
  /** Whose identity the Secret should carry; undefined when the Secret's name does not say. */
  serviceAccount?: string;
}

export interface InspectArgs {
  target: InspectTarget;
  output: 'text' | 'json';
  kubeconfig?: string;
  caNamespace: string;
}

export class InspectUsageError extends Error {
  override name = 'InspectUsageError';
}

const NAMESPACED_NAME = /^([a-z0-9][-a-z0-9.]*)\/([^/\s]+)$/;

function splitNamespacedName(text: string, what: string): [string, string] {
  const match = NAMESPACED_NAME.exec(text);
  if (!match) throw new InspectUsageError(`expected <namespace>/<${what}>, got "${text}"`);
  return [match[1]!, match[2]!];
}

/** `undefined` when --help was asked for. Throws InspectUsageError on anything it cannot use. */
export function parseInspectArgs(argv: string[]): InspectArgs | undefined {
  let parsed: ReturnType<typeof parseInspectFlags>;
  try {
    parsed = parseInspectFlags(argv);
  } catch (err) {
    throw new InspectUsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return undefined;
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') {
    throw new InspectUsageError(`-o must be text or json, got "${output}"`);
  }
  const caNamespace = values['ca-namespace'] ?? 'istio-system';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(caNamespace)) {
    throw new InspectUsageError(`--ca-namespace must be a namespace name, got "${caNamespace}"`);
  }
  const common = {
    output,
    caNamespace,
    ...(values.kubeconfig && { kubeconfig: values.kubeconfig }),
  } as const;

  if (values.secret !== undefined) {
    if (positionals.length > 0) {
      throw new InspectUsageError('give either <namespace>/<serviceaccount> or --secret, not both');
    }
    const [namespace, secretName] = splitNamespacedName(values.secret, 'secret-name');
    const serviceAccount = serviceAccountOfSecret(secretName);
    return { ...common, target: { namespace, secretName, ...(serviceAccount && { serviceAccount }) } };
  }
  if (positionals.length !== 1) {
    throw new InspectUsageError(
      positionals.length === 0
        ? 'which workload? give <namespace>/<serviceaccount> or --secret <namespace>/<secret-name>'
        : `expected one <namespace>/<serviceaccount>, got ${positionals.length} arguments`,
    );
  }
  const [namespace, serviceAccount] = splitNamespacedName(positionals[0]!, 'serviceaccount');
  return {
    ...common,
    target: { namespace, serviceAccount, secretName: workloadSecretName(serviceAccount) },
  };
}

function parseInspectFlags(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      secret: { type: 'string' },
      output: { type: 'string', short: 'o' },
      kubeconfig: { type: 'string' },
      'ca-namespace': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Reading the API (GETs only)

/** One GET: the object, `undefined` when it does not exist, or why it could not be read. */
export type Read<T> = { ok: true; value: T | undefined } | { ok: false; error: string };

async function read<T>(call: () => Promise<T>): Promise<Read<T>> {
  try {
    return { ok: true, value: await call() };
  } catch (err) {
    if (isNotFound(err)) return { ok: true, value: undefined };
    return { ok: false, error: describeApiError(err) };
  }
}

export type CaSecretName = typeof SELF_SIGNED_SECRET | typeof PLUGGED_IN_SECRET;

/** Everything the report is built from, as read from the API. Holds key material: never print it. */
export interface InspectObservation {
  secret: V1Secret;
  caNamespace: string;
  certificateAuthority: Read<{ spec?: unknown }>;
  caSecrets: Record<CaSecretName, Read<V1Secret>>;
  /** Read only when the Secret belongs to a ServiceAccount. */
  serviceAccount?: Read<V1ServiceAccount>;
  namespace: Read<V1Namespace>;
}

export type GatherResult =
  | { status: 'found'; observation: InspectObservation }
  | { status: 'notFound'; message: string }
  | { status: 'unreadable'; message: string };

export async function gatherObservation(
  kubeConfig: KubeConfig,
  target: InspectTarget,
  caNamespace: string,
): Promise<GatherResult> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
  const { namespace, secretName, serviceAccount } = target;
  const secretRef = `Secret ${namespace}/${secretName}`;
  const readSa = () =>
    serviceAccount === undefined
      ? undefined
      : read(() => core.readNamespacedServiceAccount({ namespace, name: serviceAccount }));

  const secret = await read(() => core.readNamespacedSecret({ namespace, name: secretName }));
  if (!secret.ok) return { status: 'unreadable', message: `cannot read ${secretRef}: ${secret.error}` };
  if (!secret.value)
    return { status: 'notFound', message: await notFoundMessage(secretRef, target, readSa()) };

  const [certificateAuthority, selfSigned, pluggedIn, sa, ns] = await Promise.all([
    read(
      () =>
        customObjects.getClusterCustomObject({
          group: certificateAuthorityResource.group,
          version: certificateAuthorityResource.version,
          plural: certificateAuthorityResource.plural,
          name: CERTIFICATE_AUTHORITY_NAME,
        }) as Promise<{ spec?: unknown }>,
    ),
    read(() => core.readNamespacedSecret({ namespace: caNamespace, name: SELF_SIGNED_SECRET })),
    read(() => core.readNamespacedSecret({ namespace: caNamespace, name: PLUGGED_IN_SECRET })),
    readSa(),
    read(() => core.readNamespace({ name: namespace })),
  ]);
  return {
    status: 'found',
    observation: {
      secret: secret.value,
      caNamespace,
      certificateAuthority,
      caSecrets: { [SELF_SIGNED_SECRET]: selfSigned, [PLUGGED_IN_SECRET]: pluggedIn },
      ...(sa && { serviceAccount: sa }),
      namespace: ns,
    },
  };
}

/** "Secret shop/istio.cart not found", with a hint about the ServiceAccount when there is one. */
async function notFoundMessage(
  secretRef: string,
  target: InspectTarget,
  sa: Promise<Read<V1ServiceAccount>> | undefined,
): Promise<string> {
  const message = `${secretRef} not found`;
  const saRead = await sa;
  if (!saRead?.ok) return message;
  const saRef = `ServiceAccount ${target.namespace}/${target.serviceAccount}`;
  return saRead.value
    ? `${message} (${saRef} exists: is the controller running, and is namespace ${target.namespace} managed?)`
    : `${message} (${saRef} does not exist either)`;
}

// ---------------------------------------------------------------------------------------------
// The report

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
 *   notBefore, notAfter   ISO 8601
 *   timeLeft          "89d 23h", or "expired 2d 4h ago"; timeLeftSeconds is negative once expired
 *   expired, notYetValid
 *   chain.secretRoot  cert-chain.pem verified against the Secret's own root-cert.pem
 *   chain.caBundle    … against the CA's current root bundle (verified null: the CA could not be read
 *                     or loaded; source is the CA Secret, e.g. istio-system/istio-ca-secret)
 *   keyMatches        key.pem is the private half of the certificate (null: unreadable)
 *   renewAt           ISO 8601, by the controller's own renewAt; renewalDue when it has passed
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
  renewAt: string | null;
  renewalDue: boolean | null;
  controller: { action: Decision['action']; reason: string | null; message: string } | null;
  problems: Problem[];
  warnings: Problem[];
  healthy: boolean;
}

interface LeafData {
  leaf: Buffer;
  intermediates: Buffer[];
  info: CertificateInfo;
}

function dataOf(secret: V1Secret, key: string): Buffer | undefined {
  const value = secret.data?.[key];
  return value ? Buffer.from(value, 'base64') : undefined;
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
  const policy: RenewalPolicy = config.workload;
  const renewal = observed.certificate && renewAt(observed.certificate, policy);

  const info = leafData?.info;
  const spiffeId = info?.uris.length === 1 ? info.uris[0]! : null;
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
    renewAt: renewal === undefined ? null : new Date(renewal).toISOString(),
    renewalDue: renewal === undefined ? null : renewal <= now.getTime(),
    controller: controllerView(target, serviceAccount, observation, observed, ca, config, now, warnings),
    problems,
    warnings,
    healthy: problems.length === 0,
  };
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
type AuthorityLoad = { asController: boolean } & (
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
  const options: LoadOptions = { now, minRemainingMs: Math.max(config.workload.minGracePeriodMs, 60_000) };
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

function checkSecretShape(secret: V1Secret, problems: Problem[], warnings: Problem[]): void {
  if (secret.type !== WORKLOAD_SECRET_TYPE) {
    problems.push({
      reason: 'WrongType',
      message: `the Secret has type "${secret.type ?? ''}", expected "${WORKLOAD_SECRET_TYPE}"`,
    });
  }
  for (const key of ['cert-chain.pem', 'key.pem', 'root-cert.pem']) {
    if (!secret.data?.[key]) problems.push({ reason: 'InvalidData', message: `the Secret has no ${key}` });
  }
  if (!isOwnedSecret(secret)) {
    warnings.push({
      reason: 'NotManagedByAlcazar',
      message: 'the Secret lacks the label app.kubernetes.io/managed-by=alcazar: alcazar leaves it alone',
    });
  }
}

function readLeaf(secret: V1Secret, problems: Problem[]): LeafData | undefined {
  const pem = dataOf(secret, 'cert-chain.pem');
  if (!pem) return undefined;
  try {
    const [leaf, ...intermediates] = decodeCertificatesPem(pem);
    if (!leaf) throw new Error('it holds no certificate');
    return { leaf, intermediates, info: inspectCertificate(leaf) };
  } catch (err) {
    problems.push({
      reason: 'InvalidData',
      message: `cert-chain.pem cannot be read: ${(err as Error).message}`,
    });
    return undefined;
  }
}

function checkIdentity(leafData: LeafData, expected: string | null, problems: Problem[]): void {
  // With no expected identity (a Secret whose name names no ServiceAccount) only the profile is checked.
  const found = validateWorkloadLeaf(leafData.leaf, expected ?? '');
  problems.push(...found.filter((p) => expected !== null || p.reason !== 'SpiffeIdMismatch'));
}

function checkValidity(info: CertificateInfo, now: Date, problems: Problem[]) {
  const leftMs = info.notAfter.getTime() - now.getTime();
  // As the controller's plan has it: a certificate is expired from its notAfter on.
  const expired = leftMs <= 0;
  const notYetValid = info.notBefore.getTime() > now.getTime();
  if (expired) {
    problems.push({
      reason: 'Expired',
      message: `the certificate expired at ${info.notAfter.toISOString()} (${describeTimeLeft(leftMs)})`,
    });
  }
  if (notYetValid) {
    problems.push({
      reason: 'NotYetValid',
      message: `the certificate is not valid before ${info.notBefore.toISOString()} (in ${formatDurationShort(info.notBefore.getTime() - now.getTime())})`,
    });
  }
  return { leftMs, expired, notYetValid };
}

function chainCheck(verification: ChainVerification, source: string): ChainCheck {
  return verification.ok
    ? { verified: true, source }
    : { verified: false, source, message: `${verification.reason}: ${verification.message}` };
}

function checkChainAgainstSecretRoot(
  secret: V1Secret,
  leafData: LeafData | undefined,
  now: Date,
  problems: Problem[],
): ChainCheck {
  const source = 'root-cert.pem';
  const roots = dataOf(secret, 'root-cert.pem');
  if (!leafData || !roots) {
    return {
      verified: null,
      source,
      message: `no ${leafData ? 'root-cert.pem' : 'readable cert-chain.pem'}`,
    };
  }
  const check = chainCheck(
    verifyChain({
      leaf: leafData.leaf,
      intermediates: leafData.intermediates,
      roots: roots.toString('utf8'),
      at: now,
    }),
    source,
  );
  if (!check.verified) {
    problems.push({
      reason: 'ChainUntrustedBySecretRoot',
      message: `cert-chain.pem does not verify against the Secret's root-cert.pem: ${check.message}`,
    });
  }
  return check;
}

function checkChainAgainstCa(
  ca: AuthorityLoad,
  leafData: LeafData | undefined,
  now: Date,
  problems: Problem[],
): ChainCheck {
  if (!ca.ok) return { verified: null, source: ca.source, message: ca.message };
  const source = ca.authority.source;
  if (!leafData) return { verified: null, source, message: 'no readable cert-chain.pem' };
  const check = chainCheck(
    verifyChain({
      leaf: leafData.leaf,
      intermediates: leafData.intermediates,
      roots: ca.authority.rootBundlePem,
      at: now,
    }),
    source,
  );
  if (!check.verified) {
    problems.push({
      reason: 'ChainUntrustedByCa',
      message: `cert-chain.pem does not verify against the current CA bundle (${source}): ${check.message}`,
    });
  }
  return check;
}

function checkKey(secret: V1Secret, leafData: LeafData | undefined, problems: Problem[]): boolean | null {
  const pem = dataOf(secret, 'key.pem');
  if (!pem || !leafData) return null;
  let matches: boolean;
  try {
    matches = keyMatchesCertificate(parsePrivateKeyPem(pem), leafData.leaf);
  } catch (err) {
    // parsePrivateKeyPem's messages never quote key material.
    problems.push({ reason: 'InvalidData', message: `key.pem cannot be read: ${(err as Error).message}` });
    return null;
  }
  if (!matches) {
    problems.push({
      reason: 'KeyMismatch',
      message: 'key.pem does not match the certificate in cert-chain.pem',
    });
  }
  return matches;
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
    ca: ca.ok
      ? {
          ready: true,
          signerFingerprint: ca.authority.signer.fingerprintSha256,
          rootBundleHash: ca.authority.rootBundleHash,
          chainHash: ca.authority.chainHash,
        }
      : { ready: false, notReadyReason: ca.message },
    policy: {
      trustDomain: config.trustDomain,
      keyAlgorithm: config.workload.keyAlgorithm,
      gracePeriodRatio: config.workload.gracePeriodRatio,
      minGracePeriodMs: config.workload.minGracePeriodMs,
    },
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
  return `${text} (${decision.reason})`;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const UNITS: ReadonlyArray<readonly [string, number]> = [
  ['d', DAY],
  ['h', HOUR],
  ['m', MINUTE],
  ['s', SECOND],
];

/**
 * The two largest units of a duration, truncated: "89d 23h", "3h 0m", "45s". Sub-second
 * durations read "0s". Negative durations are formatted by magnitude with a leading "-".
 */
export function formatDurationShort(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  const magnitude = Math.abs(ms);
  const first = UNITS.findIndex(([, size]) => magnitude >= size);
  if (first === -1) return '0s';
  const [unit, size] = UNITS[first]!;
  const next = UNITS[first + 1];
  const head = `${sign}${Math.floor(magnitude / size)}${unit}`;
  return next ? `${head} ${Math.floor((magnitude % size) / next[1])}${next[0]}` : head;
}

/** "89d 23h" while valid, "expired 2d 4h ago" after. */
export function describeTimeLeft(leftMs: number): string {
  return leftMs > 0 ? formatDurationShort(leftMs) : `expired ${formatDurationShort(-leftMs)} ago`;
}

const yesNo = (value: boolean | null, unknown = 'unknown') =>
  value === null ? unknown : value ? 'yes' : 'no';

function describeChain(check: ChainCheck): string {
  if (check.verified === null) return `not checked (${check.message})`;
  return check.verified
    ? `verified against ${check.source}`
    : `FAILED against ${check.source}: ${check.message}`;
}

/** One "- Reason: message" line per problem, indented. */
export function formatProblemList(problems: readonly Problem[], indent = '  '): string {
  return problems.map((p) => `${indent}- ${p.reason}: ${p.message}`).join('\n');
}

/** The human report: an aligned "key: value" block, then problems and warnings as lists. */
export function formatInspectText(report: InspectReport, now: Date): string {
  const { secret } = report;
  const owners = secret.owners.map((o) => `${o.kind}/${o.name}${o.controller ? '' : ' (not controller)'}`);
  const identity =
    report.spiffeId === null
      ? 'none'
      : report.spiffeIdMatches === null
        ? report.spiffeId
        : report.spiffeIdMatches
          ? `${report.spiffeId} (as expected)`
          : `${report.spiffeId} (expected ${report.expectedSpiffeId})`;
  const renewal =
    report.renewAt === null
      ? 'unknown'
      : report.renewalDue
        ? `${report.renewAt} (due now)`
        : `${report.renewAt} (in ${formatDurationShort(Date.parse(report.renewAt) - now.getTime())})`;
  const validity =
    report.timeLeft === null
      ? 'unknown'
      : report.notYetValid
        ? `${report.timeLeft} (not yet valid)`
        : report.timeLeft;
  const rows: [string, string][] = [
    ['Secret', `${secret.namespace}/${secret.name}`],
    ['Type', secret.type || '(none)'],
    ['Managed by alcazar', yesNo(secret.managedByAlcazar)],
    ['Owner', owners.join(', ') || 'none'],
    ['Trust domain', `${report.trustDomain} (from ${report.configSource})`],
    ['SPIFFE ID', identity],
    ['DNS SANs', report.dnsNames.join(', ') || 'none'],
    ['Serial', report.serial ?? 'unknown'],
    ['Key type', report.keyType ?? 'unknown'],
    ['Issuer', report.issuer === null ? 'unknown' : report.issuer || '(empty)'],
    ['Subject', report.subject === null ? 'unknown' : report.subject || '(empty)'],
    ['Not before', report.notBefore ?? 'unknown'],
    ['Not after', report.notAfter ?? 'unknown'],
    ['Time left', validity],
    ['Chain (Secret root)', describeChain(report.chain.secretRoot)],
    ['Chain (CA bundle)', describeChain(report.chain.caBundle)],
    ['Key matches cert', yesNo(report.keyMatches)],
    ['Renews at', renewal],
    ['Controller would', report.controller?.message ?? controllerUnknown(report)],
    ['Problems', report.problems.length === 0 ? 'none' : `${report.problems.length} (below)`],
  ];
  if (report.warnings.length > 0) rows.push(['Warnings', `${report.warnings.length} (below)`]);
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  const lines = rows.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}`);
  const sections = [lines.join('\n')];
  if (report.problems.length > 0) sections.push(`Problems:\n${formatProblemList(report.problems)}`);
  if (report.warnings.length > 0) sections.push(`Warnings:\n${formatProblemList(report.warnings)}`);
  return sections.join('\n\n');
}

function controllerUnknown(report: InspectReport): string {
  const isWorkloadSecret =
    report.serviceAccount !== null && report.secret.name === workloadSecretName(report.serviceAccount);
  return isWorkloadSecret ? 'unknown (see warnings)' : 'not applicable: not an istio.<serviceaccount> Secret';
}

export function exitStatusOf(report: InspectReport): number {
  return report.healthy ? EXIT.healthy : EXIT.problems;
}

// ---------------------------------------------------------------------------------------------
// The command

export interface InspectIo {
  out: (text: string) => void;
  err: (text: string) => void;
  now: () => Date;
}

const processIo: InspectIo = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
  now: () => new Date(),
};

export async function runInspectCommand(argv: string[], io: InspectIo = processIo): Promise<number> {
  let args: InspectArgs | undefined;
  try {
    args = parseInspectArgs(argv);
  } catch (err) {
    if (!(err instanceof InspectUsageError)) throw err;
    io.err(`alcazar inspect: ${err.message}\n\n${INSPECT_USAGE}`);
    return EXIT.usage;
  }
  if (!args) {
    io.out(INSPECT_USAGE);
    return EXIT.healthy;
  }
  let kubeConfig: KubeConfig;
  try {
    kubeConfig = loadKubeConfig(args.kubeconfig);
  } catch (err) {
    io.err(`alcazar inspect: cannot load the kubeconfig: ${(err as Error).message}`);
    return EXIT.usage;
  }
  const gathered = await gatherObservation(kubeConfig, args.target, args.caNamespace);
  if (gathered.status !== 'found') {
    io.err(gathered.message);
    return gathered.status === 'notFound' ? EXIT.notFound : EXIT.unreadable;
  }
  const now = io.now();
  const report = await buildInspectReport(args.target, gathered.observation, now);
  io.out(args.output === 'json' ? JSON.stringify(report, null, 2) : formatInspectText(report, now));
  return exitStatusOf(report);
}
