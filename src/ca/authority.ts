// The signing authority: the CA certificate and key alcazar signs workload
// certificates with, the chain that goes after each leaf, and the root
// bundle workloads trust. Loaded from the CA Secrets and validated by issuing
// and verifying a probe leaf, so a loaded authority is known to work.
import { createHash, type KeyObject } from 'node:crypto';
import type { CaConfig } from '../config/ca-spec.js';
import {
  type CertificateInfo,
  decodeCertificatesPem,
  encodeCertificatesPem,
  generateKeyPair,
  inspectCertificate,
  issueLeafCertificate,
  KeyError,
  keyMatchesCertificate,
  parsePrivateKeyPem,
  signatureAlgorithmFor,
  verifyChain,
} from '../pki/index.js';

export type CaMode = 'SelfSigned' | 'PluggedIn';

export { PLUGGED_IN_SECRET, SELF_SIGNED_SECRET, SELF_SIGNED_SECRET_TYPE } from '../model/names.js';

export interface SigningAuthority {
  mode: CaMode;
  /** Where it was loaded from, e.g. istio-system/istio-ca-secret. */
  source: string;
  signerCertificateDer: Buffer;
  signerKey: KeyObject;
  signer: CertificateInfo;
  /** PEM that follows the leaf in cert-chain.pem (empty when a root signs directly). */
  chainPem: string;
  /** root-cert.pem for workloads. */
  rootBundlePem: string;
  roots: CertificateInfo[];
  /** The root the signer chains to (the others in the bundle are trusted but not signing). */
  activeRootFingerprint: string;
  /** Identifies signer + chain + bundle: any change means workloads need attention. */
  generation: string;
  rootBundleHash: string;
  chainHash: string;
}

/** Why an authority cannot be loaded. `reason` is machine-readable, `message` says what to fix. */
export class CaLoadError extends Error {
  override name = 'CaLoadError';
  constructor(
    readonly reason: string,
    message: string,
    /** When the same Secret may load after all (a signer not valid yet): look again then. */
    readonly retryAt?: number,
  ) {
    super(message);
  }
}

export const sha256Hex = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

function requireKey(data: Record<string, Buffer>, key: string, source: string): Buffer {
  const value = data[key];
  if (!value || value.length === 0) throw new CaLoadError('MissingKey', `${source} has no ${key}`);
  return value;
}

function certificatesFrom(pem: Buffer, what: string, source: string): Buffer[] {
  try {
    const ders = decodeCertificatesPem(pem);
    if (ders.length === 0) throw new Error('no CERTIFICATE block');
    return ders;
  } catch (err) {
    throw new CaLoadError(
      'Unparsable',
      `${source}: ${what} is not a PEM certificate: ${(err as Error).message}`,
    );
  }
}

function inspect(der: Buffer, what: string, source: string): CertificateInfo {
  try {
    return inspectCertificate(der);
  } catch (err) {
    throw new CaLoadError('Unparsable', `${source}: ${what} cannot be parsed: ${(err as Error).message}`);
  }
}

function privateKeyFrom(pem: Buffer, source: string): KeyObject {
  try {
    return parsePrivateKeyPem(pem);
  } catch (err) {
    throw new CaLoadError(
      'Unparsable',
      `${source}: ca-key.pem is not a usable private key: ${(err as Error).message}`,
    );
  }
}

export interface LoadOptions {
  now: Date;
  /** A plugged-in signer must stay valid at least this long, or it cannot issue useful leaves. */
  minRemainingMs: number;
}

/** How long a plugged-in signer must still be valid to load: a leaf's grace period, at least a minute. */
export function minSignerRemainingMs(config: Pick<CaConfig, 'workload'>): number {
  return Math.max(config.workload.minGracePeriodMs, 60_000);
}

/**
 * The last instant (ms) at which a signer still loads. A plugged-in signer must leave
 * `minRemainingMs`, or it could only issue leaves too short to be useful (only the operator can
 * replace it). A self-signed root always loads, close to its end and past it: its rotation runs on
 * the loaded authority, and refusing it deadlocked the rotation that replaces it, for good once it
 * had ended (a cluster stopped past its root's end). Nothing is issued under an ended signer
 * (SignerExpired in the status, the CSR API and the workload plan).
 */
export function signerUsableUntil(mode: CaMode, signerNotAfter: Date, minRemainingMs: number): number {
  return mode === 'PluggedIn' ? signerNotAfter.getTime() - minRemainingMs : Number.POSITIVE_INFINITY;
}

/**
 * Checks that the signer can really issue: it is a CA allowed to sign, its
 * key matches, it is valid for long enough, and a leaf it signs verifies
 * through the chain to the root bundle.
 */
