// Every parser of outside bytes, as a fuzz target. To add one, append an entry
// to `fuzzTargets`; `derParser` covers the usual case of a function from DER
// bytes to a value that throws its own error (see 'csr' below).
import fc from 'fast-check';
import {
  CaLoadError,
  loadPluggedIn,
  loadSelfSigned,
  PLUGGED_IN_SECRET,
  SELF_SIGNED_SECRET,
} from '../../src/ca/authority.js';
import { parseCertificateAuthoritySpec } from '../../src/config/ca-spec.js';
import { tryParseDuration } from '../../src/config/duration.js';
import { observeTrustBundle } from '../../src/controllers/trust-bundle/observe.js';
import { observeSecret } from '../../src/controllers/workload-secrets/observe.js';
import { jwtExpiry } from '../../src/csr/authenticate.js';
import { decodeCertificateRequest, ProtocolError } from '../../src/csr/protocol.js';
import { CertificateParseError, parseCertificate } from '../../src/pki/certificate-parser.js';
import { CrlError, crlSignedBy, decodeCrlsPem, parseCrl } from '../../src/pki/crl.js';
import { CsrError, parseCsrDer, parseCsrPem } from '../../src/pki/csr.js';
import {
  type DerElement,
  DerError,
  decodeBitString,
  decodeBoolean,
  decodeObjectIdentifier,
  decodeTime,
  decodeUnsignedInteger,
  readChildren,
  readElement,
  Tag,
} from '../../src/pki/der.js';
import {
  decodeAuthorityKeyIdentifier,
  decodeBasicConstraints,
  decodeExtKeyUsage,
  decodeKeyUsage,
  decodeSubjectAltName,
  decodeSubjectKeyIdentifier,
  keyIdentifierOf,
} from '../../src/pki/extensions.js';
import { inspectCertificate } from '../../src/pki/inspect.js';
import { KeyError, parsePrivateKeyPem } from '../../src/pki/keys.js';
import { describeName } from '../../src/pki/name.js';
import { decodeCertificatesPem, decodePem, encodePem, PemError } from '../../src/pki/pem.js';
import { parseSpiffeId, SpiffeIdError } from '../../src/pki/spiffe.js';
import { keyMatchesCertificate, validateWorkloadLeaf, verifyChain } from '../../src/pki/verify.js';
import { type Corpus, certificatePems } from './corpus.js';
import { applyTextEdits, hostileDer, hostilePem, mutatedBytes, textEdit } from './mutate.js';
import { bound, type ErrorClass, type FuzzTarget, target } from './target.js';

/** A parser from DER to a value that may throw only its own typed errors. */
export function derParser(
  name: string,
  about: string,
  seeds: (corpus: Corpus) => readonly Uint8Array[],
  parse: (der: Buffer) => unknown,
  expected: readonly ErrorClass[],
): FuzzTarget<unknown> {
  return target<Buffer>({
    name,
    about,
    input: (corpus) => hostileDer(() => seeds(corpus())),
    run: (der) => parse(der),
    expected,
  });
}

/** Walks every element the reader accepts and decodes each primitive it knows; counts the elements. */
function walkDer(element: DerElement, inputLength: number, depth = 0): number {
  // Every level of nesting costs at least a tag and a length octet.
  bound(depth * 2 <= inputLength, `nesting ${depth} deeper than ${inputLength} bytes can hold`);
  if ((element.tag & 0x20) !== 0) {
    return 1 + readChildren(element).reduce((sum, child) => sum + walkDer(child, inputLength, depth + 1), 0);
  }
  const decoders: Record<number, (e: DerElement) => unknown> = {
    [Tag.BOOLEAN]: decodeBoolean,
    [Tag.INTEGER]: decodeUnsignedInteger,
    [Tag.BIT_STRING]: decodeBitString,
    [Tag.OID]: decodeObjectIdentifier,
    [Tag.UTC_TIME]: decodeTime,
    [Tag.GENERALIZED_TIME]: decodeTime,
  };
  const decoder = decoders[element.tag];
  if (decoder) {
    try {
      decoder(element);
    } catch (error) {
      if (!(error instanceof DerError)) throw error;
    }
  }
  return 1;
}

const anyCertificate = (corpus: () => Corpus) => hostileDer(() => corpus().certificates);

