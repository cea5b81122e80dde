import { X509Certificate } from 'node:crypto';
import pino from 'pino';
import { Registry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSelfSigned, type SigningAuthority } from '../ca/authority.js';
import { issueWorkload } from '../ca/issue.js';
import { defaultCaConfig } from '../config/ca-spec.js';
import { buildTestCsrPem } from '../pki/csr-testing.js';
import { privateKeyToPem } from '../pki/index.js';
import { createTestCa } from '../pki/testing.js';
import { CsrServerMetrics } from '../telemetry/csr-metrics.js';
import { TokenAuthenticator, type TokenReviewResult } from './authenticate.js';
import { SerialReservations } from './reservations.js';
import { CertificateService, type IssuedCertificateRecord } from './service.js';

const now = Date.UTC(2026, 10, 30, 12);
const HOUR = 3_600_000;
let authority: SigningAuthority;

beforeAll(async () => {
  const ca = await createTestCa({ notBefore: new Date(now - HOUR) });
  authority = await loadSelfSigned(
    {
      'ca-cert.pem': Buffer.from(ca.root.pem),
      'ca-key.pem': Buffer.from(privateKeyToPem(ca.keys.privateKey)),
    },
    'ca/istio-ca-secret',
    { now: new Date(now), minRemainingMs: 0 },
  );
});

/** A JWT-shaped token that claims a ServiceAccount; only the (fake) TokenReview decides. */
const tokenClaiming = (ns: string, sa: string, nonce = Math.random()) =>
  [
    Buffer.from('{"alg":"none"}').toString('base64url'),
    Buffer.from(
      JSON.stringify({ sub: `system:serviceaccount:${ns}:${sa}`, exp: now / 1000 + 3600, nonce }),
    ).toString('base64url'),
    'sig',
  ].join('.');

const reviewedAs = (ns: string, sa: string): TokenReviewResult => ({
  authenticated: true,
  username: `system:serviceaccount:${ns}:${sa}`,
  groups: ['system:serviceaccounts'],
  audiences: ['istio-ca'],
});

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function setup(opts: {
  early: boolean;
  reservations?: SerialReservations;
  at?: number;
  isRevoked?: (serial: string) => boolean;
}) {
  const reviews: Array<ReturnType<typeof deferred<TokenReviewResult>>> = [];
  const records: Array<{ record: IssuedCertificateRecord; done: ReturnType<typeof deferred<void>> }> = [];
  const withdrawn: IssuedCertificateRecord[] = [];
  const handedOut: IssuedCertificateRecord[] = [];
  const service = new CertificateService({
    authority: () => ({ status: 'ready', authority }),
    config: () => defaultCaConfig(),
    isManagedNamespace: () => true,
    tokens: new TokenAuthenticator({
      audiences: ['istio-ca'],
      now: () => now,
      review: () => {
        const review = deferred<TokenReviewResult>();
        reviews.push(review);
        return review.promise;
      },
    }),
    metrics: new CsrServerMetrics(new Registry()),
    log: pino({ level: 'silent' }),
    now: () => opts.at ?? now,
    onIssued: (record) => {
      const done = deferred<void>();
      records.push({ record, done });
      return done.promise;
    },
    afterIssued: (record) => handedOut.push(record),
    ...(opts.early && { onWithdrawn: (record: IssuedCertificateRecord) => withdrawn.push(record) }),
    ...(opts.reservations && { reservations: opts.reservations }),
    ...(opts.isRevoked && { isRevoked: opts.isRevoked }),
  });
  const call = (token: string, sa = 'cart', signal?: AbortSignal) =>
    service.createCertificate({
      request: {
        csr: buildTestCsrPem({ uris: [`spiffe://cluster.local/ns/shop/sa/${sa}`] }),
        validityDurationSeconds: 3600,
      },
      bearerToken: token,
      clientCertificateDer: undefined,
      ...(signal && { signal }),
    } as Parameters<CertificateService['createCertificate']>[0]);
  return { service, reviews, records, withdrawn, handedOut, call };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('a client certificate', () => {
  it('proves its identity until it is revoked; then only a token does', async () => {
    const material = await issueWorkload(authority, {
      spiffeId: 'spiffe://cluster.local/ns/shop/sa/cart',
      dnsNames: [],
      keyAlgorithm: 'ECDSA_P256',
      ttlMs: HOUR,
      backdateMs: 0,
      now: new Date(now),
    });
    const revoked = new Set<string>();
    const { service, reviews, records } = setup({ early: false, isRevoked: (serial) => revoked.has(serial) });
    /** Answers every TokenReview (as cart) and record write the call waits for. */
    const call = async (bearerToken?: string) => {
      const answer = service.createCertificate({
        request: {
          csr: buildTestCsrPem({ uris: ['spiffe://cluster.local/ns/shop/sa/cart'] }),
          validityDurationSeconds: 3600,
        },
        bearerToken,
        clientCertificateDer: material.leafDer,
      } as Parameters<CertificateService['createCertificate']>[0]);
      let settled = false;
      answer.then(
        () => (settled = true),
        () => (settled = true),
      );
      while (!settled) {
        await settle();
        for (const review of reviews) review.resolve(reviewedAs('shop', 'cart'));
        for (const record of records) record.done.resolve();
      }
      return answer;
    };
    expect(await call()).toHaveLength(2);
    revoked.add(material.serialHex);
    await expect(call()).rejects.toMatchObject({ code: 'UNAUTHENTICATED', reason: 'CertificateRevoked' });
    expect(reviews).toHaveLength(0);
    expect(await call(tokenClaiming('shop', 'cart'))).toHaveLength(2);
    expect(reviews).toHaveLength(1);
  });
});

describe('a call abandoned at the server deadline', () => {
  it('is not handed out when it was abandoned while its record was written', async () => {
    const { call, reviews, records, handedOut } = setup({ early: false });
    const abandoned = new AbortController();
    const answer = call(tokenClaiming('shop', 'cart'), 'cart', abandoned.signal);
    await settle();
    reviews[0]!.resolve(reviewedAs('shop', 'cart'));
    // Signing runs on the threadpool: wait for the record write itself, however long that takes.
    for (const deadline = Date.now() + 10_000; records.length === 0 && Date.now() < deadline; )
      await new Promise((resolve) => setTimeout(resolve, 2));
    expect(records, 'the issuance record was written').toHaveLength(1);
    abandoned.abort(); // the record write outlived the deadline
    records[0]!.done.resolve();
    await expect(answer).rejects.toMatchObject({ reason: 'Abandoned' });
    expect(handedOut).toEqual([]);
  });

  it('signs nothing and takes its early record back', async () => {
    const { call, reviews, records, withdrawn, handedOut } = setup({ early: true });
    const abandoned = new AbortController();
    const answer = call(tokenClaiming('shop', 'cart'), 'cart', abandoned.signal);
    await settle();
    abandoned.abort(); // the TokenReview outlived the deadline
    reviews[0]!.resolve(reviewedAs('shop', 'cart'));
    records[0]!.done.resolve();
    await expect(answer).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED', reason: 'Abandoned' });
    expect(withdrawn).toEqual([records[0]!.record]);
    expect(handedOut).toEqual([]);
  });
});

describe('a signer that has ended', () => {
  it('is refused before the token is reviewed or anything recorded', async () => {
    const { reviews, records, call } = setup({ early: true, at: authority.signer.notAfter.getTime() });
    await expect(call(tokenClaiming('shop', 'cart'))).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      reason: 'SignerExpired',
    });
    expect(reviews).toHaveLength(0);
    expect(records).toHaveLength(0);
  });
});

