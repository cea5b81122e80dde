// Found by test/fuzz (seed 20261130): a spec nested thousands of levels deep overflowed the stack.
import { describe, expect, it } from 'vitest';
import {
  MAX_SPEC_DEPTH,
  nestedDeeperThan,
  parseCertificateAuthoritySpec,
  specFingerprint,
} from './ca-spec.js';

function expectInvalid(raw: unknown): string {
  const result = parseCertificateAuthoritySpec(raw);
  if (result.ok) throw new Error(`expected an invalid spec, got ${JSON.stringify(result.config)}`);
  return result.message;
}

describe('a spec nested deeper than any real one', () => {
  const nested = (depth: number) => {
    let value: unknown = 'x';
    for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value };
    return { namespaces: { alwaysManaged: value } };
  };

  it('is reported as invalid instead of overflowing the stack', () => {
    expect(expectInvalid(nested(3_000))).toBe(`spec: nested more than ${MAX_SPEC_DEPTH} levels deep`);
    expect(expectInvalid(nested(100_000))).toMatch(/nested more than/);
  });

  it('still accepts every real spec depth', () => {
    expect(nestedDeeperThan({ rootCA: { selfSigned: { ttl: '1h' } } }, MAX_SPEC_DEPTH)).toBe(false);
    expect(expectInvalid(nested(10))).toMatch(/^spec\.namespaces\.alwaysManaged/);
  });

  it('has a change fingerprint that never throws', () => {
    expect(specFingerprint(nested(100_000))).toBe('too-deep');
    expect(specFingerprint(undefined)).toBe('undefined');
    expect(specFingerprint({ trustDomain: 'a' })).toBe('{"trustDomain":"a"}');
  });
});
