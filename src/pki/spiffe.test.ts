import { describe, expect, it } from 'vitest';
import {
  formatSpiffeId,
  parseSpiffeId,
  parseWorkloadSpiffeId,
  SpiffeIdError,
  validatePathSegment,
  validateTrustDomain,
} from './spiffe.js';

describe('formatSpiffeId', () => {
  it('builds spiffe://<trust domain>/ns/<namespace>/sa/<service account>', () => {
    expect(formatSpiffeId('cluster.local', 'default', 'default')).toBe(
      'spiffe://cluster.local/ns/default/sa/default',
    );
  });

  it.each([
    ['a', 'b'],
    ['kube-system', 'coredns'],
    ['ns-with-many-dashes-0', 'sa.with.dots'],
    ['0', '9'],
    ['x'.repeat(63), 'y'.repeat(253)],
  ])('accepts Kubernetes names %s/%s unchanged', (namespace, serviceAccount) => {
    const id = formatSpiffeId('cluster.local', namespace, serviceAccount);
    expect(parseWorkloadSpiffeId(id)).toEqual({ trustDomain: 'cluster.local', namespace, serviceAccount });
  });

  it('accepts segments SPIFFE allows that Kubernetes never produces', () => {
    expect(formatSpiffeId('td', 'Upper_Case', '-.-')).toBe('spiffe://td/ns/Upper_Case/sa/-.-');
  });

  it('names every invalid part in one error', () => {
    expect(() => formatSpiffeId('Foo', '', '..')).toThrow(
      new SpiffeIdError(
        'cannot form a SPIFFE ID: trust domain "Foo" must be lowercase; namespace: path segment must not be empty; ' +
          'service account: path segment ".." is not allowed',
      ),
    );
  });

  it('rejects a service account containing a slash', () => {
    expect(() => formatSpiffeId('td', 'ns', 'a/b')).toThrow(
      /service account: path segment "a\/b" contains "\/"/,
    );
  });
});

describe('validateTrustDomain', () => {
  it.each(['cluster.local', 'example.org', 'my_domain-1.test', 'a'])('accepts %s', (td) => {
    expect(validateTrustDomain(td)).toEqual([]);
  });

  it.each([
    ['', 'trust domain must not be empty'],
    ['Foo', 'trust domain "Foo" must be lowercase'],
    ['a/b', 'trust domain "a/b" contains "/"; only a-z, 0-9, ".", "-" and "_" are allowed'],
    ['host:8080', 'trust domain "host:8080" contains ":"; only a-z, 0-9, ".", "-" and "_" are allowed'],
    ['ü.example', 'trust domain "ü.example" contains "ü"; only a-z, 0-9, ".", "-" and "_" are allowed'],
  ])('rejects %j: %s', (td, message) => {
    expect(validateTrustDomain(td)).toEqual([message]);
  });

  it('limits the length to 255 characters', () => {
    expect(validateTrustDomain('a'.repeat(255))).toEqual([]);
    expect(validateTrustDomain('a'.repeat(256))[0]).toMatch(
      /is 256 characters long; at most 255 are allowed/,
    );
  });

  it('reports case and character problems together', () => {
    expect(validateTrustDomain('Foo Bar')).toHaveLength(2);
  });
});

describe('validatePathSegment', () => {
  it.each(['a', 'A', '0', '.a', 'a..b', '_', '...'])('accepts %j', (segment) => {
    expect(validatePathSegment(segment)).toEqual([]);
  });

  it.each([
    ['', 'path segment must not be empty'],
    ['.', 'path segment "." is not allowed'],
    ['..', 'path segment ".." is not allowed'],
    ['a b', 'path segment "a b" contains " "; only A-Z, a-z, 0-9, ".", "-" and "_" are allowed'],
    ['%41', 'path segment "%41" contains "%"; only A-Z, a-z, 0-9, ".", "-" and "_" are allowed'],
  ])('rejects %j', (segment, message) => {
    expect(validatePathSegment(segment)).toEqual([message]);
  });
});

describe('parseSpiffeId', () => {
  it('splits trust domain and path', () => {
    expect(parseSpiffeId('spiffe://example.org/ns/foo/sa/bar')).toEqual({
      trustDomain: 'example.org',
      path: '/ns/foo/sa/bar',
      segments: ['ns', 'foo', 'sa', 'bar'],
    });
  });

  it("accepts a trust domain's own ID (no path)", () => {
    expect(parseSpiffeId('spiffe://example.org')).toEqual({
      trustDomain: 'example.org',
      path: '',
      segments: [],
    });
  });

  it.each([
    ['https://example.org/ns/a/sa/b', 'it must start with "spiffe://"'],
    ['SPIFFE://example.org/ns/a/sa/b', 'the scheme must be lowercase "spiffe://"'],
    ['spiffe:///ns/a/sa/b', 'trust domain must not be empty'],
    ['spiffe://Example.org/x', 'trust domain "Example.org" must be lowercase'],
    ['spiffe://example.org/', 'the path must not be a lone "/"'],
    ['spiffe://example.org/ns//sa/b', 'segment 2: path segment must not be empty'],
    ['spiffe://example.org/ns/a/sa/b/', 'segment 5: path segment must not be empty'],
    ['spiffe://example.org/ns/../sa/b', 'segment 2: path segment ".." is not allowed'],
    ['spiffe://example.org/ns/a?x=1', 'segment 2: path segment "a?x=1" contains "?", "="'],
    ['spiffe://user@example.org', 'trust domain "user@example.org" contains "@"'],
    ['spiffe://example.org:443/a', 'trust domain "example.org:443" contains ":"'],
  ])('rejects %s because %s', (uri, reason) => {
    expect(() => parseSpiffeId(uri)).toThrow(SpiffeIdError);
    expect(() => parseSpiffeId(uri)).toThrow(reason);
  });

  it('rejects IDs longer than 2048 bytes', () => {
    expect(() => parseSpiffeId(`spiffe://td/${'a'.repeat(2040)}`)).toThrow(/at most 2048 are allowed/);
  });
});

describe('parseWorkloadSpiffeId', () => {
  it.each(['spiffe://td/ns/a', 'spiffe://td/ns/a/sa/b/extra', 'spiffe://td/namespace/a/sa/b', 'spiffe://td'])(
    'rejects %s, which is not of the form /ns/<namespace>/sa/<service account>',
    (uri) => {
      expect(() => parseWorkloadSpiffeId(uri)).toThrow(/is not a workload SPIFFE ID/);
    },
  );
});
