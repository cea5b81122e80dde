// Which certificate serials applied revocations list, for the CSR API: a client certificate that
// is revoked must not prove its holder's identity. Rebuilt from the revocation cache after it
// changes, when next asked (revocations are few and rarely change; the question is asked per CSR).
import type { RevocationView } from './observe.js';

interface RevocationSource {
  entries(): IterableIterator<[string, RevocationView]>;
  subscribe(handlers: { added?(): void; updated?(): void; deleted?(): void; relisted?(): void }): void;
}

export class RevokedSerials {
  private serials: Set<string> | undefined;

  constructor(private readonly revocations: RevocationSource) {
    const stale = () => {
      this.serials = undefined;
    };
    revocations.subscribe({ added: stale, updated: stale, deleted: stale, relisted: stale });
  }

  /** `serial` in canonical hex (normalizeSerialHex). */
  has(serial: string): boolean {
    this.serials ??= this.collect();
    return this.serials.has(serial);
  }

  private collect(): Set<string> {
    const serials = new Set<string>();
    for (const [, view] of this.revocations.entries()) {
      if (!view.decided?.applied) continue;
      for (const entry of view.revoked) serials.add(entry.serial);
    }
    return serials;
  }
}
