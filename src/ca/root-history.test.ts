import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTestCa, type TestCa } from '../pki/testing.js';
import {
  ACCEPT_NEW_ROOT_ANNOTATION,
  acceptsNewRoot,
  decideMissingRoot,
  encodeRootHistory,
  historyAfterLoad,
  MAX_REMEMBERED_ROOTS,
  type MissingRootInput,
  parseRootHistory,
  type RootHistory,
} from './root-history.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const fp = (der: Buffer) => createHash('sha256').update(der).digest('hex');
const empty: RootHistory = { fingerprints: [], roots: [] };

let old: TestCa;
let next: TestCa;
beforeAll(async () => {
  [old, next] = await Promise.all([createTestCa({ notBefore: T0 }), createTestCa({ notBefore: T0 })]);
});

const recorded = (): RootHistory =>
  historyAfterLoad(empty, {
    mode: 'SelfSigned',
    roots: [old.root.der],
    activeFingerprint: fp(old.root.der),
  })!;

const missing = (over: Partial<MissingRootInput> = {}): MissingRootInput => ({
  mode: 'SelfSigned',
  source: 'istio-system/istio-ca-secret',
  history: recorded(),
  statusFingerprints: [],
  missingSince: T0.getTime(),
  ...over,
});

describe('the root history record', () => {
  it('remembers a loaded root, round-trips through ConfigMap data, and reports no change the second time', () => {
    const history = recorded();
    expect(history).toMatchObject({
      fingerprints: [fp(old.root.der)],
      active: fp(old.root.der),
      mode: 'SelfSigned',
    });
    const parsed = parseRootHistory(encodeRootHistory(history));
    expect(parsed.fingerprints).toEqual(history.fingerprints);
    expect(parsed.roots[0]!.equals(old.root.der)).toBe(true);
    expect(
      historyAfterLoad(parsed, {
        mode: 'SelfSigned',
        roots: [old.root.der],
        activeFingerprint: fp(old.root.der),
      }),
    ).toBeUndefined();
  });

  it('adds a rotated root after the old one and forgets the oldest beyond the limit', () => {
    const rotated = historyAfterLoad(recorded(), {
      mode: 'SelfSigned',
      roots: [old.root.der, next.root.der],
      activeFingerprint: fp(next.root.der),
    })!;
    expect(rotated.fingerprints).toEqual([fp(old.root.der), fp(next.root.der)]);
    expect(rotated.active).toBe(fp(next.root.der));
    const many: RootHistory = {
      fingerprints: Array.from({ length: MAX_REMEMBERED_ROOTS }, (_, i) => String(i).padStart(64, '0')),
      roots: [],
    };
    const trimmed = historyAfterLoad(many, {
      mode: 'SelfSigned',
      roots: [old.root.der],
      activeFingerprint: fp(old.root.der),
    })!;
    expect(trimmed.fingerprints).toHaveLength(MAX_REMEMBERED_ROOTS);
    expect(trimmed.fingerprints.at(-1)).toBe(fp(old.root.der));
    expect(trimmed.fingerprints[0]).toBe('1'.padStart(64, '0'));
  });

  it('reads garbage as nothing recorded, never throwing', () => {
    expect(parseRootHistory({ fingerprints: 'nope\n', 'roots.pem': '-----BEGIN', active: 'x' })).toEqual(
      empty,
    );
    expect(parseRootHistory(undefined)).toEqual(empty);
  });
});

describe('a missing CA Secret', () => {
  it('on a fresh install (nothing recorded anywhere) means: make a root', () => {
    expect(decideMissingRoot(missing({ history: empty }))).toEqual({ action: 'create' });
  });

  it('after a root was recorded means: refuse, naming the root and both ways out', () => {
    const decision = decideMissingRoot(missing());
    expect(decision.action).toBe('refuse');
    if (decision.action !== 'refuse') return;
    expect(decision.missingFingerprint).toBe(fp(old.root.der));
    expect(decision.message).toContain(`root ${fp(old.root.der).slice(0, 16)}`);
    expect(decision.message).toContain('Restore istio-system/istio-ca-secret from a backup');
    expect(decision.message).toContain(`${ACCEPT_NEW_ROOT_ANNOTATION}=${fp(old.root.der)}`);
  });

  it('is refused too when only the CertificateAuthority status remembers the root (CA namespace re-created)', () => {
    const decision = decideMissingRoot(missing({ history: empty, statusFingerprints: [fp(old.root.der)] }));
    expect(decision).toMatchObject({ action: 'refuse', missingFingerprint: fp(old.root.der) });
    if (decision.action === 'refuse') expect(decision.message).toContain('the CertificateAuthority status');
  });

  it('in plugged-in mode is refused whatever the annotation says: only the operator can bring cacerts back', () => {
    const decision = decideMissingRoot(
      missing({ mode: 'PluggedIn', source: 'istio-system/cacerts', request: fp(old.root.der) }),
    );
    expect(decision.action).toBe('refuse');
  });

  it('with the accept annotation naming the missing root means: a new root, the old one trusted next to it', () => {
    const decision = decideMissingRoot(missing({ request: fp(old.root.der).slice(0, 16) }));
    expect(decision.action).toBe('accept');
    if (decision.action !== 'accept') return;
    expect(decision.previousRoots.map(fp)).toEqual([fp(old.root.der)]);
    expect(decision.previousActive?.equals(old.root.der)).toBe(true);
  });

  it('finds the old root in a published trust bundle when the record only has its fingerprint', () => {
    const decision = decideMissingRoot(
      missing({
        history: empty,
        statusFingerprints: [fp(old.root.der)],
        request: fp(old.root.der),
        publishedRoots: [next.root.der, old.root.der],
      }),
    );
    expect(decision).toMatchObject({ action: 'accept' });
    if (decision.action === 'accept') expect(decision.previousRoots.map(fp)).toEqual([fp(old.root.der)]);
  });

  it('ignores an accept annotation for another root, an old timestamp, or one already acted on', () => {
    expect(decideMissingRoot(missing({ request: fp(next.root.der) })).action).toBe('refuse');
    expect(decideMissingRoot(missing({ request: String(T0.getTime() / 1000 - 60) })).action).toBe('refuse');
    const handled = { ...recorded(), acceptedRequest: String(T0.getTime() / 1000 + 5) };
    expect(decideMissingRoot(missing({ history: handled, request: handled.acceptedRequest })).action).toBe(
      'refuse',
    );
    expect(decideMissingRoot(missing({ request: String(T0.getTime() / 1000 + 5) })).action).toBe('accept');
  });

  it('accepts only fingerprint prefixes of 16+ hex digits or unix times', () => {
    const f = 'ab'.repeat(32);
    expect(acceptsNewRoot(f.slice(0, 15), f, 0)).toBe(false);
    expect(acceptsNewRoot(f.slice(0, 16).toUpperCase(), f, 0)).toBe(true);
    expect(acceptsNewRoot('yes', f, 0)).toBe(false);
    expect(acceptsNewRoot('1767225600', f, Date.parse('2026-01-01T00:00:00Z'))).toBe(true);
  });
});
