/**
 * SPIFFE IDs (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md) as alcazar issues them:
 * `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
 */

export class SpiffeIdError extends Error {
  override name = 'SpiffeIdError';
}

export interface SpiffeId {
  trustDomain: string;
  /** "" for a trust domain's own ID, otherwise "/seg/seg…". */
  path: string;
  segments: string[];
}

export interface WorkloadSpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const SCHEME = 'spiffe://';
const MAX_TRUST_DOMAIN_LENGTH = 255;
const MAX_SPIFFE_ID_BYTES = 2048;
const PATH_SEGMENT_CHAR = /[A-Za-z0-9._-]/;
// Uppercase letters in a trust domain are reported as a case problem, not as disallowed characters.
const TRUST_DOMAIN_CHAR_ANY_CASE = /[A-Za-z0-9._-]/;

/** Everything wrong with a trust domain name; empty when it is valid. */
export function validateTrustDomain(trustDomain: string): string[] {
  if (trustDomain.length === 0) return ['trust domain must not be empty'];
  const problems: string[] = [];
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) {
    problems.push(
      `trust domain "${trustDomain}" is ${trustDomain.length} characters long; at most ${MAX_TRUST_DOMAIN_LENGTH} are allowed`,
    );
  }
  if (/[A-Z]/.test(trustDomain)) problems.push(`trust domain "${trustDomain}" must be lowercase`);
  const invalid = disallowedCharacters(trustDomain, TRUST_DOMAIN_CHAR_ANY_CASE);
  if (invalid.length > 0) {
    problems.push(
      `trust domain "${trustDomain}" contains ${quoteAll(invalid)}; only a-z, 0-9, ".", "-" and "_" are allowed`,
    );
  }
  return problems;
}

/** Everything wrong with one path segment (a namespace or service account name); empty when it is valid. */
export function validatePathSegment(segment: string): string[] {
  if (segment.length === 0) return ['path segment must not be empty'];
  if (segment === '.' || segment === '..') return [`path segment "${segment}" is not allowed`];
  const invalid = disallowedCharacters(segment, PATH_SEGMENT_CHAR);
  if (invalid.length === 0) return [];
  return [
    `path segment "${segment}" contains ${quoteAll(invalid)}; only A-Z, a-z, 0-9, ".", "-" and "_" are allowed`,
  ];
}

/** `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`; throws a SpiffeIdError naming what is invalid. */
export function formatSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const problems = [
    ...validateTrustDomain(trustDomain),
    ...validatePathSegment(namespace).map((p) => `namespace: ${p}`),
    ...validatePathSegment(serviceAccount).map((p) => `service account: ${p}`),
  ];
  if (problems.length > 0) throw new SpiffeIdError(`cannot form a SPIFFE ID: ${problems.join('; ')}`);
  const id = `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  checkLength(id);
  return id;
}

/** Parses any SPIFFE ID; throws a SpiffeIdError that says what is wrong with it. */
export function parseSpiffeId(uri: string): SpiffeId {
  if (!uri.startsWith(SCHEME)) {
    const reason = uri.toLowerCase().startsWith(SCHEME)
      ? 'the scheme must be lowercase "spiffe://"'
      : 'it must start with "spiffe://"';
    throw new SpiffeIdError(`"${uri}" is not a SPIFFE ID: ${reason}`);
  }
  checkLength(uri);
  const rest = uri.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const problems = validateTrustDomain(trustDomain);
  const segments = path === '' ? [] : path.slice(1).split('/');
  if (path === '/') {
    problems.push('the path must not be a lone "/"');
  } else {
    segments.forEach((segment, index) => {
      problems.push(...validatePathSegment(segment).map((p) => `segment ${index + 1}: ${p}`));
    });
  }
  if (problems.length > 0) {
    throw new SpiffeIdError(`"${uri}" is not a valid SPIFFE ID: ${problems.join('; ')}`);
  }
  return { trustDomain, path, segments };
}

/** Parses an ID of the form alcazar issues (`/ns/<namespace>/sa/<service account>`). */
export function parseWorkloadSpiffeId(uri: string): WorkloadSpiffeId {
  const { trustDomain, segments } = parseSpiffeId(uri);
  const [ns, namespace, sa, serviceAccount, ...extra] = segments;
  if (
    ns !== 'ns' ||
    sa !== 'sa' ||
    namespace === undefined ||
    serviceAccount === undefined ||
    extra.length > 0
  ) {
    throw new SpiffeIdError(
      `"${uri}" is not a workload SPIFFE ID: the path must be /ns/<namespace>/sa/<service account>`,
    );
  }
  return { trustDomain, namespace, serviceAccount };
}

function checkLength(id: string): void {
  const bytes = Buffer.byteLength(id, 'utf8');
  if (bytes > MAX_SPIFFE_ID_BYTES) {
    throw new SpiffeIdError(`SPIFFE ID is ${bytes} bytes long; at most ${MAX_SPIFFE_ID_BYTES} are allowed`);
  }
}

function disallowedCharacters(text: string, allowed: RegExp): string[] {
  return [...new Set([...text].filter((char) => !allowed.test(char)))];
}

function quoteAll(chars: readonly string[]): string {
  return chars.map((char) => JSON.stringify(char)).join(', ');
}
