// What to do about the signing authority, decided purely from the cached CA
// Secret, the configuration and what was loaded last.
import type { MissingRootDecision } from '../../ca/root-history.js';
import type { AuthorityState } from './state.js';

/** How often a missing root is looked for again (a restored Secret also wakes the cache). */
export const MISSING_ROOT_RECHECK_MS = 5_000;

export type AcceptedRoot = Extract<MissingRootDecision, { action: 'accept' }>;

export interface AuthorityPlanInput {
  mode: 'SelfSigned' | 'PluggedIn';
  /** namespace/name of the Secret the mode reads. */
  source: string;
  secret: { uid: string; resourceVersion: string } | undefined;
  trustDomain: string;
  /** What the published state was derived from (see authorityInputKey); '' when nothing was. */
  evaluatedFrom: string;
  state: AuthorityState;
  canWrite: boolean;
  /** A self-signed root was loaded before: a deleted istio-ca-secret is restored with it. */
  haveLastGood: boolean;
  /**
   * Root continuity's verdict on a missing CA Secret (asked only when no root is held in memory):
   * refuse (RootMissing), a fresh install, or a new root the operator accepted.
   */
  missing?: MissingRootDecision;
}

export type AuthorityDecision =
  | { action: 'none' }
  /** Publish `state`; look again after `recheckAfterMs` when set (nothing else may wake it). */
  | { action: 'publish'; state: AuthorityState; recheckAfterMs?: number }
  /** Parse and validate the Secret, and publish what it holds (ready, or failed with the reason). */
  | { action: 'load'; inputKey: string }
  /** Create istio-ca-secret: with the root in use (`restore`), or a new one. Never overwrites. */
  | { action: 'create'; restore: boolean; accepted?: AcceptedRoot };

/** Identifies the input a load would read; an unchanged input is not validated again. */
export function authorityInputKey(
  input: Pick<AuthorityPlanInput, 'mode' | 'secret' | 'trustDomain'>,
): string {
  return `${input.mode}|${input.secret?.uid}|${input.secret?.resourceVersion}|${input.trustDomain}`;
}

export function planAuthority(input: AuthorityPlanInput): AuthorityDecision {
  if (!input.secret) {
    if (input.missing?.action === 'refuse') {
      return {
        action: 'publish',
        state: { status: 'failed', reason: 'RootMissing', message: input.missing.message },
        recheckAfterMs: MISSING_ROOT_RECHECK_MS,
      };
    }
    if (input.mode === 'PluggedIn') {
      return {
        action: 'publish',
        state: {
          status: 'failed',
          reason: 'MissingSecret',
          message: `rootCA.mode is PluggedIn but Secret ${input.source} does not exist`,
        },
      };
    }
    if (!input.canWrite)
      return {
        action: 'publish',
        state: { status: 'pending', message: `waiting for the leader to create ${input.source}` },
      };
    if (input.haveLastGood) return { action: 'create', restore: true };
    return input.missing?.action === 'accept'
      ? { action: 'create', restore: false, accepted: input.missing }
      : { action: 'create', restore: false };
  }
  const inputKey = authorityInputKey(input);
  if (inputKey === input.evaluatedFrom && input.state.status !== 'pending') return { action: 'none' };
  return { action: 'load', inputKey };
}