/** CA Secret data: each key absent, valid, swapped with another key's value, or hostile. */
function caSecretData(corpus: () => Corpus, valid: (c: Corpus) => Record<string, Buffer>) {
  const keys = ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem', 'cert-chain.pem'];
  const value = fc.oneof(
    fc.constant<'absent' | 'valid' | 'swap'>('absent'),
    fc.constant<'absent' | 'valid' | 'swap'>('valid'),
    fc.constant<'absent' | 'valid' | 'swap'>('swap'),
    hostilePem(() => [
      ...certificatePems(corpus()),
      ...Object.values(valid(corpus())).map((b) => b.toString('utf8')),
    ]).map((text) => Buffer.from(text)),
    mutatedBytes(() => Object.values(valid(corpus()))),
  );
  return fc.tuple(...keys.map(() => value)).map((choices) => {
    const data = valid(corpus());
    const out: Record<string, Buffer> = {};
    choices.forEach((choice, index) => {
      const key = keys[index]!;
      if (choice === 'absent') return;
      if (choice === 'valid') {
        if (data[key]) out[key] = data[key];
      } else if (choice === 'swap') {
        out[key] = data[keys[(index + 1) % keys.length]!] ?? Buffer.alloc(0);
      } else out[key] = choice;
    });
    return out;
  });
}

/**
 * A spec nested far deeper than any real one (a CRD applied without its schema stores it unpruned).
 * The input is the depth, built in the run: a report of the value itself would overflow the stack.
 */
export class NestedSpec {
  constructor(readonly depth: number) {}
  build(): unknown {
    let value: unknown = 'x';
    for (let i = 0; i < this.depth; i++) value = i % 2 === 0 ? [value] : { a: value };
    return { trustDomain: 'a', namespaces: { alwaysManaged: value } };
  }
  toString(): string {
    return `NestedSpec(${this.depth})`;
  }
}
const deeplyNested = fc.integer({ min: 1, max: 50_000 }).map((depth) => new NestedSpec(depth));

/** A valid spec with some fields replaced by arbitrary JSON. */
function mutatedSpec(corpus: () => Corpus) {
  const paths = [
    ['trustDomain'],
    ['workloadCertificates', 'ttl'],
    ['workloadCertificates', 'gracePeriodRatio'],
    ['workloadCertificates'],
    ['rootCA', 'mode'],
    ['rootCA', 'selfSigned', 'ttl'],
    ['rootCA'],
    ['namespaces', 'alwaysManaged'],
    ['namespaces', 'managedByDefault'],
  ];
  return fc
    .array(fc.tuple(fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 3 })), { minLength: 1, maxLength: 4 })
    .map((replacements) => {
      const spec = structuredClone(corpus().caSpec) as Record<string, unknown>;
      for (const [path, value] of replacements) {
        let node = spec;
        for (const key of path.slice(0, -1)) {
          if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
          node = node[key] as Record<string, unknown>;
        }
        node[path.at(-1)!] = value;
      }
      return spec;
    });
}

const base64Values = (corpus: () => Corpus) =>
  fc.oneof(
    hostilePem(() => certificatePems(corpus())).map((t) => Buffer.from(t).toString('base64')),
    fc.string({ maxLength: 64 }),
  );