describe('recording while the TokenReview is out', () => {
  it('starts the record before the review answers, and answers only once both are done', async () => {
    const { reviews, records, handedOut, call } = setup({ early: true });
    let answered = false;
    const answer = call(tokenClaiming('shop', 'cart')).then((chain) => {
      answered = true;
      return chain;
    });
    await settle();
    expect(reviews).toHaveLength(1);
    expect(records.map((r) => r.record.serviceAccount)).toEqual(['cart']);
    reviews[0]!.resolve(reviewedAs('shop', 'cart'));
    await settle();
    expect(answered).toBe(false); // recorded is not yet stored
    records[0]!.done.resolve();
    const chain = await answer;
    expect(chain).toHaveLength(2);
    expect(records).toHaveLength(1); // the early record is the one issued
    expect(handedOut).toEqual([records[0]!.record]);
  });

  it('starts no record for a token that says it has expired', async () => {
    const { reviews, records, call } = setup({ early: true });
    const expired = [
      Buffer.from('{"alg":"none"}').toString('base64url'),
      Buffer.from(JSON.stringify({ sub: 'system:serviceaccount:shop:cart', exp: now / 1000 - 60 })).toString(
        'base64url',
      ),
      'sig',
    ].join('.');
    await expect(call(expired)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(records).toHaveLength(0);
    expect(reviews).toHaveLength(0);
  });

  it('withdraws the record when the review refuses the token', async () => {
    const { reviews, records, withdrawn, handedOut, call } = setup({ early: true });
    const answer = call(tokenClaiming('shop', 'cart'));
    await settle();
    reviews[0]!.resolve({ authenticated: false, error: 'invalid bearer token' });
    records[0]!.done.resolve();
    await expect(answer).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(withdrawn).toEqual([records[0]!.record]);
    expect(handedOut).toEqual([]);
  });

  it('withdraws the record when the token belongs to someone else than it claims', async () => {
    const { reviews, records, withdrawn, call } = setup({ early: true });
    const answer = call(tokenClaiming('shop', 'cart'));
    await settle();
    reviews[0]!.resolve(reviewedAs('shop', 'web'));
    records[0]!.done.resolve();
    await expect(answer).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(withdrawn.map((r) => r.serviceAccount)).toEqual(['cart']);
    expect(records).toHaveLength(1); // nothing recorded for web: nothing issued to it
  });

  it('hands nothing out when the record cannot be stored, and takes it back', async () => {
    const { reviews, records, withdrawn, call } = setup({ early: true });
    const answer = call(tokenClaiming('shop', 'cart'));
    await settle();
    records[0]!.done.reject(new Error('etcd is down'));
    reviews[0]!.resolve(reviewedAs('shop', 'cart'));
    await expect(answer).rejects.toThrow(/etcd is down/);
    expect(withdrawn).toHaveLength(1);
  });

  it('starts nothing for a token that claims no ServiceAccount or a CSR that would be refused', async () => {
    const { reviews, records, call } = setup({ early: true });
    const garbage = call('not.a-jwt.at-all');
    const otherNames = call(tokenClaiming('shop', 'cart'), 'web');
    await settle();
    expect(records).toHaveLength(0);
    for (const review of reviews) review.resolve({ authenticated: false });
    await expect(garbage).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(otherNames).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('without a way to withdraw, records only after the review', async () => {
    const { reviews, records, call } = setup({ early: false });
    const answer = call(tokenClaiming('shop', 'cart'));
    await settle();
    expect(records).toHaveLength(0);
    reviews[0]!.resolve(reviewedAs('shop', 'cart'));
    // Recorded once signed (signing is asynchronous crypto): wait for it, with a bound.
    for (let i = 0; i < 1000 && records.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(records).toHaveLength(1);
    records[0]!.done.resolve();
    expect(await answer).toHaveLength(2);
  });
});

describe('serials reserved for identities that ask often', () => {
  function withReservations() {
    const reserved: { serviceAccount: string; serial: bigint }[] = [];
    const reservations = new SerialReservations({
      record: async (entry) => {
        reserved.push(entry);
      },
      newSerial: () => BigInt(0x7a000 + reserved.length),
      defaultValidityMs: () => 24 * HOUR,
      now: () => now,
      caNamespace: 'istio-system',
    });
    return { ...setup({ early: true, reservations }), reservations, reserved };
  }

  /** One call answered: its review says who the token claims, its own record (if any) is stored. */
  async function issue(t: ReturnType<typeof withReservations>, sa = 'cart') {
    const answer = t.call(tokenClaiming('shop', sa), sa);
    await settle();
    t.reviews.at(-1)!.resolve(reviewedAs('shop', sa));
    for (const r of t.records) r.done.resolve();
    const chain = await answer;
    await settle(); // the reservation's own write, after the answer
    return BigInt(`0x${new X509Certificate(chain[0]!).serialNumber}`);
  }

  it('the third call of an identity within a minute takes the serial recorded ahead, and waits for no write', async () => {
    const t = withReservations();
    await issue(t);
    expect(t.reserved).toEqual([]); // one call is not a streak
    await issue(t);
    expect(t.reserved.map((r) => r.serviceAccount)).toEqual(['cart']);
    const answer = t.call(tokenClaiming('shop', 'cart'));
    await settle();
    expect(t.records).toHaveLength(2); // no record started for this call
    t.reviews.at(-1)!.resolve(reviewedAs('shop', 'cart'));
    const serial = BigInt(`0x${new X509Certificate((await answer)[0]!).serialNumber}`);
    expect(serial).toBe(t.reserved[0]!.serial);
    expect(BigInt(`0x${t.handedOut.at(-1)?.serial}`)).toBe(serial);
    // Issued again: the next serial is reserved at once.
    await settle();
    expect(t.reserved).toHaveLength(2);
  });

  it('a revocation seen in the namespace drops the reservation: the next call writes its own record', async () => {
    const t = withReservations();
    await issue(t);
    await issue(t);
    t.reservations.revocationSeen('shop');
    const serial = await issue(t);
    expect(t.records).toHaveLength(3);
    expect(serial).not.toBe(t.reserved[0]!.serial);
  });

  it('a reservation taken by a call that fails authentication is put back for the next one', async () => {
    const t = withReservations();
    await issue(t);
    await issue(t);
    const refused = t.call(tokenClaiming('shop', 'cart'));
    await settle();
    t.reviews.at(-1)!.resolve({ authenticated: false, error: 'token expired' });
    await expect(refused).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(t.withdrawn).toEqual([]); // nothing was written for it, so nothing to take back
    expect(await issue(t)).toBe(t.reserved[0]!.serial);
  });
});