async function assemble(
  mode: CaMode,
  source: string,
  signerDer: Buffer,
  signerKey: KeyObject,
  chainAfterLeaf: Buffer[],
  rootDers: Buffer[],
  opts: LoadOptions,
): Promise<SigningAuthority> {
  const signer = inspect(signerDer, 'ca-cert.pem', source);
  if (!signer.isCA)
    throw new CaLoadError('NotACA', `${source}: ca-cert.pem is not a CA certificate (CA:FALSE)`);
  if (!signer.keyUsage.includes('keyCertSign')) {
    throw new CaLoadError('CannotSign', `${source}: ca-cert.pem lacks the keyCertSign key usage`);
  }
  try {
    signatureAlgorithmFor(signerKey);
  } catch (err) {
    // Checked before the key match: an Ed25519 key, say, is not "another CA's key".
    if (err instanceof KeyError)
      throw new CaLoadError('UnsupportedKey', `${source}: ca-key.pem: ${err.message}`);
    throw err;
  }
  if (!keyMatchesCertificate(signerKey, signerDer)) {
    throw new CaLoadError('KeyMismatch', `${source}: ca-key.pem does not match ca-cert.pem`);
  }
  if (signer.notBefore.getTime() > opts.now.getTime()) {
    // Clock skew, or a CA minted a moment ago: it loads once its time comes.
    throw new CaLoadError(
      'SignerNotYetValid',
      `${source}: the signing certificate is not valid before ${signer.notBefore.toISOString()}; looked at again then`,
      signer.notBefore.getTime(),
    );
  }
  if (opts.now.getTime() > signerUsableUntil(mode, signer.notAfter, opts.minRemainingMs)) {
    const expired = signer.notAfter.getTime() <= opts.now.getTime();
    throw new CaLoadError(
      'SignerExpiring',
      `${source}: the signing certificate ${expired ? 'has expired' : 'expires too soon'} ` +
        `(notAfter ${signer.notAfter.toISOString()})`,
    );
  }
  const roots = rootDers.map((der, i) => inspect(der, `root certificate #${i + 1}`, source));

  // The probe is signed and checked at a moment the signer is valid (a self-signed root past its
  // end is checked in its last second): it proves the key and the chain, not the time.
  const probeAt = new Date(Math.min(opts.now.getTime(), signer.notAfter.getTime() - 1_000));
  const probeKey = await generateKeyPair('ECDSA_P256');
  const probe = await issueLeafCertificate({
    publicKey: probeKey.publicKey,
    spiffeId: 'spiffe://alcazar.probe/ns/probe/sa/probe',
    notBefore: probeAt,
    notAfter: new Date(Math.min(probeAt.getTime() + 60_000, signer.notAfter.getTime())),
    issuer: { certificate: signerDer, privateKey: signerKey },
  });
  const verification = verifyChain({
    leaf: probe.der,
    intermediates: [signerDer, ...chainAfterLeaf],
    roots: rootDers,
    at: probeAt,
  });
  if (!verification.ok) {
    throw new CaLoadError(
      'ChainInvalid',
      `${source}: a certificate signed by ca-cert.pem does not verify against root-cert.pem: ${verification.message}`,
    );
  }

  const active = rootDers.findIndex(
    (root) =>
      verifyChain({
        leaf: probe.der,
        intermediates: [signerDer, ...chainAfterLeaf],
        roots: [root],
        at: probeAt,
      }).ok,
  );
  const chainPem = chainAfterLeaf.length > 0 ? encodeCertificatesPem(chainAfterLeaf) : '';
  const rootBundlePem = encodeCertificatesPem(rootDers);
  const rootBundleHash = sha256Hex(rootBundlePem);
  const chainHash = sha256Hex(chainPem);
  return {
    mode,
    source,
    signerCertificateDer: signerDer,
    signerKey,
    signer,
    chainPem,
    rootBundlePem,
    roots,
    activeRootFingerprint: roots[Math.max(active, 0)]!.fingerprintSha256,
    rootBundleHash,
    chainHash,
    generation: sha256Hex(`${signer.fingerprintSha256}|${chainHash}|${rootBundleHash}`).slice(0, 16),
  };
}

/** Self-signed mode: istio-ca-secret with ca-cert.pem (the root) and ca-key.pem. */
export async function loadSelfSigned(
  data: Record<string, Buffer>,
  source: string,
  opts: LoadOptions,
): Promise<SigningAuthority> {
  const certs = certificatesFrom(requireKey(data, 'ca-cert.pem', source), 'ca-cert.pem', source);
  const key = privateKeyFrom(requireKey(data, 'ca-key.pem', source), source);
  const signer = certs[0]!;
  // During a root rotation root-cert.pem holds the whole bundle, in a stable order
  // (old root first), so activating the new root does not change the bundle's bytes.
  const bundle = data['root-cert.pem']?.length
    ? certificatesFrom(data['root-cert.pem'], 'root-cert.pem', source)
    : [];
  const roots = bundle.some((der) => der.equals(signer)) ? bundle : [...bundle, signer];
  return assemble('SelfSigned', source, signer, key, [], roots, opts);
}

/**
 * Plugged-in mode: cacerts with ca-cert.pem (the signing CA, often an
 * intermediate), ca-key.pem, root-cert.pem and cert-chain.pem (the signer's
 * chain up to the root). Workload cert-chain.pem = leaf + signer + the rest of
 * the chain, without the root.
 */
export async function loadPluggedIn(
  data: Record<string, Buffer>,
  source: string,
  opts: LoadOptions,
): Promise<SigningAuthority> {
  const [signer] = certificatesFrom(requireKey(data, 'ca-cert.pem', source), 'ca-cert.pem', source);
  const key = privateKeyFrom(requireKey(data, 'ca-key.pem', source), source);
  const roots = certificatesFrom(requireKey(data, 'root-cert.pem', source), 'root-cert.pem', source);
  const given = data['cert-chain.pem']?.length
    ? certificatesFrom(data['cert-chain.pem'], 'cert-chain.pem', source)
    : [signer!];
  const isRoot = (der: Buffer) => roots.some((root) => root.equals(der));
  // The signer goes first, once: a cert-chain.pem that lists it further down (out of order) gave
  // workloads leaf, signer, …, signer. The rest is shipped in the order given, as istiod does.
  const chain = [signer!, ...given.filter((der) => !der.equals(signer!))];
  // Roots are trusted, not sent: a signer that is itself a root needs no chain after the leaf.
  const afterLeaf = chain.filter((der) => !isRoot(der));
  return assemble('PluggedIn', source, signer!, key, afterLeaf, roots, opts);
}
