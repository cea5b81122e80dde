/**
 * What the CSR API decides, as plain functions: who may have which certificate, for how long.
 * The policy is istio-csr's strict one rather than istiod's lenient one: istiod ignores the names
 * in a request and writes the caller's identity; alcazar refuses a request that asks for anything
 * but exactly the caller's SPIFFE ID, so a confused or compromised client is told, not silently
 * "fixed".
 */
import type { RequestedNames } from '../pki/csr.js';

/** gRPC status codes alcazar answers with (numbers as in grpc's status.proto). */
export const GrpcCode = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCodeName = keyof typeof GrpcCode;

/** A refused call: the status code, a short reason (metrics, logs) and a message for the caller. */
export class Refusal extends Error {
  override name = 'Refusal';
  constructor(
    readonly code: GrpcCodeName,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** An authenticated caller: the ServiceAccount it proved to be. */
export interface Caller {
  namespace: string;
  serviceAccount: string;
  /** How it proved it. */
  via: 'token' | 'certificate';
  /** The serial of the client certificate it proved it with (lowercase hex, as inspected). */
  certificateSerialHex?: string;
}

export const workloadSpiffeId = (trustDomain: string, caller: Pick<Caller, 'namespace' | 'serviceAccount'>) =>
  `spiffe://${trustDomain}/ns/${caller.namespace}/sa/${caller.serviceAccount}`;

/**
 * The request must name exactly the caller's SPIFFE ID as its only URI SAN and nothing else: no
 * DNS, IP or email names, no other name kinds, and no subject CN other than the same ID (Go's
 * dual-use requests put the ID there too). Throws a PERMISSION_DENIED Refusal otherwise.
 */
export function authorizeNames(names: RequestedNames, expectedId: string): void {
  const deny = (message: string) => {
    throw new Refusal('PERMISSION_DENIED', 'NamesNotAllowed', message);
  };
  const extra = [
    ...names.dnsNames.map((n) => `DNS:${n}`),
    ...names.ipAddresses.map((n) => `IP:${n}`),
    ...names.emails.map((n) => `email:${n}`),
    ...names.others,
  ];
  if (extra.length > 0) {
    deny(
      `the CSR asks for names other than ${expectedId}: ${extra.slice(0, 5).join(', ')}; only the caller's SPIFFE ID may be requested`,
    );
  }
  if (names.uris.length === 0) {
    deny(`the CSR has no URI SAN; it must ask for exactly ${expectedId}`);
  }
  const others = names.uris.filter((uri) => uri !== expectedId);
  if (others.length > 0 || names.uris.length !== 1) {
    deny(`the CSR asks for ${names.uris.slice(0, 5).join(', ')}; the caller may only have ${expectedId}`);
  }
  const wrongCn = names.commonNames.filter((cn) => cn !== expectedId);
  if (wrongCn.length > 0) {
    deny(`the CSR's subject CN "${wrongCn[0]}" is not the caller's SPIFFE ID ${expectedId}`);
  }
}

export interface ValidityPolicy {
  /** Used when the request asks for 0 or less. */
  defaultMs: number;
  /** A request above this is refused, not shortened (as istiod does). */
  maxMs: number;
}

/** The lifetime to issue for a request's validity_duration (seconds); throws INVALID_ARGUMENT above the maximum. */
export function decideValidityMs(requestedSeconds: number, policy: ValidityPolicy): number {
  if (!(requestedSeconds > 0)) return policy.defaultMs;
  const requestedMs = requestedSeconds * 1000;
  if (requestedMs > policy.maxMs) {
    throw new Refusal(
      'INVALID_ARGUMENT',
      'ValidityTooLong',
      `requested validity ${requestedSeconds}s exceeds the maximum of ${Math.floor(policy.maxMs / 1000)}s (CertificateAuthority spec.csr.maxValidity)`,
    );
  }
  return requestedMs;
}

/** The user name a TokenReview reports for a ServiceAccount, parsed; undefined for any other user. */
export function serviceAccountOfUser(
  username: string,
): { namespace: string; serviceAccount: string } | undefined {
  const match =
    /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(username);
  if (!match) return undefined;
  return { namespace: match[1]!, serviceAccount: match[3]! };
}
