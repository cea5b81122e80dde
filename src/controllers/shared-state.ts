// What controllers derive and other controllers watch: the running
// configuration, the signing authority, the rotation status, leadership.
// Like an informer's cache, a value is read at reconcile time and its
// subscribers only enqueue keys; no controller calls another.
import type { CaConfig } from '../config/ca-spec.js';
import { defaultCaConfig } from '../config/ca-spec.js';
import type { AuthorityState } from './authority/state.js';
import type { CrlHealth } from './crl/health.js';
import type { RotationStatus } from './root-rotation/status.js';

export class SharedValue<T> {
  private value: T;
  private readonly subscribers: Array<(value: T, previous: T) => void> = [];

  constructor(
    initial: T,
    private readonly same: (a: T, b: T) => boolean = Object.is,
  ) {
    this.value = initial;
  }

  get current(): T {
    return this.value;
  }

  /** Replaces the value; subscribers hear of it only when it differs. */
  set(next: T): void {
    const previous = this.value;
    this.value = next;
    if (this.same(previous, next)) return;
    for (const fn of this.subscribers) fn(next, previous);
  }

  subscribe(fn: (value: T, previous: T) => void): void {
    this.subscribers.push(fn);
  }
}

const sameJson = <T>(a: T, b: T) => JSON.stringify(a) === JSON.stringify(b);

export class SharedState {
  /** The configuration in effect: the last valid spec of the CertificateAuthority, or the defaults. */
  readonly config = new SharedValue<CaConfig>(defaultCaConfig(), sameJson);
  /** Why the stored spec is not in effect, when it is invalid. */
  readonly specError = new SharedValue<string | undefined>(undefined);
  /**
   * True while the CertificateAuthority's spec has been invalid ever since this process started:
   * there is no last valid configuration, and the defaults in `config` may differ from what the
   * operator meant (trust domain, root mode, namespaces). Nothing is loaded, issued, written or
   * deleted then; the first valid spec ends it.
   */
  readonly configHeld = new SharedValue<boolean>(false);
  readonly authority = new SharedValue<AuthorityState>(
    { status: 'pending', message: 'loading the CA' },
    sameAuthorityState,
  );
  /** Undefined until the rotation controller has looked once. */
  readonly rotation = new SharedValue<RotationStatus | undefined>(undefined, sameJson);
  /** Whether the CA namespace's CRL is current (the CRL controller's, for the status). */
  readonly crl = new SharedValue<CrlHealth>({ state: 'unknown', message: 'no CRL signed yet' }, sameJson);
  /** Whether this replica may write (holds the Lease, or runs without leader election). */
  readonly leading = new SharedValue<boolean>(true);
  /** Workload keys whose last reconcile did not reach the desired state. */
  readonly failingWorkloads = new Set<string>();
}

/** A change worth telling anyone about: another status, another CA generation, another message. */
export function sameAuthorityState(previous: AuthorityState, next: AuthorityState): boolean {
  if (previous.status !== next.status) return false;
  if (next.status === 'ready' && previous.status === 'ready')
    return previous.authority.generation === next.authority.generation;
  return (previous as { message: string }).message === (next as { message: string }).message;
}
