/**
 * Who is calling: a ServiceAccount token checked by the API server (TokenReview), or a client
 * certificate alcazar issued that is still valid. Positive TokenReviews are cached, so a mesh's
 * renewals do not each cost an API round trip: keyed by a SHA-256 of the token (the token itself
 * is never stored or logged), never beyond the token's own expiry nor a maximum age, in a bounded
 * map that forgets the oldest entry first.
 */
import { createHash } from 'node:crypto';
import type { SigningAuthority } from '../ca/authority.js';
import {
  decodeCertificatesPem,
  inspectCertificate,
  parseWorkloadSpiffeId,
  verifyChain,
} from '../pki/index.js';
import { type Caller, Refusal, serviceAccountOfUser } from './policy.js';

/** The parts of a TokenReview status alcazar reads. */
export interface TokenReviewResult {
  authenticated: boolean;
  username?: string;
  groups?: string[];
  audiences?: string[];
  error?: string;
}

export type TokenReviewer = (token: string, audiences: readonly string[]) => Promise<TokenReviewResult>;

export interface TokenAuthenticatorOptions {
  review: TokenReviewer;
  audiences: readonly string[];
  now?: () => number;
  /** Upper bound on how long a positive review is reused (default 5 minutes). */
  maxCacheAgeMs?: number;
  /** Entries kept (default 10,000). */
  maxEntries?: number;
  /** TokenReviews in flight at once (default 8): a flood of tokens waits instead of flooding the API server. */
  maxConcurrentReviews?: number;
  onReview?: (outcome: 'hit' | 'miss') => void;
}

interface CacheEntry {
  caller: Caller;
  expiresAt: number;
}

const SERVICE_ACCOUNTS_GROUP = 'system:serviceaccounts';
/** Longer than any JWT alcazar should see; a bigger header is refused before any work. */
const MAX_TOKEN_LENGTH = 16 * 1024;

export class TokenAuthenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inFlight = new Map<string, Promise<Caller>>();
  private readonly now: () => number;
  private readonly maxAgeMs: number;
  private readonly maxEntries: number;
  private readonly limiter: Semaphore;

  constructor(private readonly opts: TokenAuthenticatorOptions) {
    this.now = opts.now ?? Date.now;
    this.maxAgeMs = opts.maxCacheAgeMs ?? 5 * 60_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.limiter = new Semaphore(opts.maxConcurrentReviews ?? 8);
  }

  get size(): number {
    return this.cache.size;
  }

  /** The ServiceAccount behind a bearer token; throws an UNAUTHENTICATED Refusal. */
  async authenticate(token: string): Promise<Caller> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      throw new Refusal('UNAUTHENTICATED', 'InvalidToken', 'the bearer token is empty or too long');
    }
    const expiresAt = jwtExpiry(token);
    const now = this.now();
    if (expiresAt !== undefined && expiresAt <= now) {
      throw new Refusal('UNAUTHENTICATED', 'TokenExpired', 'the bearer token has expired');
    }
    const key = createHash('sha256').update(token).digest('hex');
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > now) {
      this.opts.onReview?.('hit');
      return cached.caller;
    }
    if (cached) this.cache.delete(key);
    // Identical tokens arriving together share one review.
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const review = this.review(token, key, expiresAt).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, review);
    return review;
  }

  private async review(token: string, key: string, tokenExpiresAt: number | undefined): Promise<Caller> {
    this.opts.onReview?.('miss');
    const result = await this.limiter.run(() => this.opts.review(token, this.opts.audiences));
    const caller = callerOf(result, this.opts.audiences);
    const now = this.now();
    const expiresAt = Math.min(now + this.maxAgeMs, tokenExpiresAt ?? now + this.maxAgeMs);
    this.cache.set(key, { caller, expiresAt });
    while (this.cache.size > this.maxEntries) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
    return caller;
  }
}

/** Checks a TokenReview result the way istiod does; throws an UNAUTHENTICATED Refusal. */
export function callerOf(result: TokenReviewResult, audiences: readonly string[]): Caller {
  const refuse = (reason: string, message: string): never => {
    throw new Refusal('UNAUTHENTICATED', reason, message);
  };
  if (!result.authenticated) {
    refuse(
      'TokenRejected',
      `the API server did not authenticate the token${result.error ? `: ${result.error}` : ''} (a token for audience ${audiences.join(' or ')} is required)`,
    );
  }
  if (result.audiences && !result.audiences.some((a) => audiences.includes(a))) {
    refuse('WrongAudience', `the token is not for audience ${audiences.join(' or ')}`);
  }
  if (!result.groups?.includes(SERVICE_ACCOUNTS_GROUP)) {
    refuse('NotAServiceAccount', `the token's user is not in group ${SERVICE_ACCOUNTS_GROUP}`);
  }
  const account = serviceAccountOfUser(result.username ?? '');
  if (!account) {
    return refuse('NotAServiceAccount', `the token's user "${result.username}" is not a ServiceAccount`);
  }
  return { ...account, via: 'token' };
}

/**
 * The ServiceAccount a JWT says it belongs to (its `sub` claim), read without verifying anything:
 * only a guess, to start work that the TokenReview's answer then confirms or withdraws.
 */
export function claimedServiceAccount(
  token: string,
): { namespace: string; serviceAccount: string } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1]!.length > MAX_TOKEN_LENGTH) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof payload.sub === 'string' ? serviceAccountOfUser(payload.sub) : undefined;
  } catch {
    return undefined;
  }
}

/** The `exp` claim of a JWT in ms, read without verifying anything (the API server does that); undefined when absent. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' && Number.isFinite(payload.exp) ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A client certificate is accepted when alcazar's current authority issued it, it is valid now and
 * it names exactly one SPIFFE ID of the authority's trust domain. Returns undefined (fall back to
 * the token) otherwise.
 */
export function callerOfCertificate(
  certificateDer: Buffer,
  authority: SigningAuthority,
  trustDomain: string,
  now: Date,
): Caller | undefined {
  const verification = verifyChain({
    leaf: certificateDer,
    intermediates: [authority.signerCertificateDer, ...chainDersOf(authority)],
    roots: authority.rootBundlePem,
    at: now,
  });
  if (!verification.ok) return undefined;
  const info = inspectCertificate(certificateDer);
  if (info.uris.length !== 1 || info.isCA) return undefined;
  try {
    const id = parseWorkloadSpiffeId(info.uris[0]!);
    if (id.trustDomain !== trustDomain) return undefined;
    return {
      namespace: id.namespace,
      serviceAccount: id.serviceAccount,
      via: 'certificate',
      certificateSerialHex: info.serialNumberHex,
    };
  } catch {
    return undefined;
  }
}

/** The CA certificates that follow a leaf (none when a root signs directly). */
export function chainDersOf(authority: SigningAuthority): Buffer[] {
  return authority.chainPem.trim() === '' ? [] : decodeCertificatesPem(authority.chainPem);
}

/** Bounds how many async jobs run at once; the rest wait in order. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(job: () => Promise<T>): Promise<T> {
    // A waiter is handed the permit of the job that ends (active is not lowered in between): a
    // caller arriving before the waiter resumes must not take it too.
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
