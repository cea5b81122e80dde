import { describe, expect, it } from 'vitest';
import { HOT_WINDOW_MS, SerialReservations, TTL_MS } from './reservations.js';

const DAY = 86_400_000;
const start = Date.UTC(2026, 11, 1, 12);

function setup(opts: { maxIdentities?: number; failWrites?: boolean } = {}) {
  let now = start;
  let next = 1n;
  const written: {
    namespace: string;
    serviceAccount: string;
    serial: bigint;
    notAfter: Date;
    issuedAt: Date;
  }[] = [];
  const pending: Array<() => void> = [];
  const reservations = new SerialReservations({
    record: (entry) =>
      new Promise<void>((resolve, reject) => {
        written.push(entry);
        pending.push(opts.failWrites ? () => reject(new Error('etcd is down')) : resolve);
      }),
    newSerial: () => next++,
    defaultValidityMs: () => DAY,
    now: () => now,
    caNamespace: 'istio-system',
    ...(opts.maxIdentities && { maxIdentities: opts.maxIdentities }),
  });
  const stored = async () => {
    for (const done of pending.splice(0)) done();
    await new Promise((r) => setImmediate(r));
  };
  return { reservations, written, stored, setNow: (t: number) => (now = t), at: () => now };
}

describe('serial reservations', () => {
  it('reserves only for an identity issued to twice within the hot window, with a bound of TTL + default validity', async () => {
    const { reservations, written, stored, setNow } = setup();
    reservations.issued('shop', 'cart');
    setNow(start + HOT_WINDOW_MS + 1);
    reservations.issued('shop', 'cart'); // too long after the first
    expect(written).toEqual([]);
    setNow(start + HOT_WINDOW_MS + 2);
    reservations.issued('shop', 'cart');
    expect(written).toEqual([
      {
        namespace: 'shop',
        serviceAccount: 'cart',
        serial: 1n,
        notAfter: new Date(start + HOT_WINDOW_MS + 2 + TTL_MS + DAY),
        issuedAt: new Date(start + HOT_WINDOW_MS + 2),
      },
    ]);
    expect(reservations.take('shop', 'cart', start + DAY)).toBeUndefined(); // not stored yet
    await stored();
    expect(reservations.take('shop', 'web', start + DAY)).toBeUndefined();
    expect(reservations.take('shop', 'cart', start + DAY)?.serial).toBe(1n);
    expect(reservations.take('shop', 'cart', start + DAY)).toBeUndefined(); // taken once
  });

  it('is not taken for a certificate that would outlive its bound, nor after its TTL', async () => {
    const { reservations, stored, setNow } = setup();
    reservations.issued('shop', 'cart');
    reservations.issued('shop', 'cart');
    await stored();
    expect(reservations.take('shop', 'cart', start + TTL_MS + DAY + 1)).toBeUndefined();
    setNow(start + TTL_MS + 1);
    expect(reservations.take('shop', 'cart', start + DAY)).toBeUndefined();
  });

  it('one reservation per identity at a time, and a failed write leaves none', async () => {
    const t = setup({ failWrites: true });
    t.reservations.issued('shop', 'cart');
    t.reservations.issued('shop', 'cart');
    t.reservations.issued('shop', 'cart'); // still writing the first
    expect(t.written).toHaveLength(1);
    await t.stored();
    expect(t.reservations.take('shop', 'cart', start + DAY)).toBeUndefined();
    t.reservations.issued('shop', 'cart');
    expect(t.written).toHaveLength(2); // tried again
  });

  it('a revocation drops reservations made before it in its namespace (all of them from the CA namespace), and one being written', async () => {
    const { reservations, stored, setNow } = setup();
    for (const sa of ['cart', 'cart', 'web', 'web']) reservations.issued('shop', sa);
    for (const sa of ['api', 'api']) reservations.issued('bank', sa);
    await stored();
    setNow(start + 1);
    reservations.revocationSeen('shop');
    expect(reservations.take('shop', 'cart', start + DAY)).toBeUndefined();
    expect(reservations.take('shop', 'web', start + DAY)).toBeUndefined();
    expect(reservations.take('bank', 'api', start + DAY)?.serial).toBe(3n);

    // A write in flight when the revocation is seen is not kept when it lands.
    setNow(start + 2);
    reservations.issued('bank', 'api');
    setNow(start + 3);
    reservations.revocationSeen('istio-system');
    await stored();
    expect(reservations.take('bank', 'api', start + DAY)).toBeUndefined();
    // Made after the revocation: taken as usual.
    setNow(start + 4);
    reservations.issued('bank', 'api');
    await stored();
    expect(reservations.take('bank', 'api', start + DAY)?.serial).toBe(5n);
  });

  it('put back only if still valid, and never over a newer one', async () => {
    const { reservations, stored, setNow } = setup();
    reservations.issued('shop', 'cart');
    reservations.issued('shop', 'cart');
    await stored();
    const taken = reservations.take('shop', 'cart', start + DAY)!;
    reservations.putBack('shop', 'cart', taken);
    expect(reservations.take('shop', 'cart', start + DAY)).toBe(taken);
    setNow(start + 1);
    reservations.revocationSeen('shop');
    reservations.putBack('shop', 'cart', taken);
    expect(reservations.take('shop', 'cart', start + DAY)).toBeUndefined();
  });

  it('keeps at most maxIdentities, dropping the least recently issued to', async () => {
    const { reservations, stored } = setup({ maxIdentities: 2 });
    for (const sa of ['a', 'a', 'b', 'b', 'c', 'c']) reservations.issued('shop', sa);
    await stored();
    expect(reservations.take('shop', 'a', start + DAY)).toBeUndefined();
    expect(reservations.take('shop', 'b', start + DAY)?.serial).toBe(2n);
    expect(reservations.take('shop', 'c', start + DAY)?.serial).toBe(3n);
  });
});
