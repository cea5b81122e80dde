/**
 * Serials recorded ahead for identities that ask often, so their next certificate is already in the
 * issuance record when it is signed and the answer waits for no write.
 *
 * Every certificate must be in the issuance record before it is handed out (a revocation of the
 * ServiceAccount finds it there). For a CSR that write is on the answer's path; when the same
 * identity keeps coming back (a Deployment's replicas starting, many pods of one ServiceAccount
 * renewing), the write for its next certificate can be made ahead instead: after issuing to an
 * identity that was issued to at least twice within HOT_WINDOW_MS, a fresh random serial is recorded
 * (the manager uses IssuanceRecord.recordSoon: reserved serials of one moment share a write)
 * for it with a notAfter bound of reservedAt + TTL_MS + the default validity, and kept here. The next
 * CSR of that identity within TTL_MS, asking for a certificate that ends by the bound, takes it.
 *
 * What it records that is never issued: at most one serial per hot identity and replica, listed by a
 * revocation of that identity (a CRL entry nobody holds) until its bound passes.
 *
 * A revocation of a ServiceAccount covers what was recorded for it before the revocation was
 * created, a reserved serial too: one taken after that would be born revoked. So a revocation seen
 * in a namespace drops every reservation there made before it (and one being written), and the
 * next CSR of those identities writes its own record, as without reservations. The replica sees a
 * revocation through its watch, a few milliseconds after it is created: within that window a CSR
 * may still take a reservation made before it, as a CSR whose own record was written just before the
 * revocation may be handed out just after it.
 */

export interface Reservation {
  serial: bigint;
  /** The reserved entry's notAfter (ms): a certificate issued under it must end by then. */
  notAfterBound: number;
  reservedAt: number;
}

export interface SerialReservationsOptions {
  /** Records a reserved serial (resolves once stored): the issuance record's record(). */
  record: (entry: {
    namespace: string;
    serviceAccount: string;
    serial: bigint;
    notAfter: Date;
    issuedAt: Date;
  }) => Promise<void>;
  newSerial: () => bigint;
  /** The validity a certificate gets by default (ms): with TTL_MS, the bound of a reservation. */
  defaultValidityMs: () => number;
  now?: () => number;
  /** Identities with a reservation (or a streak being counted) at most; the oldest go first. */
  maxIdentities?: number;
  /** The CA namespace: a revocation there may name any namespace's serials, so it drops them all. */
  caNamespace: string;
}

/** How long a reservation may be taken after it was recorded. */
export const TTL_MS = 10 * 60_000;
/** An identity is hot when it was issued to twice within this window. */
export const HOT_WINDOW_MS = 60_000;
const DEFAULT_MAX_IDENTITIES = 10_000;
/** revokedAt's key for a revocation in the CA namespace ("/" is in no namespace's name). */
const EVERYWHERE = '/';

interface IdentityState {
  lastIssuedAt: number;
  reservation?: Reservation;
  /** A reservation being written (made at this time); dropped on arrival if invalidated since. */
  writing?: number;
}

export class SerialReservations {
  /** Per "namespace/serviceAccount", in the order last issued to (a Map keeps insertion order). */
  private readonly identities = new Map<string, IdentityState>();
  /** Per namespace: when a revocation there was last seen. */
  private readonly revokedAt = new Map<string, number>();
  private readonly now: () => number;
  private readonly max: number;

  constructor(private readonly opts: SerialReservationsOptions) {
    this.now = opts.now ?? Date.now;
    this.max = opts.maxIdentities ?? DEFAULT_MAX_IDENTITIES;
  }

  /** The identity's reservation if one can cover a certificate ending at notAfter; it is removed. */
  take(namespace: string, serviceAccount: string, notAfter: number): Reservation | undefined {
    const state = this.identities.get(`${namespace}/${serviceAccount}`);
    const r = state?.reservation;
    if (!state || !r) return undefined;
    if (this.now() - r.reservedAt > TTL_MS || !this.stillValid(namespace, r.reservedAt)) {
      state.reservation = undefined;
      return undefined;
    }
    if (notAfter > r.notAfterBound) return undefined;
    state.reservation = undefined;
    return r;
  }

  /** A taken reservation whose certificate was not issued after all (e.g. authentication failed). */
  putBack(namespace: string, serviceAccount: string, r: Reservation): void {
    const state = this.identities.get(`${namespace}/${serviceAccount}`);
    if (state && !state.reservation && this.stillValid(namespace, r.reservedAt)) state.reservation = r;
  }

  /** A certificate was issued to this identity: reserve its next serial if it is hot. */
  issued(namespace: string, serviceAccount: string): void {
    const key = `${namespace}/${serviceAccount}`;
    const now = this.now();
    const state = this.identities.get(key);
    this.identities.delete(key); // re-inserted last: the most recently issued to
    const hot = state !== undefined && now - state.lastIssuedAt <= HOT_WINDOW_MS;
    const next: IdentityState = { ...state, lastIssuedAt: now };
    this.identities.set(key, next);
    this.evict();
    if (!hot || next.reservation || next.writing !== undefined) return;
    this.reserve(namespace, serviceAccount, next, now);
  }

  /**
   * A revocation appeared in this namespace: reservations made there before now are dropped (in
   * every namespace for one in the CA namespace).
   */
  revocationSeen(namespace: string): void {
    const everywhere = namespace === this.opts.caNamespace;
    this.revokedAt.set(everywhere ? EVERYWHERE : namespace, this.now());
    const prefix = `${namespace}/`;
    for (const [key, state] of this.identities)
      if (everywhere || key.startsWith(prefix)) state.reservation = undefined;
  }

  private stillValid(namespace: string, reservedAt: number): boolean {
    const revoked = Math.max(
      this.revokedAt.get(namespace) ?? Number.NEGATIVE_INFINITY,
      this.revokedAt.get(EVERYWHERE) ?? Number.NEGATIVE_INFINITY,
    );
    return reservedAt > revoked;
  }

  private reserve(namespace: string, serviceAccount: string, state: IdentityState, now: number): void {
    const reservation: Reservation = {
      serial: this.opts.newSerial(),
      notAfterBound: now + TTL_MS + this.opts.defaultValidityMs(),
      reservedAt: now,
    };
    state.writing = now;
    this.opts
      .record({
        namespace,
        serviceAccount,
        serial: reservation.serial,
        notAfter: new Date(reservation.notAfterBound),
        issuedAt: new Date(now),
      })
      .then(
        () => {
          const current = this.identities.get(`${namespace}/${serviceAccount}`);
          if (current?.writing !== now) return;
          current.writing = undefined;
          if (this.stillValid(namespace, now)) current.reservation = reservation;
        },
        () => {
          // Not recorded: nothing to take; the next issuance tries again.
          const current = this.identities.get(`${namespace}/${serviceAccount}`);
          if (current?.writing === now) current.writing = undefined;
        },
      );
  }

  private evict(): void {
    for (const key of this.identities.keys()) {
      if (this.identities.size <= this.max) return;
      this.identities.delete(key);
    }
  }
}