export const fuzzTargets: FuzzTarget<unknown>[] = [
  target<string>({
    name: 'pem',
    about: 'decodePem(text)',
    input: (corpus) => hostilePem(() => certificatePems(corpus())),
    run: (text) => {
      const blocks = decodePem(text);
      const total = blocks.reduce((sum, block) => sum + block.der.length, 0);
      bound(total <= text.length, `decoded ${total} bytes from ${text.length} characters`);
    },
    expected: [PemError],
  }),
  target<string>({
    name: 'pem-certificates',
    about: 'decodeCertificatesPem(text)',
    input: (corpus) => hostilePem(() => certificatePems(corpus())),
    run: (text) => decodeCertificatesPem(text),
    expected: [PemError],
  }),
  target<Buffer>({
    name: 'der',
    about: 'readElement + readChildren + the primitive decoders (der.ts)',
    input: (corpus) => hostileDer(() => [...corpus().certificates, ...corpus().extensionValues]),
    run: (der) => {
      const elements = walkDer(readElement(der), der.length);
      bound(elements <= der.length, `${elements} elements in ${der.length} bytes`);
    },
    expected: [DerError],
  }),
  derParser('certificate-parser', 'parseCertificate(der)', (c) => c.certificates, parseCertificate, [
    CertificateParseError,
  ]),
  derParser('certificate-inspect', 'inspectCertificate(der)', (c) => c.certificates, inspectCertificate, [
    CertificateParseError,
  ]),
  target<{ leaf: Buffer; intermediate: Buffer }>({
    name: 'certificate-verify',
    about: 'verifyChain and validateWorkloadLeaf on hostile leaves and intermediates',
    input: (corpus) => fc.record({ leaf: anyCertificate(corpus), intermediate: anyCertificate(corpus) }),
    run: ({ leaf, intermediate }, corpus) => {
      verifyChain({ leaf, intermediates: [intermediate], roots: [corpus.certificates[0]!], at: corpus.now });
      validateWorkloadLeaf(leaf, 'spiffe://cluster.local/ns/default/sa/fuzz');
    },
    expected: [],
  }),
  target<Buffer>({
    name: 'extensions',
    about: 'the extension decoders, describeName and keyIdentifierOf (extensions.ts, name.ts)',
    input: (corpus) => hostileDer(() => corpus().extensionValues),
    run: (der) => {
      for (const decode of [
        decodeKeyUsage,
        decodeExtKeyUsage,
        decodeBasicConstraints,
        decodeSubjectAltName,
        decodeSubjectKeyIdentifier,
        decodeAuthorityKeyIdentifier,
        describeName,
        keyIdentifierOf,
      ]) {
        try {
          decode(der);
        } catch (error) {
          if (!(error instanceof DerError)) throw error;
        }
      }
    },
    expected: [],
  }),
  target<string>({
    name: 'private-key',
    about: 'parsePrivateKeyPem(pem) and keyMatchesCertificate (PKCS#1, SEC1, PKCS#8)',
    input: (corpus) =>
      fc.oneof(
        hostilePem(() => corpus().privateKeyDers.map(({ label, der }) => encodePem(label, der))),
        fc
          .record({ pick: fc.nat(), der: mutatedBytes(() => corpus().privateKeyDers.map((k) => k.der)) })
          .map(({ pick, der }) => {
            const labels = corpus().privateKeyDers.map((k) => k.label);
            return encodePem(labels[pick % labels.length]!, der);
          }),
      ),
    run: (pem, corpus) => {
      const key = parsePrivateKeyPem(pem);
      keyMatchesCertificate(key, corpus.leaf.der);
    },
    expected: [PemError, KeyError],
    secret: true,
  }),
  target<Record<string, Buffer>>({
    name: 'ca-secret-self-signed',
    about: `loadSelfSigned(${SELF_SIGNED_SECRET} data)`,
    input: (corpus) => caSecretData(corpus, (c) => c.selfSignedData),
    run: (data, corpus) =>
      loadSelfSigned(data, 'fuzz/istio-ca-secret', { now: corpus.now, minRemainingMs: 60_000 }),
    expected: [CaLoadError],
    secret: true,
    quickRuns: 100,
  }),
  target<Record<string, Buffer>>({
    name: 'ca-secret-plugged-in',
    about: `loadPluggedIn(${PLUGGED_IN_SECRET} data)`,
    input: (corpus) => caSecretData(corpus, (c) => c.pluggedInData),
    run: (data, corpus) => loadPluggedIn(data, 'fuzz/cacerts', { now: corpus.now, minRemainingMs: 60_000 }),
    expected: [CaLoadError],
    secret: true,
    quickRuns: 100,
  }),
  target<Record<string, string>>({
    name: 'workload-secret',
    about: 'observeSecret(istio.<sa> Secret) — anyone who can write Secrets in a namespace controls it',
    input: (corpus) =>
      fc.oneof(
        fc.dictionary(
          fc.constantFrom('cert-chain.pem', 'key.pem', 'root-cert.pem', 'other'),
          base64Values(corpus),
        ),
        fc.record({ chain: base64Values(corpus), key: fc.nat() }).map(({ chain, key }) => {
          const keys = corpus().privateKeyDers;
          const { label, der } = keys[key % keys.length]!;
          return {
            'cert-chain.pem': chain,
            'key.pem': Buffer.from(encodePem(label, der)).toString('base64'),
            'root-cert.pem': chain,
          };
        }),
      ),
    run: (data) => {
      const view = observeSecret({ metadata: { name: 'istio.fuzz', uid: 'u', resourceVersion: '1' }, data });
      bound(typeof view.dataKeys.length === 'number', 'no view');
    },
    expected: [],
    secret: true,
  }),
  target<string>({
    name: 'trust-bundle',
    about: 'observeTrustBundle(istio-ca-root-cert ConfigMap)',
    input: (corpus) => hostilePem(() => certificatePems(corpus())),
    run: (pem) =>
      observeTrustBundle({ metadata: { name: 'istio-ca-root-cert' }, data: { 'root-cert.pem': pem } }),
    expected: [],
  }),
  target<unknown>({
    name: 'certificate-authority-spec',
    about: 'parseCertificateAuthoritySpec(spec of the CertificateAuthority)',
    input: (corpus) =>
      fc.oneof(
        { arbitrary: fc.anything({ maxDepth: 4 }), weight: 2 },
        { arbitrary: fc.jsonValue({ maxDepth: 4 }), weight: 2 },
        { arbitrary: mutatedSpec(corpus), weight: 5 },
        { arbitrary: deeplyNested, weight: 1 },
      ),
    run: (spec) => {
      const result = parseCertificateAuthoritySpec(spec instanceof NestedSpec ? spec.build() : spec);
      bound(typeof result.ok === 'boolean', 'no result');
    },
    expected: [],
  }),
  // The CSR API's untrusted input, outermost first: the gRPC message, the PEM in it, the PKCS#10 DER.
  target<Buffer>({
    name: 'csr-message',
    about: 'decodeCertificateRequest(IstioCertificateRequest bytes from the network)',
    input: (corpus) => mutatedBytes(() => corpus().csrMessages),
    run: (bytes) => {
      const request = decodeCertificateRequest(bytes);
      bound(
        request.csr.length <= bytes.length,
        `a ${request.csr.length}-character CSR from ${bytes.length} bytes`,
      );
    },
    expected: [ProtocolError],
  }),
  target<string>({
    name: 'csr-pem',
    about: 'parseCsrPem(text)',
    input: (corpus) => hostilePem(() => corpus().csrs.map((der) => encodePem('CERTIFICATE REQUEST', der))),
    run: (pem) => parseCsrPem(pem),
    expected: [CsrError],
  }),
  derParser('csr', 'parseCsrDer(der), self-signature included', (c) => c.csrs, parseCsrDer, [CsrError]),
  // CRLs: alcazar parses its own istio-ca-crl back, and a plugged-in CA's CRLs come from the operator.
  derParser('crl', 'parseCrl(der)', (c) => c.crls, parseCrl, [CrlError]),
  target<Buffer>({
    name: 'crl-signature',
    about: 'crlSignedBy(der, issuer) on hostile CRLs',
    input: (corpus) => hostileDer(() => corpus().crls),
    run: (der, corpus) => {
      const signed = crlSignedBy(der, corpus.certificates[0]!);
      bound(typeof signed === 'boolean', 'no answer');
    },
    expected: [CrlError],
  }),
  target<string>({
    name: 'crl-pem',
    about: 'decodeCrlsPem(text)',
    input: (corpus) => hostilePem(() => corpus().crls.map((der) => encodePem('X509 CRL', der))),
    run: (pem) => decodeCrlsPem(pem),
    expected: [PemError, CrlError],
  }),
  target<string>({
    name: 'jwt-expiry',
    about: 'jwtExpiry(bearer token): read before any TokenReview',
    input: () =>
      fc.oneof(
        fc.string({ maxLength: 200 }),
        fc
          .tuple(fc.string(), fc.jsonValue({ maxDepth: 3 }), fc.string())
          .map(([h, payload, sig]) =>
            [h, Buffer.from(JSON.stringify(payload) ?? '').toString('base64url'), sig].join('.'),
          ),
      ),
    run: (token) => {
      const exp = jwtExpiry(token);
      bound(exp === undefined || Number.isFinite(exp), `a non-finite expiry from ${JSON.stringify(token)}`);
    },
    expected: [],
  }),
  target<string>({
    name: 'duration',
    about: 'tryParseDuration(text)',
    input: () =>
      fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.string({ unit: fc.constantFrom(...'0123456789.hmsuµn+-'.split('')), maxLength: 60 }),
      ),
    run: (text) => {
      const result = tryParseDuration(text);
      bound(!result.ok || Number.isFinite(result.ms), `non-finite duration from ${JSON.stringify(text)}`);
    },
    expected: [],
  }),
  target<string>({
    name: 'spiffe-id',
    about: 'parseSpiffeId(uri)',
    input: () =>
      fc.oneof(
        fc.string({ maxLength: 80 }),
        fc
          .record({ edits: fc.array(textEdit, { minLength: 1, maxLength: 4 }) })
          .map(({ edits }) => applyTextEdits('spiffe://cluster.local/ns/default/sa/fuzz', edits)),
      ),
    run: (uri) => parseSpiffeId(uri),
    expected: [SpiffeIdError],
  }),
];
