/** Pure PKI for alcazar: keys, SPIFFE IDs, PEM, certificate templates, inspection and verification. */
export {
  type CertificateIssuer,
  CertificateTemplateError,
  createSelfSignedRoot,
  type EncodedPublicKey,
  type IntermediateCertificateRequest,
  type IssuedCertificate,
  issueIntermediateCertificate,
  issueLeafCertificate,
  type LeafCertificateRequest,
  type RootCertificateRequest,
  randomSerialNumber,
} from './certificate.js';
export { type CertificateInput, CertificateParseError, certificateDerOf } from './certificate-parser.js';
export type { KeyUsageName } from './extensions.js';
export { type CertificateInfo, inspectCertificate } from './inspect.js';
export {
  CURVES,
  DEFAULT_KEY_ALGORITHM,
  KEY_ALGORITHM_NAMES,
  KEY_ALGORITHMS,
} from './key-algorithms.js';
export {
  generateKeyPair,
  type KeyAlgorithm,
  KeyError,
  type KeyPair,
  keyAlgorithmOf,
  parsePrivateKeyPem,
  privateKeyToPem,
  publicKeyOf,
  type SignatureAlgorithm,
  signatureAlgorithmFor,
} from './keys.js';
export {
  decodeCertificatesPem,
  decodePem,
  encodeCertificatesPem,
  encodePem,
  type PemBlock,
  PemError,
} from './pem.js';
export type { Problem } from './problem.js';
export {
  formatSpiffeId,
  parseSpiffeId,
  parseWorkloadSpiffeId,
  type SpiffeId,
  SpiffeIdError,
  validatePathSegment,
  validateTrustDomain,
  type WorkloadSpiffeId,
} from './spiffe.js';
export {
  type CertificateBundleInput,
  type ChainProblemReason,
  type ChainVerification,
  type ChainVerificationRequest,
  keyMatchesCertificate,
  validateWorkloadLeaf,
  verifyChain,
  type WorkloadLeafProblemReason,
} from './verify.js';
